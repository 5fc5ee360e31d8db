// RTM_NEWROUTE / RTM_DELROUTE codec and route identity.
import { type MessageWriter, addressBytes, addressString, canonicalAddress, forEachAttr } from '../netlink/codec.ts';
import {
  AF_INET,
  AF_INET6,
  type Family,
  RTA_DST,
  RTA_EXPIRES,
  RTA_GATEWAY,
  RTA_MULTIPATH,
  RTA_OIF,
  RTA_PREF,
  RTA_PREFSRC,
  RTA_PRIORITY,
  RTA_SRC,
  RTA_TABLE,
  RT_SCOPE_LINK,
  RT_SCOPE_NOWHERE,
  RT_SCOPE_UNIVERSE,
  RTN_BLACKHOLE,
  RTN_THROW,
  RTN_UNICAST,
  RTNH_F_ONLINK,
} from '../netlink/constants.ts';
import type { Nexthop, Route } from './types.ts';

const RTMSG_LEN = 12;

export function parseRoute(buf: Buffer, off: number, end: number): Route {
  const family = buf[off] as Family;
  const r: Route = {
    family,
    table: buf[off + 4] ?? 0,
    dst: family === AF_INET6 ? '::' : '0.0.0.0',
    dstLen: buf[off + 1] ?? 0,
    srcLen: buf[off + 2] ?? 0,
    tos: buf[off + 3] ?? 0,
    priority: 0,
    protocol: buf[off + 5] ?? 0,
    scope: buf[off + 6] ?? 0,
    type: buf[off + 7] ?? 0,
    flags: buf.readUInt32LE(off + 8),
  };
  forEachAttr(buf, off + RTMSG_LEN, end, (t, at, len) => {
    switch (t) {
      case RTA_TABLE:
        r.table = buf.readUInt32LE(at);
        break;
      case RTA_DST:
        r.dst = addressString(buf, at, len);
        break;
      case RTA_SRC:
        r.src = addressString(buf, at, len);
        break;
      case RTA_GATEWAY:
        r.gateway = addressString(buf, at, len);
        break;
      case RTA_OIF:
        r.oif = buf.readUInt32LE(at);
        break;
      case RTA_PRIORITY:
        r.priority = buf.readUInt32LE(at);
        break;
      case RTA_PREFSRC:
        r.prefsrc = addressString(buf, at, len);
        break;
      case RTA_PREF:
        r.pref = buf[at] ?? 0;
        break;
      case RTA_EXPIRES:
        r.expires = Math.round(buf.readUInt32LE(at) / 100);
        break;
      case RTA_MULTIPATH:
        r.multipath = parseMultipath(buf, at, at + len);
        break;
    }
  });
  return r;
}

function parseMultipath(buf: Buffer, off: number, end: number): Nexthop[] {
  const hops: Nexthop[] = [];
  while (off + 8 <= end) {
    const len = buf.readUInt16LE(off);
    if (len < 8 || off + len > end) break;
    const hop: Nexthop = { flags: buf[off + 2] ?? 0, weight: (buf[off + 3] ?? 0) + 1, oif: buf.readInt32LE(off + 4) };
    forEachAttr(buf, off + 8, off + len, (t, at, l) => {
      if (t === RTA_GATEWAY) hop.gateway = addressString(buf, at, l);
    });
    hops.push(hop);
    off += (len + 3) & ~3;
  }
  return hops;
}

/**
 * Identity of a route in the kernel. IPv4 keys a route by (table, prefix, tos, metric);
 * IPv6 lets routes to the same prefix and metric coexist on different interfaces or
 * gateways (one RA default route per uplink), so the next hop is part of its key.
 */
export function routeKey(r: Route): string {
  const base = routeBaseKey(r);
  // reject routes (unreachable, blackhole, …) have no next hop; IPv6 reports them on lo
  if (r.family === AF_INET || (r.type >= RTN_BLACKHOLE && r.type <= RTN_THROW)) return base;
  return `${base}|${r.gateway ?? ''}|${r.oif ?? 0}`;
}

/**
 * Whether an observed route is what `desired` asks for. Fields the kernel fills in by
 * itself (the interface of a gateway route, flags like linkdown) only count when asked for.
 */
