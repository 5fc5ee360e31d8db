// The smallest set of changes from observed to desired routes and rules. Pure.
import { AF_INET, FR_ACT_GOTO } from '../netlink/constants.ts';
import type { RtOp } from '../rtnetlink/client.ts';
import { routeBaseKey, routeSatisfies } from '../rtnetlink/route.ts';
import { ruleKey } from '../rtnetlink/rule.ts';
import { type AddressSpec, addressKey } from '../rtnetlink/address.ts';
import { canonicalAddress, familyOf } from '../netlink/codec.ts';
import type { Address, Route, Rule } from '../rtnetlink/types.ts';
import { type Ownership, ownsRoute, ownsRule } from './ownership.ts';

/**
 * Changes in four groups, to be applied in this order: routes come before the rules that
 * point at them, and rules go before the routes they pointed at, so no packet ever finds
 * an empty table and falls through to another uplink.
 */
export interface RoutingPlan {
  addressAdds: RtOp[];
  addressDels: RtOp[];
  routeAdds: RtOp[];
  ruleAdds: RtOp[];
  ruleDels: RtOp[];
  routeDels: RtOp[];
  /** desired objects that collide with a foreign object of the same identity */
  conflicts: { desired: Route; foreign: Route }[];
}

export function planRouting(
  own: Ownership,
  desired: { routes: readonly Route[]; rules: readonly Rule[]; addresses?: readonly AddressSpec[] },
  observed: { routes: Iterable<Route>; rules: Iterable<Rule>; addresses?: Iterable<Address> },
): RoutingPlan {
  validateDesired(own, desired);
  const addressAdds: RtOp[] = [];
  const addressDels: RtOp[] = [];
  const obsAddrs = new Map<string, Address>();
  for (const a of observed.addresses ?? []) obsAddrs.set(addressKey(a), a);
  const wantedAddrs = new Set<string>();
  for (const d of desired.addresses ?? []) {
    const k = addressKey({ family: familyOf(d.address), index: d.index, address: canonicalAddress(d.address), prefixLen: d.prefixLen });
    wantedAddrs.add(k);
    // an identical address someone else put there serves as well: it is left alone
    if (!obsAddrs.has(k)) addressAdds.push({ op: 'add', address: { ...d, protocol: own.protocol } });
  }
  for (const [k, a] of obsAddrs) {
    if (a.protocol === own.protocol && !wantedAddrs.has(k)) addressDels.push({ op: 'delete', address: { index: a.index, address: a.address, prefixLen: a.prefixLen } });
  }
  const routeAdds: RtOp[] = [];
  const routeDels: RtOp[] = [];
  const ruleAdds: RtOp[] = [];
  const ruleDels: RtOp[] = [];
  const conflicts: RoutingPlan['conflicts'] = [];

  // Desired routes are identified by (table, prefix, source, tos, metric): a netlink add
  // with NLM_F_EXCL fails on any route there, whatever its next hop (IPv6 too).
  const observedAt = new Map<string, Route[]>();
  for (const r of observed.routes) {
    const k = routeBaseKey(r);
    const list = observedAt.get(k);
    if (list) list.push(r);
    else observedAt.set(k, [r]);
  }
  const wantedRoutes = new Set<string>();
  for (const d of desired.routes) {
    const k = routeBaseKey(d);
    wantedRoutes.add(k);
    const here = observedAt.get(k) ?? [];
    const mine = here.filter((o) => ownsRoute(own, o));
    const keep = mine.find((o) => routeSatisfies(d, o));
    if (keep) {
      for (const o of mine) if (o !== keep) routeAdds.unshift({ op: 'delete', route: o });
      continue;
    }
    const foreign = here.find((o) => !ownsRoute(own, o));
    if (foreign) {
      conflicts.push({ desired: d, foreign });
      continue;
    }
    if (mine.length === 1 && d.family === AF_INET) routeAdds.push({ op: 'replace', route: d });
    else {
      // an IPv6 replace picks its victim by metric alone: say exactly which routes go
      for (const o of mine) routeAdds.unshift({ op: 'delete', route: o });
      routeAdds.push({ op: 'add', route: d });
    }
  }
  for (const [k, list] of observedAt) {
    if (wantedRoutes.has(k)) continue;
    for (const o of list) if (ownsRoute(own, o)) routeDels.push({ op: 'delete', route: o });
  }

  const obsRules = new Map<string, Rule>();
  for (const r of observed.rules) if (ownsRule(own, r)) obsRules.set(ruleKey(r), r);
  const wantedRules = new Set<string>();
  for (const d of desired.rules) wantedRules.add(ruleKey(d));
  // the kernel tells rules apart without their goto target: one that only changes its target
  // must go before it is added again (EEXIST otherwise); meanwhile its traffic falls through
  const gotoGone = new Map<string, Rule>();
  for (const [k, o] of obsRules) if (o.action === FR_ACT_GOTO && !wantedRules.has(k)) gotoGone.set(ruleKey({ ...o, goto: 0 }), o);
  const deletedFirst = new Set<Rule>();
  for (const d of desired.rules) {
    const k = ruleKey(d);
    if (obsRules.has(k)) continue;
    if (d.action === FR_ACT_GOTO) {
      const old = gotoGone.get(ruleKey({ ...d, goto: 0 }));
      if (old && !deletedFirst.has(old)) {
        deletedFirst.add(old);
        ruleAdds.push({ op: 'delete', rule: old });
      }
    }
    ruleAdds.push({ op: 'add', rule: d });
  }
  for (const [k, o] of obsRules) if (!wantedRules.has(k) && !deletedFirst.has(o)) ruleDels.push({ op: 'delete', rule: o });

  // deletes of replaced routes first; then routes without a gateway (the on-link prefix
  // routes), because the kernel checks a new gateway against the table it goes into
  const rank = (op: RtOp): number => (op.op === 'delete' ? 0 : 'route' in op && op.route.gateway === undefined ? 1 : 2);
  routeAdds.sort((a, b) => rank(a) - rank(b));
  routeDels.sort((a, b) => rank(b) - rank(a));
  return { addressAdds, addressDels, routeAdds, ruleAdds, ruleDels, routeDels, conflicts };
}

/** Desired objects must be ours and unique; anything else is a bug in the caller. */
export function validateDesired(own: Ownership, desired: { routes: readonly Route[]; rules: readonly Rule[]; addresses?: readonly AddressSpec[] }): void {
  const seen = new Set<string>();
  for (const r of desired.routes) {
    if (!ownsRoute(own, r)) throw new RangeError(`desired route outside our tables/protocol: table ${r.table} proto ${r.protocol}`);
    const k = routeBaseKey(r);
    if (seen.has(k)) throw new RangeError(`desired route twice (same table, prefix and metric): ${k}`);
    seen.add(k);
  }
  seen.clear();
  for (const a of desired.addresses ?? []) {
    const k = `${a.index}|${canonicalAddress(a.address)}/${a.prefixLen}`;
    if (seen.has(k)) throw new RangeError(`desired address twice: ${k}`);
    seen.add(k);
  }
  seen.clear();
  for (const r of desired.rules) {
    if (!ownsRule(own, r)) throw new RangeError(`desired rule outside our priority band/protocol: priority ${r.priority} proto ${r.protocol}`);
    const k = ruleKey(r);
    if (seen.has(k)) throw new RangeError(`desired rule twice: ${k}`);
    seen.add(k);
  }
}
