// DHCPv4 messages (RFC 2131 BOOTP frame, RFC 2132 options, RFC 3396 long options, RFC 3397
// domain search): encode and decode. Pure.
//
// The decoder faces whatever anybody on the link sends, so it never throws: a packet that
// cannot be a DHCP message is an error value, and an option that is malformed on its own is
// dropped (with a warning) while the rest of the message stays usable. Names that will end
// up in resolv.conf or logs are checked here, once: a rogue server cannot smuggle a newline.

export const BOOTREQUEST = 1;
export const BOOTREPLY = 2;
export const HTYPE_ETHERNET = 1;
export const SERVER_PORT = 67;
export const CLIENT_PORT = 68;
/** RFC 1542 §2.1: relays may drop BOOTP messages shorter than this, so we pad up to it. */
export const MIN_MESSAGE_SIZE = 300;
const FIXED_SIZE = 236;
const MAGIC_COOKIE = 0x63825363;
const FLAG_BROADCAST = 0x8000;

export const OPT = {
  PAD: 0,
  SUBNET_MASK: 1,
  ROUTERS: 3,
  DNS_SERVERS: 6,
  HOST_NAME: 12,
  DOMAIN_NAME: 15,
  MTU: 26,
  NTP_SERVERS: 42,
  REQUESTED_ADDRESS: 50,
  LEASE_TIME: 51,
  OVERLOAD: 52,
  MESSAGE_TYPE: 53,
  SERVER_ID: 54,
  PARAMETER_REQUEST_LIST: 55,
  MESSAGE: 56,
  MAX_MESSAGE_SIZE: 57,
  RENEWAL_TIME: 58,
  REBINDING_TIME: 59,
  CLIENT_ID: 61,
  DOMAIN_SEARCH: 119,
  END: 255,
} as const;

export const MESSAGE_TYPES = ['DISCOVER', 'OFFER', 'REQUEST', 'DECLINE', 'ACK', 'NAK', 'RELEASE', 'INFORM'] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];

export interface DhcpOptions {
  messageType?: MessageType;
  subnetMask?: string;
  routers?: string[];
  dnsServers?: string[];
  hostName?: string;
  domainName?: string;
  mtu?: number;
  ntpServers?: string[];
  requestedAddress?: string;
  /** seconds; 0xffffffff means infinite */
  leaseTime?: number;
  serverId?: string;
  parameterRequestList?: number[];
  /** option 56: a server's explanation (NAK); control characters replaced */
  message?: string;
  maxMessageSize?: number;
  renewalTime?: number;
  rebindingTime?: number;
  clientId?: Uint8Array;
  domainSearch?: string[];
  /** options this codec does not interpret, kept so a message survives a round trip */
  unknown?: { code: number; data: Uint8Array }[];
}

export interface DhcpMessage {
  op: number;
  htype: number;
  hlen: number;
  hops: number;
  xid: number;
  secs: number;
  /** the BROADCAST bit of `flags` (the other bits are reserved and sent as zero) */
  broadcast: boolean;
  ciaddr: string;
  yiaddr: string;
  siaddr: string;
  giaddr: string;
  /** the first `hlen` bytes of chaddr, as lowercase colon-separated hex */
  chaddr: string;
  options: DhcpOptions;
}

export type DecodeResult =
  | { ok: true; message: DhcpMessage; warnings: string[] }
  | { ok: false; error: string };

// ---------------------------------------------------------------------------------------
// addresses

/** Dotted quad → 4 bytes; undefined for anything else (no leading zeros, no shorthand). */
export function parseIpv4(s: string): number[] | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const bytes = m.slice(1).map(Number);
  if (bytes.some((b) => b > 255)) return undefined;
  return bytes;
}

export function ipv4ToU32(s: string): number {
  const b = parseIpv4(s);
  if (!b) throw new RangeError(`not an IPv4 address: ${JSON.stringify(s)}`);
  return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
}

export function u32ToIpv4(v: number): string {
  return `${(v >>> 24) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

function ipAt(b: Uint8Array, o: number): string {
  return `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
}