export function routeSatisfies(desired: Route, observed: Route): boolean {
  return (
    desired.type === observed.type &&
    desired.protocol === observed.protocol &&
    desired.scope === observed.scope &&
    desired.gateway === observed.gateway &&
    (desired.oif === undefined || desired.oif === observed.oif) &&
    desired.prefsrc === observed.prefsrc &&
    (desired.pref === undefined || desired.pref === observed.pref) &&
    (desired.flags & RTNH_F_ONLINK) === (observed.flags & RTNH_F_ONLINK) &&
    observed.multipath === undefined
  );
}

/** The part of the key that a REPLACE matches on (in both families). */
export function routeBaseKey(r: Route): string {
  return `${r.family}|${r.table}|${r.dst}/${r.dstLen}|${r.src ?? ''}/${r.srcLen}|${r.tos}|${r.priority}`;
}

/** A route as netsession asks for it; unspecified fields take the kernel's defaults. */
export interface RouteSpec {
  family?: Family;
  table: number;
  /** 'default' or a prefix */
  dst: string;
  dstLen?: number;
  src?: string;
  srcLen?: number;
  tos?: number;
  priority?: number;
  type?: number;
  protocol: number;
  scope?: number;
  gateway?: string;
  oif?: number;
  prefsrc?: string;
  flags?: number;
  pref?: number;
}

/** Fills in defaults the way the kernel would report them, so desired and observed compare. */
export function normalizeRoute(spec: RouteSpec): Route {
  const isDefault = spec.dst === 'default';
  const family: Family =
    spec.family ?? (isDefault ? (spec.gateway?.includes(':') ? AF_INET6 : AF_INET) : spec.dst.includes(':') ? AF_INET6 : AF_INET);
  const dstLen = isDefault ? 0 : (spec.dstLen ?? (family === AF_INET ? 32 : 128));
  const type = spec.type ?? RTN_UNICAST;
  const r: Route = {
    family,
    table: spec.table,
    dst: isDefault ? (family === AF_INET ? '0.0.0.0' : '::') : canonicalAddress(spec.dst),
    dstLen,
    srcLen: spec.srcLen ?? 0,
    tos: spec.tos ?? 0,
    priority: spec.priority ?? (family === AF_INET6 ? 1024 : 0),
    type,
    protocol: spec.protocol,
    scope:
      spec.scope ?? (family === AF_INET && type === RTN_UNICAST && !spec.gateway && spec.oif !== undefined ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE),
    flags: spec.flags ?? 0,
  };
  if (spec.src !== undefined) r.src = canonicalAddress(spec.src);
  if (spec.gateway !== undefined) r.gateway = canonicalAddress(spec.gateway);
  if (spec.oif !== undefined) r.oif = spec.oif;
  if (spec.prefsrc !== undefined) r.prefsrc = canonicalAddress(spec.prefsrc);
  if (spec.pref !== undefined) r.pref = spec.pref;
  return r;
}

/** Writes an rtmsg + attributes for RTM_NEWROUTE (all fields) or RTM_DELROUTE (identity + protocol). */
export function writeRoute(w: MessageWriter, r: Route, forDelete: boolean): void {
  const h = w.struct(RTMSG_LEN);
  h[0] = r.family;
  h[1] = r.dstLen;
  h[2] = r.srcLen;
  h[3] = r.tos;
  h[4] = r.table < 256 ? r.table : 0;
  h[5] = r.protocol;
  h[6] = forDelete ? RT_SCOPE_NOWHERE : r.scope;
  h[7] = forDelete ? 0 : r.type;
  h.writeUInt32LE(forDelete ? 0 : r.flags & 0xff, 8);
  w.u32(RTA_TABLE, r.table);
  if (r.dstLen > 0) w.bytes(RTA_DST, addressBytes(r.dst));
  if (r.src !== undefined && r.srcLen > 0) w.bytes(RTA_SRC, addressBytes(r.src));
  w.u32(RTA_PRIORITY, r.priority);
  if (r.family === AF_INET6 || !forDelete) {
    if (r.gateway !== undefined) w.bytes(RTA_GATEWAY, addressBytes(r.gateway));
    if (r.oif !== undefined) w.u32(RTA_OIF, r.oif);
  }
  if (!forDelete) {
    if (r.prefsrc !== undefined) w.bytes(RTA_PREFSRC, addressBytes(r.prefsrc));
    if (r.pref !== undefined) w.u8(RTA_PREF, r.pref);
  }
}

export function routeDumpHeader(w: MessageWriter, family: number): void {
  w.struct(RTMSG_LEN)[0] = family;
}
