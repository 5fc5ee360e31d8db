// ICMPv6 Router Advertisements (RFC 4861 §4.2, RFC 4191, RFC 8106) and Router
// Solicitations: the wire format only. Pure: bytes in, values out. The parser never throws:
// hostile or broken packets come from the network, so malformed framing gives `undefined`
// and an option whose content is invalid is skipped, as RFC 4861 §4.6 asks of receivers.
import { addressBytes, addressString } from '../../kernel/netlink/codec.ts';

export const ICMP6_ROUTER_SOLICITATION = 133;
export const ICMP6_ROUTER_ADVERTISEMENT = 134;

export const ND_OPT_SOURCE_LINKADDR = 1;
export const ND_OPT_PREFIX_INFORMATION = 3;
export const ND_OPT_MTU = 5;
export const ND_OPT_ROUTE_INFORMATION = 24;
export const ND_OPT_RDNSS = 25;
export const ND_OPT_DNSSL = 31;

/** 0xffffffff in a 32-bit lifetime means "forever" (RFC 4861 §4.6.2, RFC 8106 §5.1). */
export const INFINITE_LIFETIME = 0xffffffff;

/** Default router / route preference (RFC 4191 §2.1). */
export type Preference = 'high' | 'medium' | 'low';

export interface PrefixInformation {
  prefix: string;
  length: number;
  /** L: the prefix is on-link */
  onLink: boolean;
  /** A: usable for SLAAC */
  autonomous: boolean;
  /** seconds; INFINITE_LIFETIME = forever */
  validLifetime: number;
  preferredLifetime: number;
}

export interface RouteInformation {
  prefix: string;
  length: number;
  preference: Preference;
  /** seconds; INFINITE_LIFETIME = forever */
  lifetime: number;
}

export interface RdnssEntry {
  address: string;
  /** seconds; 0 = stop using it; INFINITE_LIFETIME = forever */
  lifetime: number;
}

export interface DnsslEntry {
  /** lower case, without trailing dot */
  domain: string;
  lifetime: number;
}

export interface RouterAdvertisement {
  curHopLimit: number;
  /** M: addresses by DHCPv6 */
  managed: boolean;
  /** O: other configuration by DHCPv6 */
  other: boolean;
  homeAgent: boolean;
  proxy: boolean;
  /** default router preference; 'medium' when the lifetime is 0 (RFC 4191 §2.2) */
  preference: Preference;
  /** seconds as a default router; 0 = not a default router */
  routerLifetime: number;
  /** milliseconds, 0 = unspecified */
  reachableTime: number;
  /** milliseconds, 0 = unspecified */
  retransTimer: number;
  /** "aa:bb:cc:dd:ee:ff" */
  sourceLinkLayer?: string;
  mtu?: number;
  prefixes: PrefixInformation[];
  routes: RouteInformation[];
  rdnss: RdnssEntry[];
  dnssl: DnsslEntry[];
}

const RA_HEADER_LENGTH = 16;

/** RFC 4191: 01 high, 00 medium, 11 low; 10 is reserved. */
function preferenceBits(bits: number): Preference | undefined {
  switch (bits & 3) {
    case 1:
      return 'high';
    case 0:
      return 'medium';
    case 3:
      return 'low';
    default:
      return undefined;
  }
}

const mac = (b: Uint8Array, at: number, len: number): string =>
  Array.from(b.subarray(at, at + len), (x) => x.toString(16).padStart(2, '0')).join(':');

/** A prefix of `length` bits from `len` bytes at `at`, zero-padded to 16 bytes. */
function prefixString(b: Buffer, at: number, len: number): string {
  const p = Buffer.alloc(16);
  b.copy(p, 0, at, at + Math.min(len, 16));
  return addressString(p, 0, 16);
}

/** Labels of a domain in DNS wire format; names with anything but LDH/underscore are refused (they end up in resolv.conf). */
function parseDomains(b: Buffer, at: number, end: number): string[] | undefined {
  const out: string[] = [];
  let labels: string[] = [];
  let i = at;
  while (i < end) {
    const n = b[i] as number;
    i++;
    if (n === 0) {
      // end of a name, or padding after the last one
      if (labels.length > 0) out.push(labels.join('.').toLowerCase());
      labels = [];
      continue;
    }
    // compression pointers are not allowed here (RFC 8106 §5.2), and a label is ≤ 63 bytes
    if (n > 63 || i + n > end) return undefined;
    const label = b.toString('latin1', i, i + n);
    if (!/^[A-Za-z0-9_-]+$/.test(label)) return undefined;
    labels.push(label);
    i += n;
  }
  // a name not closed by a zero byte is malformed
  if (labels.length > 0) return undefined;
  return out.filter((d) => d.length <= 253);
}

