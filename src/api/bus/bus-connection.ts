// The daemon's connection to the bus. The socket reads into one buffer of ours (net's onread)
// and MessageFramer cuts it into messages that decodeMessage reads in place; what we send is
// made by encodeMessage and written at once, or in one write per turn while held. dbus-next's
// MessageBus would put every read through a readable stream (a fresh 64 KiB buffer per read,
// two read() calls per message, events, nextTick) and every message through its handler chain
// and Message constructors: ~0.17 ms of a 0.85 ms GetProperties round trip on the lab machine
// (paired against a bare Node service that reads into a fixed buffer: 0.66 ms).
// Values keep dbus-next's conventions (Message, Variant, DBusError): the API layer and the
// client library share them, and the client library keeps dbus-next (an application may hand
// it a MessageBus of its own).
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import dbus, { type Message } from 'dbus-next';
import { busSocketPath } from './bus-address.ts';
import { ERROR, METHOD_CALL, METHOD_RETURN, NO_REPLY_EXPECTED, SIGNAL } from './message-type.ts';
import { decodeMessage, MessageFramer } from './wire-decoder.ts';
import { encodeMessage, type Outgoing } from './wire-encoder.ts';

const BUS = { destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus' } as const;
/** what one read takes at most (a burst of calls is a few dozen kB; more waits for the next read) */
const READ_BUFFER_BYTES = 64 * 1024;
/** messages per write while a batch is made (sendBatch) */
const BATCH = 64;

/** Answers a method call (true) or leaves it to the next handler (false). */
export type MethodHandler = (call: Message) => boolean;

/** A method call to make: the reply comes back as a Message (an error reply rejects with dbus-next's DBusError). */
export type Call = Outgoing & { destination: string; path: string; member: string };

export interface BusConnectionOptions {
  /** how long the socket, the authentication and Hello may take (default 5 s) */
  timeoutMs?: number;
  /** the read buffer's size (tests make it small, to cut messages anywhere) */
  readBufferBytes?: number;
}

interface PendingCall {
  resolve(reply: Message): void;
  reject(e: Error): void;
}

export class BusConnection extends EventEmitter<{ message: [Message]; error: [unknown]; close: [Error] }> {
  /** our unique name on the bus (from Hello) */
  name = '';
  private serial = 0;
  private readonly calls = new Map<number, PendingCall>();
  private readonly handlers: MethodHandler[] = [];
  private readonly framer = new MessageFramer();
  /** messages made while held, not yet written */
  private held: Buffer[] | undefined;
  /** until the bus said OK: the line read so far, and who waits for it */
  private auth: { text: string; done(line: string): void } | undefined;
  private ended: Error | undefined;
  private readonly socket: net.Socket;
  private readonly onBytes = (bytes: Buffer): void => this.received(bytes);

  private constructor(path: string, readBufferBytes: number) {
    super();
    const buffer = Buffer.allocUnsafe(readBufferBytes);
    this.socket = net.createConnection({
      path,
      onread: {
        buffer,
        callback: (n: number, buf: Uint8Array): boolean => {
          this.read(buf as Buffer, n);
          return true;
        },
      },
    } as net.NetConnectOpts);
    this.socket.on('error', (e) => this.end(e));
    this.socket.on('close', () => this.end(new Error('the bus closed the connection')));
  }

  /** Connects, authenticates (EXTERNAL: the bus reads our uid off the socket) and says Hello. */
  static async connect(address: string, opts: BusConnectionOptions = {}): Promise<BusConnection> {
    const timeoutMs = opts.timeoutMs ?? 5000;
    const conn = new BusConnection(busSocketPath(address), opts.readBufferBytes ?? READ_BUFFER_BYTES);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        conn.handshake(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } catch (e) {
      conn.socket.destroy();
      throw new Error(`D-Bus ${address}: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      clearTimeout(timer);
    }
    return conn;
  }

  private async handshake(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.socket.once('connect', resolve);
      this.socket.once('error', reject);
    });
    let closed: ((e: Error) => void) | undefined;
    const line = new Promise<string>((resolve, reject) => {
      this.auth = { text: '', done: resolve };
      closed = reject;
      this.once('close', reject);
    });
    const uid = Buffer.from(String(process.getuid?.() ?? 0)).toString('hex');
    this.socket.write(`\0AUTH EXTERNAL ${uid}\r\n`);
    const answer = await line.finally(() => closed && this.off('close', closed));
    if (!answer.startsWith('OK ')) throw new Error(`the bus did not take our credentials: ${answer}`);
    this.socket.write('BEGIN\r\n');
    const hello = await this.call({ ...BUS, member: 'Hello' });
    this.name = String(hello.body[0]);
  }

  private read(buf: Buffer, n: number): void {
    let at = 0;
    if (this.auth) {
      // the authentication's answer is one line of text; latin1 keeps one character per byte
      const auth = this.auth;
      auth.text += buf.toString('latin1', 0, n);
      const eol = auth.text.indexOf('\r\n');
      if (eol < 0) {
        if (auth.text.length > 16 * 1024) this.socket.destroy(new Error('the bus answered no authentication line'));
        return;
      }
      this.auth = undefined;
      auth.done(auth.text.slice(0, eol));
      at = n - (auth.text.length - eol - 2);
      if (at >= n) return;
    }
    try {
      this.framer.push(buf.subarray(at, n), this.onBytes);
    } catch (e) {
      // a length no message can have: the stream cannot be cut into messages any more
      this.socket.destroy(e instanceof Error ? e : new Error(String(e)));
    }
  }

  private received(bytes: Buffer): void {
    let msg: Message | undefined;
    try {
      msg = decodeMessage(bytes);
    } catch (e) {
      // one message the bus let through that we cannot read: said, and the next one read
      this.report(e);
      return;
    }
    if (!msg) return;
    if (this.listenerCount('message') > 0) this.emit('message', msg);
    const type = msg.type as number;
    if (type === METHOD_RETURN || type === ERROR) {
      const serial = Number(msg.replySerial);
      const pending = this.calls.get(serial);
      if (!pending) return;
      this.calls.delete(serial);
      if (type === METHOD_RETURN) pending.resolve(msg);
      else pending.reject(new dbus.DBusError(msg.errorName, typeof msg.body?.[0] === 'string' ? msg.body[0] : '', msg));
    } else if (type === METHOD_CALL) {
      try {
        if (msg.interface === 'org.freedesktop.DBus.Peer') {
          this.peer(msg);
          return;
        }
        for (const h of this.handlers) if (h(msg)) return;
        this.unhandled(msg);
      } catch (e) {
        this.report(e);
        if (!this.ended) this.replyError(msg, 'org.freedesktop.DBus.Error.Failed', 'internal error');
      }
    }
  }

  /** org.freedesktop.DBus.Peer, which every object has (libdbus, and so ConnMan, answers it on any path). */
  private peer(call: Message): void {
    if (call.member === 'Ping' && !call.signature) this.reply(call, '', []);
    else if (call.member === 'GetMachineId' && !call.signature) {
      const id = machineId();
      if (id) this.reply(call, 's', [id]);
      else this.replyError(call, 'org.freedesktop.DBus.Error.FileNotFound', 'no machine id on this system');
    } else this.replyError(call, 'org.freedesktop.DBus.Error.UnknownMethod', `Method "${call.member}" with signature "${call.signature ?? ''}" on interface "org.freedesktop.DBus.Peer" doesn't exist`);
  }

  /** What no handler answers is at a path that has no object: an empty introspection, else UnknownObject. */
  private unhandled(call: Message): void {
    if (call.interface === 'org.freedesktop.DBus.Introspectable' && call.member === 'Introspect' && !call.signature) this.reply(call, 's', [EMPTY_NODE]);
    else this.replyError(call, 'org.freedesktop.DBus.Error.UnknownObject', `no object at ${call.path}`);
  }

  private report(e: unknown): void {
    if (this.listenerCount('error') > 0) this.emit('error', e);
  }

  private end(e: Error): void {
    if (this.ended) return;
    this.ended = e;
    this.held = undefined;
    for (const pending of this.calls.values()) pending.reject(e);
    this.calls.clear();
    this.emit('close', e);
    this.report(e);
  }

  /** Method calls go to the handlers in the order they were added, until one answers. */
  addMethodHandler(h: MethodHandler): void {
    this.handlers.push(h);
  }

  removeMethodHandler(h: MethodHandler): void {
    const at = this.handlers.indexOf(h);
    if (at >= 0) this.handlers.splice(at, 1);
  }

  /** Sends a message (a serial of ours is put in); throws when the connection has ended or the body does not fit the signature. */
  send(msg: Outgoing): number {
    if (this.ended) throw new Error(`cannot send on the bus: ${this.ended.message}`);
    const serial = this.nextSerial();
    msg.serial = serial;
    const bytes = encodeMessage(msg);
    if (this.held) this.held.push(bytes);
    else this.socket.write(bytes);
    return serial;
  }

  /** Makes a method call and waits for its reply. */
  call(msg: Call): Promise<Message> {
    return new Promise<Message>((resolve, reject) => {
      msg.type = METHOD_CALL;
      const serial = this.send(msg);
      this.calls.set(serial, { resolve, reject });
    });
  }

  /** Answers `call` (unless it asked for no reply). */
  reply(call: Message, signature: string, body: readonly unknown[]): void {
    if (call.flags & NO_REPLY_EXPECTED) return;
    this.send({ type: METHOD_RETURN, replySerial: call.serial ?? 0, destination: call.sender, signature, body });
  }

  /** Answers `call` with an error (unless it asked for no reply). */
  replyError(call: Message, name: string, text: string): void {
    if (call.flags & NO_REPLY_EXPECTED) return;
    this.send({ type: ERROR, replySerial: call.serial ?? 0, destination: call.sender, errorName: name, signature: 's', body: [text] });
  }

  signal(path: string, iface: string, member: string, signature: string, body: readonly unknown[]): void {
    this.send({ type: SIGNAL, path, interface: iface, member, signature, body });
  }

  /**
   * Holds what is sent until the code running now, and the microtasks it queues, are done: the
   * replies to every call read in one batch, and what they start at once, leave in one write,
   * not one each (a write to the bus costs more than making a message).
   */
  hold(): void {
    if (this.held || this.ended) return;
    this.held = [];
    // two hops: what that code queues for right after it (the daemon's Updates that follow a
    // reply) still goes in the same write, behind the replies
    queueMicrotask(() => queueMicrotask(() => this.release()));
  }

  /**
   * Runs `f`, whose messages leave `every` at a time (a thousand Updates: 16 writes and wake-ups
   * of the bus, not a thousand; the first ones leave while the rest are made). Inside a hold
   * they leave with it. `f` calls `sent()` after each message.
   */
  sendBatch(f: (sent: () => void) => void, every = BATCH): void {
    if (this.held || this.ended) {
      f(() => {});
      return;
    }
    this.held = [];
    try {
      f(() => {
        if (this.held && this.held.length >= every) this.flush();
      });
    } finally {
      this.release();
    }
  }

  private flush(): void {
    const q = this.held;
    if (!q || q.length === 0) return;
    this.held = [];
    this.socket.write(q.length === 1 ? (q[0] as Buffer) : Buffer.concat(q));
  }

  private release(): void {
    this.flush();
    this.held = undefined;
  }

  private nextSerial(): number {
    // serials are 32-bit and never 0
    this.serial = this.serial >= 0xffffffff ? 1 : this.serial + 1;
    return this.serial;
  }

  async requestName(name: string, flags: number): Promise<number> {
    const r = await this.call({ ...BUS, member: 'RequestName', signature: 'su', body: [name, flags] });
    return Number(r.body[0]);
  }

  async releaseName(name: string): Promise<number> {
    const r = await this.call({ ...BUS, member: 'ReleaseName', signature: 's', body: [name] });
    return Number(r.body[0]);
  }

  /** Asks the bus for the signals a match rule names. */
  async addMatch(rule: string): Promise<void> {
    await this.call({ ...BUS, member: 'AddMatch', signature: 's', body: [rule] });
  }

  /** Leaves the bus: what is held is written first. */
  disconnect(): void {
    if (this.ended) return;
    this.release();
    this.socket.end();
  }
}

const EMPTY_NODE = '<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"\n"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">\n<node/>\n';

function machineId(): string | undefined {
  for (const p of ['/etc/machine-id', '/var/lib/dbus/machine-id']) {
    try {
      const id = readFileSync(p, 'utf8').trim();
      if (/^[0-9a-f]{32}$/.test(id)) return id;
    } catch {
      // the next place
    }
  }
  return undefined;
}
