// D-Bus unmarshalling of the messages we receive, from the socket's chunks straight to
// dbus-next Message objects. dbus-next reads a message through its stream's read(16) and
// read(n), parses it into a nested "marshall" form, converts that to JS values and validates
// every name again (the bus has already checked them): 14 µs per CreateSession for the parse
// alone (measured; ours 5 µs), on the path of every call the daemon answers, plus the stream
// machinery of two read() per message. This reads the same values in one pass with
// dbus-next's conventions (Variant objects, plain objects for dicts, arrays for structs, bigint
// for x/t, Buffer for ay); a test compares both on the daemon's calls and random messages.
// Big-endian messages and messages that carry file descriptors go through dbus-next's parser.
import { createRequire } from 'node:module';
import dbus, { type Message } from 'dbus-next';
import { ERROR, METHOD_CALL, METHOD_RETURN, SIGNAL } from './message-type.ts';
import { connectionOf, parseSignature, type TypeNode, useWireEncoder } from './wire-encoder.ts';

const require = createRequire(import.meta.url);
// dbus-next's own parser for what this one leaves to it (same version as the Message class)
const compat = require('dbus-next/lib/marshall-compat.js') as { messageToJsFmt(m: object): object };
const wire = require('dbus-next/lib/message.js') as { unmarshalMessages(stream: object, onMessage: (m: object) => void, opts: object): void };

const LITTLE = 0x6c; // 'l'
/** the protocol's limit for one message */
const MAX_MESSAGE = 1 << 27;

/** What a received message holds, under dbus-next's names. */
interface Fields {
  type: number;
  flags: number;
  serial: number;
  path?: string;
  interface?: string;
  member?: string;
  errorName?: string;
  replySerial?: number;
  destination?: string;
  sender?: string;
  signature: string;
  body: unknown[];
}

/** A little-endian reader over one message; alignment is from the message's start. */
class Reader {
  pos: number;

  constructor(
    readonly buf: Buffer,
    private readonly start: number,
    private readonly end: number,
  ) {
    this.pos = start;
  }

  private need(n: number): void {
    if (this.pos + n > this.end) throw new RangeError('D-Bus message shorter than its contents');
  }

  align(n: number): void {
    const rel = (this.pos - this.start) % n;
    if (rel !== 0) this.pos += n - rel;
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++] as number;
  }

  u32(): number {
    this.align(4);
    this.need(4);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  private text(len: number): string {
    this.need(len + 1);
    const s = this.buf.toString('utf8', this.pos, this.pos + len);
    this.pos += len + 1;
    return s;
  }

  value(t: TypeNode): unknown {
    const b = this.buf;
    switch (t.code) {
      case 's':
      case 'o':
        return this.text(this.u32());
      case 'g':
        return this.text(this.u8());
      case 'u':
        return this.u32();
      case 'b':
        return this.u32() !== 0;
      case 'y':
        return this.u8();
      case 'i': {
        this.align(4);
        this.need(4);
        const v = b.readInt32LE(this.pos);
        this.pos += 4;
        return v;
      }
      case 'n':
      case 'q': {
        this.align(2);
        this.need(2);
        const v = t.code === 'n' ? b.readInt16LE(this.pos) : b.readUInt16LE(this.pos);
        this.pos += 2;
        return v;
      }
      case 'x':
      case 't':
      case 'd': {
        this.align(8);
        this.need(8);
        const v = t.code === 'x' ? b.readBigInt64LE(this.pos) : t.code === 't' ? b.readBigUInt64LE(this.pos) : b.readDoubleLE(this.pos);
        this.pos += 8;
        return v;
      }
      case 'v': {
        const sig = this.text(this.u8());
        const types = parseSignature(sig);
        if (types.length !== 1) throw new TypeError(`variant of signature "${sig}": not one complete type`);
        return new dbus.Variant(sig, this.value(types[0] as TypeNode));
      }
      case 'a': {
        const len = this.u32();
        const el = t.child[0] as TypeNode;
        this.align(el.align);
        this.need(len);
        const end = this.pos + len;
        if (el.code === 'y') {
          this.pos = end;
          // a copy: the message's bytes may be a view of a read buffer that is used again
          return Buffer.from(b.subarray(end - len, end));
        }
        if (el.code === '{') {
          const dict: Record<string, unknown> = {};
          const [kt, vt] = el.child as [TypeNode, TypeNode];
          while (this.pos < end) {
            this.align(8);
            const key = String(this.value(kt));
            const v = this.value(vt);
            // a key "__proto__" is a key like any other (dbus-next would set the prototype)
            if (key === '__proto__') Object.defineProperty(dict, key, { value: v, enumerable: true, writable: true, configurable: true });
            else dict[key] = v;
          }
          return dict;
        }
        const out: unknown[] = [];
        while (this.pos < end) out.push(this.value(el));
        return out;
      }
      case '(': {
        this.align(8);
        const out: unknown[] = new Array(t.child.length);
        for (let i = 0; i < t.child.length; i++) out[i] = this.value(t.child[i] as TypeNode);
        return out;
      }
      default:
        throw new TypeError(`D-Bus type "${t.code}" not read here`);
    }
  }
}