/** An address a host may have or talk to: not 0/8, loopback, multicast, reserved or broadcast. */
export function isUsableUnicast(s: string): boolean {
  const b = parseIpv4(s);
  if (!b) return false;
  const first = b[0]!;
  return first !== 0 && first !== 127 && first < 224;
}

/** Prefix length of a contiguous netmask; undefined if the mask has holes. */
export function maskToPrefixLen(mask: string): number | undefined {
  const b = parseIpv4(mask);
  if (!b) return undefined;
  const v = ipv4ToU32(mask);
  const inv = ~v >>> 0;
  // contiguous ⇔ the inverted mask is 2^k − 1
  if ((inv & (inv + 1)) !== 0) return undefined;
  return 32 - Math.log2(inv + 1);
}

export function normalizeMac(mac: string): string | undefined {
  const parts = mac.split(/[:-]/);
  if (parts.length < 1 || parts.length > 16 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) return undefined;
  return parts.join(':').toLowerCase();
}

function macBytes(mac: string): number[] {
  if (mac === '') return []; // hlen 0
  const n = normalizeMac(mac);
  if (n === undefined) throw new RangeError(`not a hardware address: ${JSON.stringify(mac)}`);
  return n.split(':').map((p) => Number.parseInt(p, 16));
}

// ---------------------------------------------------------------------------------------
// names

const LABEL = /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/** A DNS name made of letters, digits, '-' and '_' (no trailing dot); undefined otherwise. */
export function checkDomainName(s: string): string | undefined {
  const name = s.endsWith('.') ? s.slice(0, -1) : s;
  if (name.length === 0 || name.length > 253) return undefined;
  return name.split('.').every((l) => LABEL.test(l)) ? name : undefined;
}

/** RFC 3397: names in DNS wire format, with compression pointers relative to the option data. */
export function encodeDomainSearch(names: readonly string[]): Uint8Array {
  const out: number[] = [];
  const seen = new Map<string, number>();
  for (const raw of names) {
    const name = checkDomainName(raw);
    if (name === undefined) throw new RangeError(`bad domain name ${JSON.stringify(raw)}`);
    const labels = name.split('.');
    let i = 0;
    for (; i < labels.length; i++) {
      const suffix = labels.slice(i).join('.').toLowerCase();
      const at = seen.get(suffix);
      if (at !== undefined) {
        out.push(0xc0 | (at >> 8), at & 0xff);
        break;
      }
      // pointers have 14 bits: later suffixes can only be reused if they start within reach
      if (out.length < 0x4000) seen.set(suffix, out.length);
      const l = labels[i]!;
      out.push(l.length);
      for (const ch of l) out.push(ch.charCodeAt(0));
    }
    if (i === labels.length) out.push(0);
  }
  return Uint8Array.from(out);
}

/**
 * Decodes RFC 3397 data. A structurally broken list gives undefined; a well-formed name with
 * characters we do not accept is left out (it is never worth more than the others).
 */
export function decodeDomainSearch(data: Uint8Array): { names: string[]; dropped: number } | undefined {
  const names: string[] = [];
  let dropped = 0;
  let p = 0;
  while (p < data.length) {
    const labels: string[] = [];
    let pos = p;
    // every pointer must go strictly below everything read so far for this name, so the
    // walk always terminates
    let lowest = p;
    let jumped = false;
    let wire = 0;
    for (;;) {
      if (pos >= data.length) return undefined;
      const len = data[pos]!;
      if (len === 0) {
        if (!jumped) p = pos + 1;
        break;
      }
      if ((len & 0xc0) === 0xc0) {
        if (pos + 1 >= data.length) return undefined;
        const target = ((len & 0x3f) << 8) | data[pos + 1]!;
        if (target >= lowest) return undefined;
        if (!jumped) p = pos + 2;
        jumped = true;
        lowest = target;
        pos = target;
        continue;
      }
      if ((len & 0xc0) !== 0) return undefined; // 0x40/0x80: extended label types, obsolete
      if (pos + 1 + len > data.length) return undefined;
      wire += len + 1;
      if (wire > 255) return undefined;
      let label = '';
      for (let i = pos + 1; i <= pos + len; i++) label += String.fromCharCode(data[i]!);
      labels.push(label);
      pos += len + 1;
    }
    const name = labels.length === 0 ? undefined : checkDomainName(labels.join('.'));
    if (name === undefined) dropped++;
    else names.push(name);
  }
  return { names, dropped };
}