/**
 * Parses the ICMPv6 part of a Router Advertisement (from the type byte on). Undefined when
 * it is not an RA or its framing is broken (short header, option length 0, option running
 * past the end): RFC 4861 §6.1.2 says to drop such a packet as a whole.
 */
export function parseRouterAdvertisement(data: Uint8Array): RouterAdvertisement | undefined {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (b.length < RA_HEADER_LENGTH || b[0] !== ICMP6_ROUTER_ADVERTISEMENT || b[1] !== 0) return undefined;
  const flags = b[5] as number;
  const routerLifetime = b.readUInt16BE(6);
  const ra: RouterAdvertisement = {
    curHopLimit: b[4] as number,
    managed: (flags & 0x80) !== 0,
    other: (flags & 0x40) !== 0,
    homeAgent: (flags & 0x20) !== 0,
    proxy: (flags & 0x04) !== 0,
    // reserved (10) counts as medium; so does anything sent with lifetime 0 (RFC 4191 §2.2)
    preference: routerLifetime === 0 ? 'medium' : (preferenceBits(flags >> 3) ?? 'medium'),
    routerLifetime,
    reachableTime: b.readUInt32BE(8),
    retransTimer: b.readUInt32BE(12),
    prefixes: [],
    routes: [],
    rdnss: [],
    dnssl: [],
  };
  let off = RA_HEADER_LENGTH;
  while (off < b.length) {
    if (off + 2 > b.length) return undefined;
    const type = b[off] as number;
    const len = (b[off + 1] as number) * 8;
    if (len === 0 || off + len > b.length) return undefined;
    parseOption(ra, b, type, off, len);
    off += len;
  }
  return ra;
}

/** One option of `len` bytes at `off`; invalid content is ignored. */
function parseOption(ra: RouterAdvertisement, b: Buffer, type: number, off: number, len: number): void {
  switch (type) {
    case ND_OPT_SOURCE_LINKADDR:
      // ethernet: 6 bytes in an 8-byte option; other link types keep all their bytes
      ra.sourceLinkLayer = mac(b, off + 2, len === 8 ? 6 : len - 2);
      return;
    case ND_OPT_PREFIX_INFORMATION: {
      const plen = b[off + 2] as number;
      if (len !== 32 || plen > 128) return;
      const pflags = b[off + 3] as number;
      ra.prefixes.push({
        prefix: prefixString(b, off + 16, 16),
        length: plen,
        onLink: (pflags & 0x80) !== 0,
        autonomous: (pflags & 0x40) !== 0,
        validLifetime: b.readUInt32BE(off + 4),
        preferredLifetime: b.readUInt32BE(off + 8),
      });
      return;
    }
    case ND_OPT_MTU:
      if (len === 8) ra.mtu = b.readUInt32BE(off + 4);
      return;
    case ND_OPT_ROUTE_INFORMATION: {
      const plen = b[off + 2] as number;
      const pref = preferenceBits((b[off + 3] as number) >> 3);
      // RFC 4191 §2.3: the option length must hold the prefix; a reserved preference drops it
      const need = plen === 0 ? 8 : plen <= 64 ? 16 : 24;
      if (plen > 128 || len < need || len > 24 || pref === undefined) return;
      ra.routes.push({ prefix: prefixString(b, off + 8, len - 8), length: plen, preference: pref, lifetime: b.readUInt32BE(off + 4) });
      return;
    }
    case ND_OPT_RDNSS: {
      // 8 bytes of header, then 16 per server (RFC 8106 §5.1: length ≥ 3 and odd)
      if (len < 24 || (len - 8) % 16 !== 0) return;
      const lifetime = b.readUInt32BE(off + 4);
      for (let at = off + 8; at < off + len; at += 16) ra.rdnss.push({ address: addressString(b, at, 16), lifetime });
      return;
    }
    case ND_OPT_DNSSL: {
      if (len < 16) return;
      const lifetime = b.readUInt32BE(off + 4);
      const domains = parseDomains(b, off + 8, off + len);
      if (domains) for (const domain of domains) ra.dnssl.push({ domain, lifetime });
      return;
    }
    default:
      // unknown options are skipped (RFC 4861 §4.6)
      return;
  }
}

/** "aa:bb:cc:dd:ee:ff" → 6 bytes; undefined for anything else. */
export function parseMac(text: string): Buffer | undefined {
  if (!/^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/.test(text)) return undefined;
  return Buffer.from(text.split(':').map((h) => Number.parseInt(h, 16)));
}

/**
 * A Router Solicitation (RFC 4861 §4.1), ICMPv6 part only; the checksum stays 0 because
 * the kernel fills it in for raw ICMPv6 sockets. With a MAC, it carries the source
 * link-layer option so the router can answer without neighbour discovery first (it must
 * be left out when the packet goes out from `::`, which the caller knows, not us).
 */
