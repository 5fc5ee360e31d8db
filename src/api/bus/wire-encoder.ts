// D-Bus marshalling of the messages we send (little-endian), in one pass into one buffer.
// dbus-next converts every outgoing message twice (its JS values to a nested "native" form,
// then through a chain of small put-streams) and parses each signature again per value: about
// 0.3 ms for one session Update, which is most of what telling 1,000 sessions of a change
// costs. This takes dbus-next's own value conventions (Variant objects, plain objects for
// dicts, arrays for structs, bigint or number for x/t, Buffer or number[] for ay) and writes
// the same bytes dbus-next would (a test compares them).
import type { Message } from 'dbus-next';

/** A complete type of a signature, parsed once. */
export interface TypeNode {
  code: string;
  /** array: [element]; dict entry: [key, value]; struct: members */
  child: TypeNode[];
  /** the alignment of the type's start */
  align: number;
}

const ALIGN: Record<string, number> = { y: 1, b: 4, n: 2, q: 2, i: 4, u: 4, x: 8, t: 8, d: 8, s: 4, o: 4, g: 1, v: 1, h: 4, a: 4, '(': 8, '{': 8 };
const MAX_CACHED = 512;
const parsed = new Map<string, TypeNode[]>();

export function parseSignature(sig: string): TypeNode[] {
  const hit = parsed.get(sig);
  if (hit) return hit;
  let i = 0;
  const one = (): TypeNode => {
    const c = sig[i++];
    if (c === undefined) throw new TypeError(`incomplete signature "${sig}"`);
    if (c === 'a') return { code: 'a', child: [one()], align: 4 };
    if (c === '(' || c === '{') {
      const close = c === '(' ? ')' : '}';
      const child: TypeNode[] = [];
      while (sig[i] !== close) {
        if (i >= sig.length) throw new TypeError(`unclosed ${c} in signature "${sig}"`);
        child.push(one());
      }
      i++;
      if (child.length === 0 || (c === '{' && child.length !== 2)) throw new TypeError(`bad ${c}…${close} in signature "${sig}"`);
      return { code: c, child, align: 8 };
    }
    const align = ALIGN[c];
    if (align === undefined || c === ')' || c === '}') throw new TypeError(`bad type code "${c}" in signature "${sig}"`);
    return { code: c, child: [], align };
  };
  const out: TypeNode[] = [];
  while (i < sig.length) out.push(one());
  if (parsed.size >= MAX_CACHED) parsed.clear();
  parsed.set(sig, out);
  return out;
}

interface VariantLike {
  signature: string;
  value: unknown;
}

const isVariant = (v: unknown): v is VariantLike => typeof v === 'object' && v !== null && typeof (v as VariantLike).signature === 'string' && 'value' in v;

/** A growing little-endian buffer; offsets are from the message's start (alignment is too). */
class Writer {
  buf: Buffer;
  pos = 0;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  align(n: number): void {
    const pad = (n - (this.pos % n)) % n;
    if (pad === 0) return;
    this.ensure(pad);
    this.buf.fill(0, this.pos, this.pos + pad);
    this.pos += pad;
  }

  u8(v: number): void {
    this.ensure(1);
    this.pos = this.buf.writeUInt8(v, this.pos);
  }

  u32(v: number): void {
    this.align(4);
    this.ensure(4);
    this.pos = this.buf.writeUInt32LE(v, this.pos);
  }

  /** a string's bytes and its NUL, after a length of `lenBytes` (4: s, o; 1: g) */
  str(v: unknown, lenBytes: 1 | 4): void {
    if (typeof v !== 'string') throw new TypeError(`expected a string, got ${typeof v}`);
    if (lenBytes === 4) this.align(4);
    const len = v.length;
    this.ensure(lenBytes + len * 3 + 1);
    const buf = this.buf;
    const at = this.pos;
    let p = at + lenBytes;
    // short ASCII strings (names, paths, addresses) byte by byte: cheaper than a call into C++
    let k = 0;
    for (; k < len; k++) {
      const c = v.charCodeAt(k);
      if (c >= 0x80) break;
      // a NUL inside makes an invalid message, and the bus would drop our connection for it
      if (c === 0) throw new TypeError('a D-Bus string cannot hold NUL');
      buf[p++] = c;
    }
    if (k < len) {
      const rest = v.slice(k);
      if (rest.includes('\0')) throw new TypeError('a D-Bus string cannot hold NUL');
      p += buf.write(rest, p, 'utf8');
    }
    const n = p - at - lenBytes;
    if (lenBytes === 4) buf.writeUInt32LE(n, at);
    else {
      if (n > 255) throw new TypeError('a signature is at most 255 bytes');
      buf[at] = n;
    }
    buf[p] = 0;
    this.pos = p + 1;
  }