// ---------------------------------------------------------------------------------------
// options

function trimNul(b: Uint8Array): Uint8Array {
  let end = b.length;
  // servers disagree on whether text options carry a C string's NUL
  while (end > 0 && b[end - 1] === 0) end--;
  return b.subarray(0, end);
}

function latin1(b: Uint8Array): string {
  let s = '';
  for (const c of b) s += String.fromCharCode(c);
  return s;
}

function addrList(d: Uint8Array): string[] | undefined {
  if (d.length === 0 || d.length % 4 !== 0) return undefined;
  const out: string[] = [];
  for (let o = 0; o < d.length; o += 4) out.push(ipAt(d, o));
  return out;
}

function u32be(d: Uint8Array): number | undefined {
  return d.length === 4 ? ((d[0]! << 24) | (d[1]! << 16) | (d[2]! << 8) | d[3]!) >>> 0 : undefined;
}

function u16be(d: Uint8Array): number | undefined {
  return d.length === 2 ? (d[0]! << 8) | d[1]! : undefined;
}

/** Fills `opts` from one (concatenated, RFC 3396) option; returns a warning if it was dropped. */
function interpret(code: number, d: Uint8Array, opts: DhcpOptions): string | undefined {
  const bad = (): string => `option ${code}: malformed (${d.length} bytes), ignored`;
  switch (code) {
    case OPT.MESSAGE_TYPE: {
      const t = d.length === 1 ? MESSAGE_TYPES[d[0]! - 1] : undefined;
      if (t === undefined) return bad();
      opts.messageType = t;
      return undefined;
    }
    case OPT.SUBNET_MASK:
    case OPT.REQUESTED_ADDRESS:
    case OPT.SERVER_ID: {
      if (d.length !== 4) return bad();
      const a = ipAt(d, 0);
      if (code === OPT.SUBNET_MASK) opts.subnetMask = a;
      else if (code === OPT.REQUESTED_ADDRESS) opts.requestedAddress = a;
      else opts.serverId = a;
      return undefined;
    }
    case OPT.ROUTERS:
    case OPT.DNS_SERVERS:
    case OPT.NTP_SERVERS: {
      const l = addrList(d);
      if (!l) return bad();
      if (code === OPT.ROUTERS) opts.routers = l;
      else if (code === OPT.DNS_SERVERS) opts.dnsServers = l;
      else opts.ntpServers = l;
      return undefined;
    }
    case OPT.LEASE_TIME:
    case OPT.RENEWAL_TIME:
    case OPT.REBINDING_TIME: {
      const v = u32be(d);
      if (v === undefined) return bad();
      if (code === OPT.LEASE_TIME) opts.leaseTime = v;
      else if (code === OPT.RENEWAL_TIME) opts.renewalTime = v;
      else opts.rebindingTime = v;
      return undefined;
    }
    case OPT.MTU:
    case OPT.MAX_MESSAGE_SIZE: {
      const v = u16be(d);
      // RFC 2132: MTU ≥ 68, maximum message size ≥ 576
      if (v === undefined || v < (code === OPT.MTU ? 68 : 576)) return bad();
      if (code === OPT.MTU) opts.mtu = v;
      else opts.maxMessageSize = v;
      return undefined;
    }
    case OPT.HOST_NAME:
    case OPT.DOMAIN_NAME: {
      const name = checkDomainName(latin1(trimNul(d)));
      if (name === undefined) return `option ${code}: not a valid name, ignored`;
      if (code === OPT.HOST_NAME) opts.hostName = name;
      else opts.domainName = name;
      return undefined;
    }
    case OPT.MESSAGE:
      opts.message = Buffer.from(trimNul(d))
        .toString('utf8')
        .replace(/[\u0000-\u001f\u007f]/g, '?');
      return undefined;
    case OPT.PARAMETER_REQUEST_LIST:
      if (d.length === 0) return bad();
      opts.parameterRequestList = [...d];
      return undefined;
    case OPT.CLIENT_ID:
      if (d.length < 2) return bad();
      opts.clientId = Uint8Array.from(d);
      return undefined;
    case OPT.DOMAIN_SEARCH: {
      const r = decodeDomainSearch(d);
      if (!r) return bad();
      opts.domainSearch = r.names;
      return r.dropped > 0 ? `option 119: ${r.dropped} invalid name(s) ignored` : undefined;
    }
    default:
      opts.unknown = [...(opts.unknown ?? []), { code, data: Uint8Array.from(d) }];
      return undefined;
  }
}

