// Turns rtnetlink notifications into typed events.
import {
  AF_INET,
  NLM_F_REPLACE,
  NLMSG_HDRLEN,
  RTM_DELADDR,
  RTM_DELLINK,
  RTM_DELROUTE,
  RTM_DELRULE,
  RTM_F_CLONED,
  RTM_NEWADDR,
  RTM_NEWLINK,
  RTM_NEWROUTE,
  RTM_NEWRULE,
} from '../netlink/constants.ts';
import type { NlHeader } from '../netlink/codec.ts';
import { parseAddress } from './address.ts';
import { parseLink } from './link.ts';
import { parseRoute } from './route.ts';
import { parseRule } from './rule.ts';
import type { Address, Link, Route, Rule } from './types.ts';

export type RtEvent =
  | { kind: 'link'; op: 'new' | 'del'; link: Link }
  | { kind: 'address'; op: 'new' | 'del'; address: Address }
  | { kind: 'route'; op: 'new' | 'del'; route: Route; replace: boolean }
  | { kind: 'rule'; op: 'new' | 'del'; rule: Rule };

/** The unit of a dump, and so of a resync. */
export type ObjectClass = 'link' | 'address4' | 'address6' | 'route4' | 'route6' | 'rule4' | 'rule6';
export const ALL_CLASSES: readonly ObjectClass[] = ['link', 'address4', 'address6', 'route4', 'route6', 'rule4', 'rule6'];

export function classOf(ev: RtEvent): ObjectClass {
  switch (ev.kind) {
    case 'link':
      return 'link';
    case 'address':
      return ev.address.family === AF_INET ? 'address4' : 'address6';
    case 'route':
      return ev.route.family === AF_INET ? 'route4' : 'route6';
    case 'rule':
      return ev.rule.family === AF_INET ? 'rule4' : 'rule6';
  }
}

export function parseEvent(h: NlHeader, buf: Buffer, off: number): RtEvent | undefined {
  const end = off + h.len - NLMSG_HDRLEN;
  switch (h.type) {
    case RTM_NEWLINK:
    case RTM_DELLINK:
      return { kind: 'link', op: h.type === RTM_NEWLINK ? 'new' : 'del', link: parseLink(buf, off, end) };
    case RTM_NEWADDR:
    case RTM_DELADDR:
      return { kind: 'address', op: h.type === RTM_NEWADDR ? 'new' : 'del', address: parseAddress(buf, off, end) };
    case RTM_NEWROUTE:
    case RTM_DELROUTE: {
      const route = parseRoute(buf, off, end);
      if (route.flags & RTM_F_CLONED) return undefined; // per-destination cache entries (PMTU), not routes
      return { kind: 'route', op: h.type === RTM_NEWROUTE ? 'new' : 'del', route, replace: (h.flags & NLM_F_REPLACE) !== 0 };
    }
    case RTM_NEWRULE:
    case RTM_DELRULE:
      return { kind: 'rule', op: h.type === RTM_NEWRULE ? 'new' : 'del', rule: parseRule(buf, off, end) };
    default:
      return undefined;
  }
}