/** The length of the message that starts `head` (16 bytes at least). */
export function messageLength(head: Buffer): number {
  const le = head[0] === LITTLE;
  const fields = le ? head.readUInt32LE(12) : head.readUInt32BE(12);
  const body = le ? head.readUInt32LE(4) : head.readUInt32BE(4);
  const total = 16 + ((fields + 7) & ~7) + body;
  if (total > MAX_MESSAGE) throw new RangeError(`D-Bus message of ${total} bytes (at most ${MAX_MESSAGE})`);
  return total;
}

const SIGNATURE: TypeNode = { code: 'g', child: [], align: 1 };
const FIELD_NAMES = [undefined, 'path', 'interface', 'member', 'errorName', 'replySerial', 'destination', 'sender', 'signature', 'unixFd'] as const;

/**
 * One whole message (exactly its bytes) as dbus-next's Message; undefined for a message of a
 * type this protocol version does not know (the spec says: ignore it). Throws on a malformed one.
 */
export function decodeMessage(buf: Buffer): Message | undefined {
  // (dbus-next's parser keeps views of the bytes: it gets a copy of its own)
  if (buf[0] !== LITTLE) return decodeWithDbusNext(Buffer.from(buf));
  const fieldsLen = buf.readUInt32LE(12);
  const r = new Reader(buf, 0, buf.length);
  r.pos = 16;
  const fieldsEnd = 16 + fieldsLen;
  const m: Fields = { type: buf[1] as number, flags: buf[2] as number, serial: buf.readUInt32LE(8), signature: '', body: [] };
  let unixFds = false;
  while (r.pos < fieldsEnd) {
    r.align(8);
    const code = r.u8();
    const sig = r.value(SIGNATURE) as string;
    const [t] = parseSignature(sig);
    if (!t) throw new TypeError('header field without a type');
    const v = r.value(t);
    const name = FIELD_NAMES[code];
    if (name === 'unixFd') unixFds = true;
    else if (name !== undefined) (m as unknown as Record<string, unknown>)[name] = v;
  }
  if (unixFds || m.signature.includes('h')) return decodeWithDbusNext(Buffer.from(buf));
  r.align(8);
  if (m.signature) {
    const types = parseSignature(m.signature);
    m.body = new Array(types.length);
    for (let i = 0; i < types.length; i++) m.body[i] = r.value(types[i] as TypeNode);
  }
  if (r.pos !== buf.length) throw new RangeError('D-Bus message body longer than its signature');
  if (!complete(m)) return undefined;
  // the bus has checked every name: no second validation (dbus-next's constructor does one)
  const msg = Object.create(dbus.Message.prototype) as Message & { _sent: boolean; _serial: number };
  msg.type = m.type;
  msg._sent = false;
  msg._serial = m.serial;
  msg.path = m.path as string;
  msg.interface = m.interface as string;
  msg.member = m.member as string;
  msg.errorName = m.errorName as string;
  (msg as { replySerial: unknown }).replySerial = m.replySerial;
  msg.destination = m.destination as string;
  msg.sender = m.sender as string;
  msg.signature = m.signature;
  msg.body = m.body;
  msg.flags = m.flags;
  return msg;
}

/** The fields its type requires are there (a message of an unknown type is not). */
function complete(m: Fields): boolean {
  switch (m.type) {
    case METHOD_CALL:
      return m.path !== undefined && m.member !== undefined;
    case SIGNAL:
      return m.path !== undefined && m.member !== undefined && m.interface !== undefined;
    case ERROR:
      return m.errorName !== undefined && m.replySerial !== undefined;
    case METHOD_RETURN:
      return m.replySerial !== undefined;
    default:
      return false;
  }
}

