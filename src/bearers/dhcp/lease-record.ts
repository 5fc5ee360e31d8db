// A DHCP lease as kept in a file from one run of the daemon to the next (so that a restart
// goes on with the lease instead of dropping its address): plain JSON, where the times of an
// infinite lease, which JSON cannot say, are null. A record is read back only if every field
// is one a lease can have: the file may be old, half-edited or hostile.
import { isIPv4 } from 'node:net';
import type { Lease } from './machine.ts';
import { checkDomainName, isUsableUnicast } from './packet.ts';

/** the lease's times (seconds or ms since the epoch); an infinite lease's are Infinity */
const TIMES = ['leaseSeconds', 't1', 't2', 'renewAt', 'rebindAt', 'expiresAt'] as const;
type TimeKey = (typeof TIMES)[number];

/** A lease as JSON says it: its times null where the lease has Infinity. */
export type LeaseRecord = Omit<Lease, TimeKey> & Record<TimeKey, number | null>;

/** a finite number ≥ 0, or null for infinity */
const back = (x: unknown): number | undefined => (x === null ? Infinity : typeof x === 'number' && Number.isFinite(x) && x >= 0 ? x : undefined);

export function leaseToRecord(l: Lease): LeaseRecord {
  const rec = { ...l, dns: [...l.dns], searchDomains: [...l.searchDomains], ntp: [...l.ntp] } as unknown as LeaseRecord;
  for (const k of TIMES) rec[k] = Number.isFinite(l[k]) ? l[k] : null;
  return rec;
}

const isAddresses = (x: unknown): x is string[] => Array.isArray(x) && x.length <= 64 && x.every((y) => typeof y === 'string' && isIPv4(y));

/** The lease a record describes, or undefined if any field is not one a lease can have. */
export function leaseFromRecord(j: unknown): Lease | undefined {
  if (typeof j !== 'object' || j === null || Array.isArray(j)) return undefined;
  const o = j as Record<string, unknown>;
  if (typeof o.address !== 'string' || !isUsableUnicast(o.address)) return undefined;
  if (!Number.isInteger(o.prefixLen) || (o.prefixLen as number) < 1 || (o.prefixLen as number) > 32) return undefined;
  if (o.router !== undefined && (typeof o.router !== 'string' || !isUsableUnicast(o.router))) return undefined;
  if (typeof o.serverId !== 'string' || !isUsableUnicast(o.serverId)) return undefined;
  if (!isAddresses(o.dns) || !isAddresses(o.ntp)) return undefined;
  if (o.domain !== undefined && (typeof o.domain !== 'string' || checkDomainName(o.domain) === undefined)) return undefined;
  if (!Array.isArray(o.searchDomains) || o.searchDomains.length > 64 || !o.searchDomains.every((d) => typeof d === 'string' && checkDomainName(d) !== undefined)) return undefined;
  if (o.mtu !== undefined && (!Number.isInteger(o.mtu) || (o.mtu as number) < 576 || (o.mtu as number) > 65535)) return undefined;
  const acquiredAt = typeof o.acquiredAt === 'number' && Number.isFinite(o.acquiredAt) && o.acquiredAt >= 0 ? o.acquiredAt : undefined;
  const [leaseSeconds, t1, t2, renewAt, rebindAt, expiresAt] = [o.leaseSeconds, o.t1, o.t2, o.renewAt, o.rebindAt, o.expiresAt].map(back);
  if (acquiredAt === undefined || leaseSeconds === undefined || t1 === undefined || t2 === undefined || renewAt === undefined || rebindAt === undefined || expiresAt === undefined) return undefined;
  // the order the machine keeps: renew, then rebind, then expiry, none before the lease began
  if (leaseSeconds <= 0 || !(acquiredAt <= renewAt && renewAt <= rebindAt && rebindAt <= expiresAt)) return undefined;
  return {
    address: o.address,
    prefixLen: o.prefixLen as number,
    ...(o.router === undefined ? {} : { router: o.router as string }),
    dns: [...o.dns],
    ...(o.domain === undefined ? {} : { domain: o.domain as string }),
    searchDomains: [...(o.searchDomains as string[])],
    ...(o.mtu === undefined ? {} : { mtu: o.mtu as number }),
    ntp: [...o.ntp],
    leaseSeconds,
    t1,
    t2,
    serverId: o.serverId,
    acquiredAt,
    renewAt,
    rebindAt,
    expiresAt,
  };
}