  value(t: TypeNode, v: unknown): void {
    switch (t.code) {
      case 'y':
        this.u8(v as number);
        return;
      case 'b':
        if (typeof v !== 'boolean' && typeof v !== 'number') throw new TypeError(`expected a boolean, got ${typeof v}`);
        this.u32(v ? 1 : 0);
        return;
      case 'n':
        this.align(2);
        this.ensure(2);
        this.pos = this.buf.writeInt16LE(v as number, this.pos);
        return;
      case 'q':
        this.align(2);
        this.ensure(2);
        this.pos = this.buf.writeUInt16LE(v as number, this.pos);
        return;
      case 'i':
        this.align(4);
        this.ensure(4);
        this.pos = this.buf.writeInt32LE(v as number, this.pos);
        return;
      case 'u':
      case 'h':
        this.u32(v as number);
        return;
      case 'x':
      case 't': {
        this.align(8);
        this.ensure(8);
        const b = typeof v === 'bigint' ? v : BigInt(v as number);
        this.pos = t.code === 'x' ? this.buf.writeBigInt64LE(b, this.pos) : this.buf.writeBigUInt64LE(b, this.pos);
        return;
      }
      case 'd':
        if (typeof v !== 'number') throw new TypeError(`expected a number, got ${typeof v}`);
        this.align(8);
        this.ensure(8);
        this.pos = this.buf.writeDoubleLE(v, this.pos);
        return;
      case 's':
      case 'o':
        this.str(v, 4);
        return;
      case 'g':
        this.str(v, 1);
        return;
      case 'v': {
        if (!isVariant(v)) throw new TypeError(`expected a Variant, got ${typeof v}`);
        const inner = parseSignature(v.signature);
        if (inner.length !== 1) throw new TypeError(`a variant holds one complete type, not "${v.signature}"`);
        this.str(v.signature, 1);
        this.value(inner[0] as TypeNode, v.value);
        return;
      }
      case '(': {
        if (!Array.isArray(v) || v.length !== t.child.length) throw new TypeError(`expected a struct of ${t.child.length} members`);
        this.align(8);
        for (let k = 0; k < t.child.length; k++) this.value(t.child[k] as TypeNode, v[k]);
        return;
      }
      case 'a':
        this.array(t.child[0] as TypeNode, v);
        return;
      default:
        throw new TypeError(`cannot marshal type "${t.code}"`);
    }
  }

  private array(el: TypeNode, v: unknown): void {
    this.align(4);
    this.ensure(4);
    const lenAt = this.pos;
    this.pos += 4;
    // the padding before the first element is not part of the length
    this.align(el.align);
    const start = this.pos;
    if (el.code === '{') {
      const [kt, vt] = el.child as [TypeNode, TypeNode];
      const put = (k: unknown, x: unknown): void => {
        this.align(8);
        this.value(kt, k);
        this.value(vt, x);
      };
      if (v instanceof Map) for (const [k, x] of v) put(k, x);
      else if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
        const rec = v as Record<string, unknown>;
        for (const k of Object.keys(rec)) put(dictKey(kt.code, k), rec[k]);
      } else if (Array.isArray(v)) for (const e of v) put((e as unknown[])[0], (e as unknown[])[1]);
      else throw new TypeError(`expected an object for a dict, got ${typeof v}`);
    } else if (el.code === 'y' && v instanceof Uint8Array) {
      this.ensure(v.length);
      this.buf.set(v, this.pos);
      this.pos += v.length;
    } else {
      if (!Array.isArray(v)) throw new TypeError(`expected an array, got ${typeof v}`);
      for (const x of v) this.value(el, x);
    }
    const len = this.pos - start;
    if (len > 67_108_864) throw new RangeError('a D-Bus array is at most 64 MiB');
    this.buf.writeUInt32LE(len, lenAt);
  }
}

function dictKey(code: string, k: string): unknown {
  if (code === 's' || code === 'o' || code === 'g') return k;
  if (code === 'b') return k === 'true';
  if (code === 'x' || code === 't') return BigInt(k);
  return Number(k);
}