/** One whole message read by dbus-next's own parser, as its connection does (from a stream). */
export function decodeWithDbusNext(buf: Buffer): Message {
  let reader: (() => void) | undefined;
  let pos = 0;
  let out: object | undefined;
  const stream = {
    on: (_event: 'readable', f: () => void): void => {
      reader = f;
    },
    read: (n: number): Buffer | null => {
      if (pos + n > buf.length) return null;
      pos += n;
      return buf.subarray(pos - n, pos);
    },
  };
  wire.unmarshalMessages(stream, (m) => {
    out = m;
  }, {});
  reader?.();
  if (!out) throw new RangeError('D-Bus message shorter than its length');
  return new dbus.Message(compat.messageToJsFmt(out) as never);
}

/**
 * Cuts a byte stream into whole messages. A message that lies whole in a chunk is handed on as
 * a view of it (valid while the callback runs: the daemon reads into one buffer it reuses);
 * only what a chunk leaves unfinished is copied, into a buffer of the message's own length.
 */
export class MessageFramer {
  /** a message begun in an earlier chunk: its first 16 bytes until its length is known, then all of it */
  private part: Buffer | undefined;
  private partHave = 0;
  private partIsHead = false;

  /** Hands on each message the chunk completes, in order. Throws on a length no message can have. */
  push(chunk: Buffer, each: (message: Buffer) => void): void {
    let at = 0;
    const end = chunk.length;
    while (this.part) {
      const part = this.part;
      const n = Math.min(part.length - this.partHave, end - at);
      chunk.copy(part, this.partHave, at, at + n);
      this.partHave += n;
      at += n;
      if (this.partHave < part.length) return;
      if (this.partIsHead) {
        const whole = Buffer.allocUnsafe(messageLength(part));
        part.copy(whole, 0, 0, 16);
        this.part = whole;
        this.partIsHead = false;
        continue;
      }
      this.part = undefined;
      this.partHave = 0;
      each(part);
    }
    while (end - at >= 16) {
      const len = messageLength(chunk.subarray(at, at + 16));
      if (end - at < len) break;
      each(chunk.subarray(at, at + len));
      at += len;
    }
    if (at === end) return;
    const rest = end - at;
    this.partIsHead = rest < 16;
    this.part = Buffer.allocUnsafe(this.partIsHead ? 16 : messageLength(chunk.subarray(at, at + 16)));
    chunk.copy(this.part, 0, at, end);
    this.partHave = rest;
  }
}

/** What of dbus-next 0.10's connection this replaces: its socket, and the events it emits. */
interface ConnectionInternals {
  state?: string;
  stream?: NodeJS.ReadableStream & { supportsUnixFd?: boolean; listeners(event: 'readable'): ((...a: unknown[]) => void)[] };
  once(event: 'connect', f: () => void): void;
  emit(event: 'message', m: Message): boolean;
  emit(event: 'error', e: unknown): boolean;
}

/**
 * Makes `bus` read every message with decodeMessage: dbus-next's reader is taken off the
 * socket once the handshake is done (it starts reading right after 'connect'). Call before
 * the bus connects. A dbus-next without the internals this expects, or a socket that passes
 * file descriptors, is left as it is.
 */
export function useWireDecoder(bus: unknown): boolean {
  const conn = connectionOf<ConnectionInternals>(bus);
  if (!conn || typeof conn.once !== 'function' || typeof conn.emit !== 'function' || conn.state === 'connected') return false;
  conn.once('connect', () => {
    // dbus-next adds its 'readable' reader right after this event: take it off before it runs
    process.nextTick(() => {
      const stream = conn.stream;
      if (!stream || stream.supportsUnixFd) return;
      const theirs = stream.listeners('readable');
      if (theirs.length !== 1) return; // not the shape this was written for
      stream.removeListener('readable', theirs[0] as () => void);
      const framer = new MessageFramer();
      const each = (bytes: Buffer): void => {
        let msg: Message | undefined;
        try {
          msg = decodeMessage(bytes);
        } catch (e) {
          // as dbus-next does: the connection reports it, and goes on with the next message
          conn.emit('error', e);
          return;
        }
        if (msg) conn.emit('message', msg);
      };
      stream.on('data', (chunk: Buffer) => {
        try {
          framer.push(chunk, each);
        } catch (e) {
          // a length no message can have: the stream cannot be cut into messages any more
          conn.emit('error', e);
          (stream as unknown as { destroy?: () => void }).destroy?.();
        }
      });
    });
  });
  return true;
}

/** Our marshalling for what `bus` sends and our reading of what it receives (before it connects). */
export function useWireCodec(bus: unknown): void {
  useWireEncoder(bus);
  useWireDecoder(bus);
}
