// Renders the nft model to `nft -f` input. Pure.
import { createHash } from 'node:crypto';
import type { NftMap, NftSet, NftTableModel, NftValue } from './model.ts';

const NAME = /^[A-Za-z][A-Za-z0-9_]{0,62}$/;

export function checkName(what: string, name: string): string {
  if (!NAME.test(name)) throw new RangeError(`nft ${what} name not allowed: ${JSON.stringify(name)}`);
  return name;
}

export function renderValue(v: NftValue): string {
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`nft value must be a non-negative integer: ${v}`);
    return String(v);
  }
  // literal tokens are quoted; quotes and backslashes cannot appear in a safe token
  if (/["\\\n]/.test(v)) throw new RangeError(`nft string value not allowed: ${JSON.stringify(v)}`);
  return `"${v}"`;
}

const typeLine = (t: NftSet['type']): string => ('type' in t ? `type ${t.type}` : `typeof ${t.typeof}`);

function declLines(x: NftSet | NftMap): string[] {
  const out = [typeLine(x.type)];
  if (x.flags?.length) out.push(`flags ${x.flags.join(', ')}`);
  if (x.counter) out.push('counter');
  return out;
}

/** The table without set/map elements: what must be rebuilt when it changes. */
export function renderStructure(m: NftTableModel): string {
  checkName('table', m.name);
  const lines: string[] = [];
  for (const s of m.sets) if (s.name === DIGEST_SET) throw new RangeError(`nft set name ${DIGEST_SET} is reserved`);
  for (const s of m.sets) lines.push(`  set ${checkName('set', s.name)} { ${declLines(s).join('; ')}; }`);
  for (const s of m.maps) lines.push(`  map ${checkName('map', s.name)} { ${declLines(s).join('; ')}; }`);
  for (const c of m.counters) lines.push(`  counter ${checkName('counter', c)} { }`);
  for (const c of m.chains) {
    lines.push(`  chain ${checkName('chain', c.name)} {`);
    if (c.base) {
      const b = c.base;
      lines.push(`    type ${b.type} hook ${b.hook} priority ${b.priority}; policy ${b.policy ?? 'accept'};`);
    }
    for (const r of c.rules) {
      if (r.includes('\n') || r.includes(';')) throw new RangeError(`nft rule must be one statement list: ${JSON.stringify(r)}`);
      lines.push(`    ${r}`);
    }
    lines.push('  }');
  }
  return lines.join('\n');
}

/** A short digest of the structure, kept in the table's comment to detect change across restarts. */
export function structureDigest(m: NftTableModel): string {
  return createHash('sha256').update(`${m.family} ${m.name}\n${renderStructure(m)}`).digest('hex').slice(0, 16);
}

export const elementKey = (v: NftValue): string => (typeof v === 'number' ? `n${v}` : `s${v}`);

/**
 * nft 1.0.6 leaves table comments out of its JSON, but not set comments: the digest of
 * the structure lives on an empty marker set, so one `nft -j list table` shows it.
 */
export const DIGEST_SET = 'netsession_digest';

/** Full text: replaces our table atomically (one transaction), leaving every other table alone. */
export function renderReplace(m: NftTableModel): string {
  const t = `${m.family} ${m.name}`;
  const out = [`add table ${t}`, `delete table ${t}`, `table ${t} {`,
    `  comment "netsession:${structureDigest(m)}"`,
    `  set ${DIGEST_SET} { type mark; comment "netsession:${structureDigest(m)}"; }`,
    renderStructure(m),
    '}',
  ];
  const addAll = (set: string, els: string[]): void => {
    for (let i = 0; i < els.length; i += 500) out.push(`add element ${t} ${set} { ${els.slice(i, i + 500).join(', ')} }`);
  };
  for (const x of m.sets) addAll(x.name, x.elements.map(renderValue));
  for (const x of m.maps) addAll(x.name, x.elements.map(([k, v]) => `${renderValue(k)} : ${renderValue(v)}`));
  return `${out.join('\n')}\n`;
}

export function renderDelete(family: string, name: string): string {
  checkName('table', name);
  return `add table ${family} ${name}\ndelete table ${family} ${name}\n`;
}