// ---------------------------------------------------------------------------------------
// decode

export function decode(input: Uint8Array): DecodeResult {
  const b = input;
  if (b.length < FIXED_SIZE + 4) return { ok: false, error: `too short (${b.length} bytes)` };
  const u16 = (o: number): number => (b[o]! << 8) | b[o + 1]!;
  const u32 = (o: number): number => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
  const op = b[0]!;
  if (op !== BOOTREQUEST && op !== BOOTREPLY) return { ok: false, error: `bad op ${op}` };
  const hlen = b[2]!;
  if (hlen > 16) return { ok: false, error: `bad hlen ${hlen}` };
  if (u32(FIXED_SIZE) !== MAGIC_COOKIE) return { ok: false, error: 'no DHCP magic cookie' };

  // collect option data first: RFC 3396 says instances of one code are concatenated
  const chunks = new Map<number, Uint8Array[]>();
  let p = FIXED_SIZE + 4;
  // a message that runs to the end of the buffer without an END option is accepted
  while (p < b.length) {
    const code = b[p]!;
    if (code === OPT.PAD) {
      p++;
      continue;
    }
    if (code === OPT.END) break;
    if (p + 1 >= b.length) return { ok: false, error: `option ${code} truncated` };
    const len = b[p + 1]!;
    if (p + 2 + len > b.length) return { ok: false, error: `option ${code} truncated` };
    const list = chunks.get(code) ?? [];
    list.push(b.subarray(p + 2, p + 2 + len));
    chunks.set(code, list);
    p += 2 + len;
  }
  const warnings: string[] = [];
  const options: DhcpOptions = {};
  for (const [code, parts] of chunks) {
    // option overload (52) would move more options into sname/file; nobody we serve uses it
    if (code === OPT.OVERLOAD) {
      warnings.push('option 52 (overload) ignored');
      continue;
    }
    const w = interpret(code, parts.length === 1 ? parts[0]! : Buffer.concat(parts), options);
    if (w !== undefined) warnings.push(w);
  }
  const chaddr: string[] = [];
  for (let i = 0; i < hlen; i++) chaddr.push(b[28 + i]!.toString(16).padStart(2, '0'));
  return {
    ok: true,
    warnings,
    message: {
      op,
      htype: b[1]!,
      hlen,
      hops: b[3]!,
      xid: u32(4),
      secs: u16(8),
      broadcast: (u16(10) & FLAG_BROADCAST) !== 0,
      ciaddr: ipAt(b, 12),
      yiaddr: ipAt(b, 16),
      siaddr: ipAt(b, 20),
      giaddr: ipAt(b, 24),
      chaddr: chaddr.join(':'),
      options,
    },
  };
}

// ---------------------------------------------------------------------------------------
// encode