/** A message to send: a dbus-next Message, or a plain object with the same fields. */
export interface Outgoing {
  type?: number;
  flags?: number;
  serial?: number | null;
  path?: string;
  interface?: string;
  member?: string;
  errorName?: string;
  /** (dbus-next's typings say string; it is the serial of the call answered) */
  replySerial?: number | string;
  destination?: string;
  sender?: string;
  signature?: string;
  body?: readonly unknown[];
}

// header field codes and the signatures of their values, in dbus-next's order
const FIELDS: [keyof Outgoing, number, string][] = [
  ['path', 1, 'o'],
  ['interface', 2, 's'],
  ['member', 3, 's'],
  ['errorName', 4, 's'],
  ['replySerial', 5, 'u'],
  ['destination', 6, 's'],
  ['sender', 7, 's'],
  ['signature', 8, 'g'],
];
const FIELD_TYPES: Record<string, TypeNode> = { o: { code: 'o', child: [], align: 4 }, s: { code: 's', child: [], align: 4 }, u: { code: 'u', child: [], align: 4 }, g: { code: 'g', child: [], align: 1 } };

/** The whole message on the wire; throws TypeError/RangeError on a value its signature cannot hold. */
export function encodeMessage(m: Outgoing): Buffer {
  const signature = m.signature ?? '';
  const body = (m.body ?? []) as unknown[];
  const types = signature ? parseSignature(signature) : [];
  if (types.length !== body.length) throw new TypeError(`body of ${body.length} values for signature "${signature}"`);
  const serial = Number(m.serial);
  if (!serial) throw new TypeError('a message needs a serial');
  const w = new Writer(1024);
  w.ensure(16);
  w.buf[0] = 0x6c; // 'l'
  w.buf[1] = Number(m.type ?? 1);
  w.buf[2] = Number(m.flags ?? 0);
  w.buf[3] = 1;
  w.buf.writeUInt32LE(serial, 8);
  w.pos = 16;
  const fieldsStart = 16;
  for (const [key, code, sig] of FIELDS) {
    const v = key === 'signature' ? (signature || undefined) : m[key];
    if (!v) continue;
    w.align(8);
    w.u8(code);
    w.str(sig, 1);
    w.value(FIELD_TYPES[sig] as TypeNode, key === 'replySerial' ? Number(v) : v);
  }
  w.buf.writeUInt32LE(w.pos - fieldsStart, 12);
  w.align(8);
  const bodyStart = w.pos;
  for (let k = 0; k < types.length; k++) w.value(types[k] as TypeNode, body[k]);
  w.buf.writeUInt32LE(w.pos - bodyStart, 4);
  return w.buf.subarray(0, w.pos);
}

/** What of dbus-next 0.10's connection we use: the function that marshals and writes, its socket. */
interface ConnectionInternals {
  state?: string;
  stream?: { writable: boolean; supportsUnixFd?: boolean; write(data: Buffer): boolean; cork?: () => void; uncork?: () => void };
  message?: (msg: Message) => void;
  once(event: 'connect', f: () => void): void;
}

/** dbus-next 0.10's private connection object of a MessageBus (the encoder and decoder each name what they use of it). */
export const connectionOf = <C = ConnectionInternals>(bus: unknown): C | undefined => (bus as { _connection?: C })._connection;

/**
 * Makes `bus` send every message through encodeMessage. Messages with file descriptors (and
 * connections that pass them) keep dbus-next's own path. A dbus-next without the internals
 * this expects is left as it is.
 */
export function useWireEncoder(bus: unknown): boolean {
  const conn = connectionOf(bus);
  if (!conn || typeof conn.once !== 'function') return false;
  const install = (): void => {
    const stream = conn.stream;
    const own = conn.message;
    if (!stream || typeof stream.write !== 'function' || typeof own !== 'function' || stream.supportsUnixFd) return;
    conn.message = (msg: Message): void => {
      if (msg.signature?.includes('h')) {
        own(msg);
        return;
      }
      if (!stream.writable) throw new Error('Cannot send message, stream is closed');
      stream.write(encodeMessage(msg));
    };
  };
  // dbus-next puts its sending function in place on 'connect' (our listener runs after its own)
  if (conn.state === 'connected') install();
  else conn.once('connect', install);
  return true;
}
