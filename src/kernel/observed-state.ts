// The observed kernel state: links, addresses, routes (all tables) and rules, IPv4 and
// IPv6, kept current by applying events. Pure data, no I/O: the mirror feeds it.
import { AF_INET, AF_INET6, type Family } from './netlink/constants.ts';
import { addressKey } from './rtnetlink/address.ts';
import type { ObjectClass, RtEvent } from './rtnetlink/events.ts';
import { routeBaseKey, routeKey } from './rtnetlink/route.ts';
import { ruleKey } from './rtnetlink/rule.ts';
import type { Address, Link, Route, Rule } from './rtnetlink/types.ts';

export type DumpedObjects =
  | { cls: 'link'; objects: Link[] }
  | { cls: 'address4' | 'address6'; objects: Address[] }
  | { cls: 'route4' | 'route6'; objects: Route[] }
  | { cls: 'rule4' | 'rule6'; objects: Rule[] };

const familyOfClass = (cls: ObjectClass): Family => (cls.endsWith('6') ? AF_INET6 : AF_INET);

export class ObservedState {
  readonly links = new Map<number, Link>();
  readonly addresses = new Map<string, Address>();
  readonly routes = new Map<string, Route>();
  readonly rules = new Map<string, Rule>();

  /** Applies one event. The kernel removes some objects without telling (see below): they are removed here too. */
  apply(ev: RtEvent): void {
    switch (ev.kind) {
      case 'link': {
        const { link } = ev;
        if (ev.op === 'del') {
          this.links.delete(link.index);
          this.forgetInterface(link.index, true);
        } else {
          const before = this.links.get(link.index);
          this.links.set(link.index, link);
          // IPv4 flushes the routes of a device that goes down without RTM_DELROUTE.
          if (!link.up && (before === undefined || before.up)) this.forgetInterface(link.index, false);
        }
        return;
      }
      case 'address': {
        const key = addressKey(ev.address);
        if (ev.op === 'del') this.addresses.delete(key);
        else this.addresses.set(key, ev.address);
        return;
      }
      case 'route': {
        const { route } = ev;
        if (ev.op === 'del') {
          this.routes.delete(routeKey(route));
          return;
        }
        if (ev.replace && route.family === AF_INET6) {
          // a replace drops the old route with the same prefix and metric, whatever its next hop
          const base = routeBaseKey(route);
          for (const [k, r] of this.routes) if (r.family === AF_INET6 && routeBaseKey(r) === base) this.routes.delete(k);
        }
        this.routes.set(routeKey(route), route);
        return;
      }
      case 'rule': {
        const key = ruleKey(ev.rule);
        if (ev.op === 'del') this.rules.delete(key);
        else this.rules.set(key, ev.rule);
        return;
      }
    }
  }

  private forgetInterface(index: number, deleted: boolean): void {
    if (deleted) for (const [k, a] of this.addresses) if (a.index === index) this.addresses.delete(k);
    for (const [k, r] of this.routes) {
      if (!deleted && r.family !== AF_INET) continue;
      const viaIt = r.oif === index || (r.multipath?.some((h) => h.oif === index) ?? false);
      if (viaIt) this.routes.delete(k);
    }
  }

  /** Replaces every object of one class with a fresh dump. */
  replace(d: DumpedObjects): void {
    switch (d.cls) {
      case 'link':
        this.links.clear();
        for (const l of d.objects) this.links.set(l.index, l);
        return;
      case 'address4':
      case 'address6':
        replaceWhere(this.addresses, familyOfClass(d.cls), d.objects, addressKey);
        return;
      case 'route4':
      case 'route6':
        replaceWhere(this.routes, familyOfClass(d.cls), d.objects, routeKey);
        return;
      case 'rule4':
      case 'rule6':
        replaceWhere(this.rules, familyOfClass(d.cls), d.objects, ruleKey);
        return;
    }
  }

  /**
   * The objects of one class as they are now (a copy), to compare with after a resync: see
   * changesSince().
   */
  classObjects(cls: ObjectClass): Map<string, ClassObject> {
    const out = new Map<string, ClassObject>();
    if (cls === 'link') {
      for (const [k, l] of this.links) out.set(String(k), l);
      return out;
    }
    const fam = familyOfClass(cls);
    const from: Map<string, Address | Route | Rule> = cls.startsWith('address') ? this.addresses : cls.startsWith('route') ? this.routes : this.rules;
    for (const [k, o] of from) if (o.family === fam) out.set(k, o);
    return out;
  }

  /**
   * What changed in one class since `before` (taken with classObjects()) as the events that
   * would have told it: an object that went is a 'del', one that came or changed a 'new'.
   * After a resync these are the changes whose notifications were lost (ENOBUFS) or never
   * sent (silent flushes). Lifetimes and expiry timers, which tick on their own, do not count
   * as changes.
   */
  changesSince(cls: ObjectClass, before: ReadonlyMap<string, ClassObject>): RtEvent[] {
    const now = this.classObjects(cls);
    const out: RtEvent[] = [];
    for (const [k, o] of before) if (!now.has(k)) out.push(eventOf(cls, 'del', o));
    for (const [k, o] of now) {
      const old = before.get(k);
      if (old === undefined || !sameObject(old, o)) out.push(eventOf(cls, 'new', o));
    }
    return out;
  }

  counts(): { links: number; addresses: number; routes: number; rules: number } {
    return { links: this.links.size, addresses: this.addresses.size, routes: this.routes.size, rules: this.rules.size };
  }

  linkByName(name: string): Link | undefined {
    for (const l of this.links.values()) if (l.name === name) return l;
    return undefined;
  }

  addressesOf(index: number, family?: Family): Address[] {
    return [...this.addresses.values()].filter((a) => a.index === index && (family === undefined || a.family === family));
  }

  routesIn(table: number, family?: Family): Route[] {
    return [...this.routes.values()].filter((r) => r.table === table && (family === undefined || r.family === family));
  }

  rulesOf(family?: Family): Rule[] {
    return [...this.rules.values()].filter((r) => family === undefined || r.family === family).sort((a, b) => a.priority - b.priority);
  }
}

export type ClassObject = Link | Address | Route | Rule;

function eventOf(cls: ObjectClass, op: 'new' | 'del', o: ClassObject): RtEvent {
  if (cls === 'link') return { kind: 'link', op, link: o as Link };
  if (cls.startsWith('address')) return { kind: 'address', op, address: o as Address };
  if (cls.startsWith('route')) return { kind: 'route', op, route: o as Route, replace: false };
  return { kind: 'rule', op, rule: o as Rule };
}

/** fields that change by themselves as time passes */
const TICKING = new Set(['validLifetime', 'preferredLifetime', 'expires']);

function sameObject(a: ClassObject, b: ClassObject): boolean {
  if (a === b) return true;
  const x = a as unknown as Record<string, unknown>;
  const y = b as unknown as Record<string, unknown>;
  for (const k of new Set([...Object.keys(x), ...Object.keys(y)])) {
    if (TICKING.has(k)) continue;
    const u = x[k];
    const v = y[k];
    if (u === v) continue;
    if (typeof u !== 'object' || typeof v !== 'object' || u === null || v === null || JSON.stringify(u) !== JSON.stringify(v)) return false;
  }
  return true;
}

function replaceWhere<T extends { family: Family }>(map: Map<string, T>, family: Family, objects: T[], key: (o: T) => string): void {
  for (const [k, o] of map) if (o.family === family) map.delete(k);
  for (const o of objects) map.set(key(o), o);
}