function optBytes(o: DhcpOptions): [number, Uint8Array][] {
  const out: [number, Uint8Array][] = [];
  const ip = (s: string): Uint8Array => {
    const v = parseIpv4(s);
    if (!v) throw new RangeError(`not an IPv4 address: ${JSON.stringify(s)}`);
    return Uint8Array.from(v);
  };
  const ips = (l: readonly string[]): Uint8Array => Buffer.concat(l.map(ip));
  const n32 = (v: number): Uint8Array => {
    const x = Buffer.alloc(4);
    x.writeUInt32BE(v >>> 0);
    return x;
  };
  const n16 = (v: number): Uint8Array => {
    const x = Buffer.alloc(2);
    x.writeUInt16BE(v);
    return x;
  };
  const text = (s: string): Uint8Array => Buffer.from(s, 'utf8');
  if (o.messageType !== undefined) out.push([OPT.MESSAGE_TYPE, Uint8Array.of(MESSAGE_TYPES.indexOf(o.messageType) + 1)]);
  if (o.subnetMask !== undefined) out.push([OPT.SUBNET_MASK, ip(o.subnetMask)]);
  if (o.routers?.length) out.push([OPT.ROUTERS, ips(o.routers)]);
  if (o.dnsServers?.length) out.push([OPT.DNS_SERVERS, ips(o.dnsServers)]);
  if (o.hostName !== undefined) out.push([OPT.HOST_NAME, text(o.hostName)]);
  if (o.domainName !== undefined) out.push([OPT.DOMAIN_NAME, text(o.domainName)]);
  if (o.mtu !== undefined) out.push([OPT.MTU, n16(o.mtu)]);
  if (o.ntpServers?.length) out.push([OPT.NTP_SERVERS, ips(o.ntpServers)]);
  if (o.requestedAddress !== undefined) out.push([OPT.REQUESTED_ADDRESS, ip(o.requestedAddress)]);
  if (o.leaseTime !== undefined) out.push([OPT.LEASE_TIME, n32(o.leaseTime)]);
  if (o.serverId !== undefined) out.push([OPT.SERVER_ID, ip(o.serverId)]);
  if (o.parameterRequestList?.length) out.push([OPT.PARAMETER_REQUEST_LIST, Uint8Array.from(o.parameterRequestList)]);
  if (o.message !== undefined) out.push([OPT.MESSAGE, text(o.message)]);
  if (o.maxMessageSize !== undefined) out.push([OPT.MAX_MESSAGE_SIZE, n16(o.maxMessageSize)]);
  if (o.renewalTime !== undefined) out.push([OPT.RENEWAL_TIME, n32(o.renewalTime)]);
  if (o.rebindingTime !== undefined) out.push([OPT.REBINDING_TIME, n32(o.rebindingTime)]);
  if (o.clientId !== undefined) out.push([OPT.CLIENT_ID, o.clientId]);
  if (o.domainSearch?.length) out.push([OPT.DOMAIN_SEARCH, encodeDomainSearch(o.domainSearch)]);
  for (const u of o.unknown ?? []) out.push([u.code, u.data]);
  return out;
}

/**
 * The wire form of a message, padded to 300 bytes. Options longer than 255 bytes are split
 * into several instances (RFC 3396). Throws RangeError on values that cannot be encoded:
 * the encoder only sees what our own code builds.
 */
export function encode(m: DhcpMessage): Buffer {
  const head = Buffer.alloc(FIXED_SIZE + 4);
  head[0] = m.op;
  head[1] = m.htype;
  head[2] = m.hlen;
  head[3] = m.hops;
  head.writeUInt32BE(m.xid >>> 0, 4);
  head.writeUInt16BE(Math.min(Math.max(0, Math.floor(m.secs)), 0xffff), 8);
  head.writeUInt16BE(m.broadcast ? FLAG_BROADCAST : 0, 10);
  for (const [off, a] of [
    [12, m.ciaddr],
    [16, m.yiaddr],
    [20, m.siaddr],
    [24, m.giaddr],
  ] as const) {
    const v = parseIpv4(a);
    if (!v) throw new RangeError(`not an IPv4 address: ${JSON.stringify(a)}`);
    head.set(v, off);
  }
  const hw = macBytes(m.chaddr);
  if (hw.length > 16) throw new RangeError('chaddr longer than 16 bytes');
  head.set(hw, 28);
  head.writeUInt32BE(MAGIC_COOKIE, FIXED_SIZE);
  const parts: Uint8Array[] = [head];
  for (const [code, data] of optBytes(m.options)) {
    if (code === OPT.PAD || code === OPT.END || code < 0 || code > 255) throw new RangeError(`bad option code ${code}`);
    if (data.length === 0) {
      parts.push(Uint8Array.of(code, 0));
      continue;
    }
    for (let o = 0; o < data.length; o += 255) {
      const piece = data.subarray(o, o + 255);
      parts.push(Uint8Array.of(code, piece.length), piece);
    }
  }
  parts.push(Uint8Array.of(OPT.END));
  const body = Buffer.concat(parts);
  return body.length >= MIN_MESSAGE_SIZE ? body : Buffer.concat([body, Buffer.alloc(MIN_MESSAGE_SIZE - body.length)]);
}
