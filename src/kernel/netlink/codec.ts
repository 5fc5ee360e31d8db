// Netlink framing and attribute (TLV) encoding. Pure functions over Buffers; the
// per-object codecs in ../rtnetlink/ build on these.
import { isIPv4, isIPv6 } from 'node:net';
import { AF_INET, AF_INET6, type Family, NLMSG_HDRLEN } from './constants.ts';

export interface NlHeader {
  len: number;
  type: number;
  flags: number;
  seq: number;
  pid: number;
}

export const align4 = (n: number): number => (n + 3) & ~3;

/** Calls `each` for every netlink message in `buf[0, n)`. Stops at a malformed length. */
export function forEachMessage(buf: Buffer, n: number, each: (h: NlHeader, payloadOff: number) => void): void {
  let off = 0;
  while (off + NLMSG_HDRLEN <= n) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > n) return;
    each(
      {
        len,
        type: buf.readUInt16LE(off + 4),
        flags: buf.readUInt16LE(off + 6),
        seq: buf.readUInt32LE(off + 8),
        pid: buf.readUInt32LE(off + 12),
      },
      off + NLMSG_HDRLEN,
    );
    off += align4(len);
  }
}

/** Calls `each(type, valueOff, valueLen)` for each attribute in `[off, end)`. Nested flag bit is cleared. */
export function forEachAttr(buf: Buffer, off: number, end: number, each: (type: number, at: number, len: number) => void): void {
  while (off + 4 <= end) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > end) return;
    each(buf.readUInt16LE(off + 2) & 0x3fff, off + 4, len - 4);
    off += align4(len);
  }
}

export function readCString(buf: Buffer, at: number, len: number): string {
  let end = at;
  const stop = at + len;
  while (end < stop && buf[end] !== 0) end++;
  return buf.toString('utf8', at, end);
}

/** Growable little-endian writer for one netlink message: header, fixed struct, attributes. */
export class MessageWriter {
  private buf: Buffer;
  private off = 0;
  private readonly nests: number[] = [];

  constructor(type: number, flags: number, seq: number, capacity = 256) {
    this.buf = Buffer.alloc(capacity);
    this.off = NLMSG_HDRLEN;
    this.buf.writeUInt16LE(type, 4);
    this.buf.writeUInt16LE(flags, 6);
    this.buf.writeUInt32LE(seq >>> 0, 8);
  }

  private room(n: number): number {
    if (this.off + n > this.buf.length) {
      const next = Buffer.alloc(Math.max(this.buf.length * 2, this.off + n + 64));
      this.buf.copy(next, 0, 0, this.off);
      this.buf = next;
    }
    const at = this.off;
    this.off += n;
    return at;
  }

  /** Reserves `n` zeroed bytes (a fixed struct) and returns a view to fill in. */
  struct(n: number): Buffer {
    const at = this.room(align4(n));
    return this.buf.subarray(at, at + n);
  }

  private attrHeader(type: number, valueLen: number): number {
    const at = this.room(align4(4 + valueLen));
    this.buf.writeUInt16LE(4 + valueLen, at);
    this.buf.writeUInt16LE(type, at + 2);
    return at + 4;
  }

  u8(type: number, v: number): this {
    this.buf[this.attrHeader(type, 1)] = v;
    return this;
  }
  u16(type: number, v: number): this {
    this.buf.writeUInt16LE(v, this.attrHeader(type, 2));
    return this;
  }
  u32(type: number, v: number): this {
    this.buf.writeUInt32LE(v >>> 0, this.attrHeader(type, 4));
    return this;
  }
  bytes(type: number, v: Uint8Array): this {
    this.buf.set(v, this.attrHeader(type, v.length));
    return this;
  }
  string(type: number, v: string): this {
    const b = Buffer.from(`${v}\0`, 'utf8');
    return this.bytes(type, b);
  }
  beginNest(type: number): this {
    this.nests.push(this.off);
    this.attrHeader(type | 0x8000, 0);
    return this;
  }
  endNest(): this {
    const at = this.nests.pop();
    if (at === undefined) throw new Error('endNest without beginNest');
    this.buf.writeUInt16LE(this.off - at, at);
    return this;
  }

  finish(): Buffer {
    this.buf.writeUInt32LE(this.off, 0);
    return this.buf.subarray(0, this.off);
  }
}

// ---- addresses ----------------------------------------------------------------

export function familyOf(addr: string): Family {
  if (isIPv4(addr)) return AF_INET;
  if (isIPv6(addr)) return AF_INET6;
  throw new TypeError(`not an IP address: ${JSON.stringify(addr)}`);
}

export function addressBytes(addr: string): Buffer {
  if (isIPv4(addr)) {
    const b = Buffer.alloc(4);
    const p = addr.split('.');
    for (let i = 0; i < 4; i++) b[i] = Number(p[i]);
    return b;
  }
  if (!isIPv6(addr)) throw new TypeError(`not an IP address: ${JSON.stringify(addr)}`);
  const b = Buffer.alloc(16);
  let s = addr;
  // a trailing dotted quad (::ffff:1.2.3.4) becomes two hextets
  const lastColon = s.lastIndexOf(':');
  if (s.indexOf('.', lastColon) !== -1) {
    const q = addressBytes(s.slice(lastColon + 1));
    s = `${s.slice(0, lastColon + 1)}${q.readUInt16BE(0).toString(16)}:${q.readUInt16BE(2).toString(16)}`;
  }
  const [head, tail] = s.split('::') as [string, string | undefined];
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
  for (let i = 0; i < 8; i++) b.writeUInt16BE(Number.parseInt(groups[i] ?? '0', 16), i * 2);
  return b;
}

/** Address bytes to text; IPv6 in RFC 5952 form (what inet_ntop and iproute2 print). */
export function addressString(buf: Buffer, at: number, len: number): string {
  if (len === 4) return `${buf[at]}.${buf[at + 1]}.${buf[at + 2]}.${buf[at + 3]}`;
  if (len !== 16) return buf.toString('hex', at, at + len);
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push(buf.readUInt16BE(at + i * 2));
  // IPv4-mapped: ::ffff:a.b.c.d
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `::ffff:${buf[at + 12]}.${buf[at + 13]}.${buf[at + 14]}.${buf[at + 15]}`;
  }
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number, b: number): string =>
    g
      .slice(a, b)
      .map((x) => x.toString(16))
      .join(':');
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLen, 8)}`;
}

/** Canonical text of an address (so `2001:DB8::0:1` and `2001:db8::1` compare equal). */
export function canonicalAddress(addr: string): string {
  const b = addressBytes(addr);
  return addressString(b, 0, b.length);
}
