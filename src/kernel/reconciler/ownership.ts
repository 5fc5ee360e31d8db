// What part of the kernel netsession owns. Everything outside is foreign and never touched.
import { RT_TABLE_MAIN } from '../netlink/constants.ts';
import type { Route, Rule } from '../rtnetlink/types.ts';

export interface Ownership {
  /** RTPROT value on every route and rule we install */
  protocol: number;
  /** our rules live in this priority band, inclusive */
  rulePriorities: { min: number; max: number };
  /** our routing tables, inclusive */
  tables: { min: number; max: number };
  /**
   * tables outside the range where we may own routes carrying our protocol tag (the main
   * table carries the default service's default routes)
   */
  sharedTables: readonly number[];
  /** our nftables table */
  nftTable: { family: 'inet'; name: string };
}

/** 83 = 'S' (session); not assigned in iproute2's rt_protos. */
export const DEFAULT_OWNERSHIP: Ownership = {
  protocol: 83,
  rulePriorities: { min: 10000, max: 10999 },
  tables: { min: 0x10000, max: 0x1ffff },
  sharedTables: [RT_TABLE_MAIN],
  nftTable: { family: 'inet', name: 'netsession' },
};

export function ownsRule(o: Ownership, r: Rule): boolean {
  return r.protocol === o.protocol && r.priority >= o.rulePriorities.min && r.priority <= o.rulePriorities.max;
}

export function ownsTable(o: Ownership, table: number): boolean {
  return (table >= o.tables.min && table <= o.tables.max) || o.sharedTables.includes(table);
}

export function ownsRoute(o: Ownership, r: Route): boolean {
  return r.protocol === o.protocol && ownsTable(o, r.table);
}

export function validateOwnership(o: Ownership): void {
  const bad = (m: string): never => {
    throw new RangeError(`ownership: ${m}`);
  };
  if (!Number.isInteger(o.protocol) || o.protocol < 5 || o.protocol > 255) bad('protocol must be 5..255 (0-4 belong to the kernel)');
  if (o.rulePriorities.min < 1 || o.rulePriorities.max >= 32766 || o.rulePriorities.min > o.rulePriorities.max)
    bad('rule priorities must be a band inside 1..32765 (0, 32766, 32767 are the kernel defaults)');
  if (o.tables.min < 1 || o.tables.max > 0xffffffff || o.tables.min > o.tables.max) bad('table range is empty or out of range');
  for (const t of [253, 254, 255]) if (t >= o.tables.min && t <= o.tables.max) bad(`table range must not contain the kernel table ${t}`);
  if (!/^[A-Za-z][A-Za-z0-9_-]{0,31}$/.test(o.nftTable.name)) bad('nft table name');
}