export function buildRouterSolicitation(sourceMac?: string): Buffer {
  const m = sourceMac === undefined ? undefined : parseMac(sourceMac);
  if (sourceMac !== undefined && m === undefined) throw new TypeError(`not a MAC address: ${JSON.stringify(sourceMac)}`);
  const b = Buffer.alloc(m ? 16 : 8);
  b[0] = ICMP6_ROUTER_SOLICITATION;
  if (m) {
    b[8] = ND_OPT_SOURCE_LINKADDR;
    b[9] = 1;
    m.copy(b, 10);
  }
  return b;
}

/** Encoder for tests and tools: the inverse of parseRouterAdvertisement for what it keeps. */
export function buildRouterAdvertisement(ra: Partial<RouterAdvertisement>): Buffer {
  const parts: Buffer[] = [];
  const h = Buffer.alloc(RA_HEADER_LENGTH);
  h[0] = ICMP6_ROUTER_ADVERTISEMENT;
  h[4] = ra.curHopLimit ?? 64;
  const prf = { high: 1, medium: 0, low: 3 }[ra.preference ?? 'medium'];
  h[5] = (ra.managed ? 0x80 : 0) | (ra.other ? 0x40 : 0) | (ra.homeAgent ? 0x20 : 0) | (prf << 3) | (ra.proxy ? 0x04 : 0);
  h.writeUInt16BE(ra.routerLifetime ?? 1800, 6);
  h.writeUInt32BE(ra.reachableTime ?? 0, 8);
  h.writeUInt32BE(ra.retransTimer ?? 0, 12);
  parts.push(h);
  const addr = (a: string): Buffer => addressBytes(a);
  if (ra.sourceLinkLayer !== undefined) {
    const m = parseMac(ra.sourceLinkLayer);
    if (m) parts.push(Buffer.concat([Buffer.from([ND_OPT_SOURCE_LINKADDR, 1]), m]));
  }
  if (ra.mtu !== undefined) {
    const o = Buffer.alloc(8);
    o[0] = ND_OPT_MTU;
    o[1] = 1;
    o.writeUInt32BE(ra.mtu, 4);
    parts.push(o);
  }
  for (const p of ra.prefixes ?? []) {
    const o = Buffer.alloc(32);
    o[0] = ND_OPT_PREFIX_INFORMATION;
    o[1] = 4;
    o[2] = p.length;
    o[3] = (p.onLink ? 0x80 : 0) | (p.autonomous ? 0x40 : 0);
    o.writeUInt32BE(p.validLifetime, 4);
    o.writeUInt32BE(p.preferredLifetime, 8);
    addr(p.prefix).copy(o, 16);
    parts.push(o);
  }
  for (const r of ra.routes ?? []) {
    const bytes = r.length === 0 ? 0 : r.length <= 64 ? 8 : 16;
    const o = Buffer.alloc(8 + bytes);
    o[0] = ND_OPT_ROUTE_INFORMATION;
    o[1] = o.length / 8;
    o[2] = r.length;
    o[3] = { high: 1, medium: 0, low: 3 }[r.preference] << 3;
    o.writeUInt32BE(r.lifetime, 4);
    addr(r.prefix).copy(o, 8, 0, bytes);
    parts.push(o);
  }
  // one RDNSS / DNSSL option per distinct lifetime, as a router would send them
  for (const [lifetime, list] of groupBy(ra.rdnss ?? [], (e) => e.lifetime)) {
    const o = Buffer.alloc(8 + 16 * list.length);
    o[0] = ND_OPT_RDNSS;
    o[1] = o.length / 8;
    o.writeUInt32BE(lifetime, 4);
    list.forEach((e, i) => {
      addr(e.address).copy(o, 8 + 16 * i);
    });
    parts.push(o);
  }
  for (const [lifetime, list] of groupBy(ra.dnssl ?? [], (e) => e.lifetime)) {
    const names = Buffer.concat(
      list.map((e) =>
        Buffer.concat([...e.domain.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')])), Buffer.from([0])]),
      ),
    );
    const o = Buffer.alloc(8 + Math.ceil(names.length / 8) * 8);
    o[0] = ND_OPT_DNSSL;
    o[1] = o.length / 8;
    o.writeUInt32BE(lifetime, 4);
    names.copy(o, 8);
    parts.push(o);
  }
  return Buffer.concat(parts);
}

function groupBy<T>(xs: readonly T[], key: (x: T) => number): Map<number, T[]> {
  const m = new Map<number, T[]>();
  for (const x of xs) m.set(key(x), [...(m.get(key(x)) ?? []), x]);
  return m;
}
