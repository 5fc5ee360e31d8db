// What a daemon that restarted without a clean stop goes on with (pure): the DHCP leases and
// IPv6 routers of the last run whose addresses and routes the kernel still holds for us, so
// that the first reconcile keeps them instead of taking them off until the servers answer.
import type { Lease } from '../bearers/dhcp/machine.ts';
import { wantsConnection } from '../engine/engine.ts';
import type { EngineState, Service } from '../engine/types.ts';
import { AF_INET, AF_INET6 } from '../kernel/netlink/constants.ts';
import type { Address, Route } from '../kernel/rtnetlink/types.ts';

/** a lease that ends sooner than this is not gone on with */
export const KEPT_LEASE_MARGIN_MS = 5000;

export interface LeaseCarryOver {
  /** by service id: the lease, and the service that goes on with it */
  goOn: { service: Service; lease: Lease }[];
  /** service ids whose lease files are void */
  void: string[];
}

/**
 * The kept leases a service goes on with: it is to be connected by DHCP, the lease is
 * unexpired by the wall clock (with a margin) and did not begin in its future (a clock that
 * went back is not trusted), and its address is on the service's link with our protocol tag.
 * Any other is void: no address means a clean stop, a carrier loss or a reboot took it.
 */
export function leasesToGoOnWith(kept: ReadonlyMap<string, Lease>, state: EngineState, addresses: Iterable<Address>, protocol: number, wallNow: number): LeaseCarryOver {
  const ours = new Set<string>();
  for (const a of addresses) if (a.family === AF_INET && a.protocol === protocol) ours.add(`${a.index} ${a.address}/${a.prefixLen}`);
  const out: LeaseCarryOver = { goOn: [], void: [] };
  for (const [id, lease] of kept) {
    const s = state.services.get(id);
    const ok =
      s !== undefined &&
      s.settings.ipv4.method === 'dhcp' &&
      wantsConnection(state, s) &&
      lease.expiresAt > wallNow + KEPT_LEASE_MARGIN_MS &&
      lease.acquiredAt <= wallNow &&
      ours.has(`${s.ifindex} ${lease.address}/${lease.prefixLen}`);
    if (ok) out.goOn.push({ service: s, lease });
    else out.void.push(id);
  }
  return out;
}

/**
 * The IPv6 default routers to hold, by service: for each service that is to be connected
 * with automatic IPv6, the gateways of our default routes in its table on its link.
 */
export function routersToHold(state: EngineState, routes: Iterable<Route>, protocol: number): { service: Service; routers: string[] }[] {
  const want = new Map<string, { service: Service; routers: string[] }>();
  for (const s of state.services.values()) {
    if (s.settings.ipv6.method === 'auto' && wantsConnection(state, s)) want.set(`${s.settings.table} ${s.ifindex}`, { service: s, routers: [] });
  }
  if (want.size === 0) return [];
  for (const r of routes) {
    if (r.family !== AF_INET6 || r.protocol !== protocol || r.dstLen !== 0 || r.gateway === undefined || r.oif === undefined) continue;
    want.get(`${r.table} ${r.oif}`)?.routers.push(r.gateway);
  }
  return [...want.values()].filter((w) => w.routers.length > 0);
}
