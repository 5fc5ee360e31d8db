// A black-box session client for benchmarks, the same for every daemon: bus connections
// (dbus-next's low-level MessageBus, opened by the client library's SessionBus) that create
// sessions with Manager.CreateSession and serve the net.connman.Notification calls the
// daemon makes back. Every message is timestamped with performance.now() the moment
// dbus-next hands it over ('message' is emitted before dbus-next dispatches it), so:
//   t0      right before the CreateSession call is written to the socket
//   tReply  the arrival of its method return (or error)
//   tFirst  the arrival of the first Update call on the session's notifier
// Update and Release are answered when the daemon expects a reply (ConnMan does, netsessiond
// sends them with NO_REPLY_EXPECTED): the bus would otherwise hold the pending replies.
import dbus, { Message, type MessageBus, Variant } from 'dbus-next';
import { SessionBus } from '../../src/client/session/session-bus.ts';

const METHOD_CALL = dbus.MessageType.METHOD_CALL as number;
const METHOD_RETURN = dbus.MessageType.METHOD_RETURN as number;
const ERROR = dbus.MessageType.ERROR as number;
const NO_REPLY_EXPECTED = 0x1;
const NOTIFICATION = 'net.connman.Notification';

export type Settings = Record<string, Variant>;

/** A settings dict from plain values: strings, booleans, string arrays. */
export function settings(plain: Record<string, string | boolean | string[]>): Settings {
  const out: Settings = {};
  for (const [k, v] of Object.entries(plain)) {
    out[k] = typeof v === 'boolean' ? new Variant('b', v) : Array.isArray(v) ? new Variant('as', v) : new Variant('s', v);
  }
  return out;
}

export interface UpdateEvent {
  /** performance.now() when the Update call arrived */
  t: number;
  /** the keys it carried, variants unwrapped (one level) */
  changed: Record<string, unknown>;
}

export class BenchSession {
  /** right before the CreateSession call went out */
  t0 = Number.NaN;
  tReply: number | undefined;
  tFirst: number | undefined;
  /** the session object path (from the reply) */
  path: string | undefined;
  /** D-Bus error name of a failed CreateSession */
  error: string | undefined;
  released = false;
  readonly updates: UpdateEvent[] = [];
  /** the merged view of every Update so far */
  readonly current: Record<string, unknown> = {};

  constructor(
    readonly conn: BenchConn,
    readonly notifier: string,
  ) {}

  /** first Update arrived, or CreateSession failed */
  get done(): boolean {
    return this.tFirst !== undefined || this.error !== undefined;
  }

  get state(): string | undefined {
    return typeof this.current.State === 'string' ? this.current.State : undefined;
  }

  get iface(): string | undefined {
    return typeof this.current.Interface === 'string' ? this.current.Interface : undefined;
  }

  /** netsessiond's SessionMarker (extended sessions only) */
  get marker(): number | undefined {
    return typeof this.current.SessionMarker === 'number' ? this.current.SessionMarker : undefined;
  }
}

export type UpdateListener = (s: BenchSession, e: UpdateEvent) => void;

interface Waiter {
  check: () => boolean;
  resolve: () => void;
}

/** What every connection shares: listeners, counters and waiters. */
export class SessionHub {
  readonly conns = new Set<BenchConn>();
  readonly listeners = new Set<UpdateListener>();
  replies = 0;
  errors = 0;
  firstUpdates = 0;
  updates = 0;
  /** CreateSession errors by D-Bus error name */
  readonly errorNames = new Map<string, number>();
  /** called once per session when it is done (first Update, or a CreateSession error) */
  onDone: ((s: BenchSession) => void) | undefined;
  private waiters: Waiter[] = [];
  private wakeScheduled = false;

  constructor(readonly address: string) {}

  async connect(): Promise<BenchConn> {
    const sb = await SessionBus.open(this.address);
    const c = new BenchConn(this, sb);
    this.conns.add(c);
    return c;
  }

  /** n connections, opened a few at a time (each is a Hello round trip) */
  async connectMany(n: number): Promise<BenchConn[]> {
    const out: BenchConn[] = [];
    while (out.length < n) {
      const k = Math.min(16, n - out.length);
      out.push(...(await Promise.all(Array.from({ length: k }, () => this.connect()))));
    }
    return out;
  }

  closeAll(): void {
    for (const c of [...this.conns]) c.close();
  }

  /** @internal: a message of interest arrived; checks run once per I/O turn, not per message */
  wake(): void {
    if (this.wakeScheduled || this.waiters.length === 0) return;
    this.wakeScheduled = true;
    setImmediate(() => {
      this.wakeScheduled = false;
      const still: Waiter[] = [];
      for (const w of this.waiters) {
        if (w.check()) w.resolve();
        else still.push(w);
      }
      this.waiters = still;
    });
  }

  /** Resolves true once check() holds (checked now and after messages), false after timeoutMs. */
  until(check: () => boolean, timeoutMs: number): Promise<boolean> {
    if (check()) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(check());
      }, timeoutMs);
      const waiter: Waiter = {
        check,
        resolve: () => {
          clearTimeout(timer);
          resolve(true);
        },
      };
      this.waiters.push(waiter);
    });
  }
}

function unwrap(v: unknown): unknown {
  return v instanceof Variant ? v.value : v;
}

export class BenchConn {
  readonly bus: MessageBus;
  readonly sessions: BenchSession[] = [];
  private readonly byNotifier = new Map<string, BenchSession>();
  private readonly byReplySerial = new Map<number, BenchSession>();
  /** timed calls: serial → called with the arrival time of the reply */
  private readonly timed = new Map<number, (t: number) => void>();
  private closed = false;

  constructor(
    readonly hub: SessionHub,
    private readonly sb: SessionBus,
  ) {
    this.bus = sb.bus;
    this.bus.on('message', (msg: Message) => {
      // first thing: the timestamp is the figure
      const t = performance.now();
      this.onMessage(t, msg);
    });
    // answered after the 'message' listener ran: only when a reply is expected
    this.bus.addMethodHandler((msg: Message) => {
      if (msg.interface !== NOTIFICATION) return false;
      if (((msg.flags as number) & NO_REPLY_EXPECTED) === 0 && !this.closed) {
        try {
          this.bus.send(Message.newMethodReturn(msg, '', []));
        } catch {
          // the connection is going away
        }
      }
      return true;
    });
  }

  get uniqueName(): string {
    return this.sb.uniqueName;
  }

  /** Sends CreateSession now (t0 is taken right before); the reply and Updates are recorded as they come. */
  create(settingsDict: Settings, notifier: string): BenchSession {
    const s = new BenchSession(this, notifier);
    const msg = new Message({
      destination: 'net.connman',
      path: '/',
      interface: 'net.connman.Manager',
      member: 'CreateSession',
      signature: 'a{sv}o',
      body: [settingsDict, notifier],
    });
    msg.serial = this.bus.newSerial();
    this.byNotifier.set(notifier, s);
    this.byReplySerial.set(msg.serial, s);
    this.sessions.push(s);
    s.t0 = performance.now();
    this.bus.send(msg);
    return s;
  }

  /**
   * A method call on the daemon without arguments, timed as CreateSession is (from right
   * before it is written to the arrival of its reply): the round trip through bus, daemon
   * and this client that every other figure contains.
   */
  roundTrip(path: string, iface: string, member: string): Promise<number> {
    const msg = new Message({ destination: 'net.connman', path, interface: iface, member });
    msg.serial = this.bus.newSerial();
    return new Promise<number>((resolve) => {
      const t0 = performance.now();
      this.timed.set(msg.serial as number, (t) => resolve(t - t0));
      this.bus.send(msg);
    });
  }

  /** A method call on the daemon, awaited (not timed). */
  async call(path: string, iface: string, member: string, signature = '', body: unknown[] = []): Promise<unknown[]> {
    const reply = await this.bus.call(new Message({ destination: 'net.connman', path, interface: iface, member, signature, body }));
    return reply?.body ?? [];
  }

  private onMessage(t: number, msg: Message): void {
    const type = msg.type as number;
    if (type === METHOD_RETURN || type === ERROR) {
      // typed as a string by dbus-next, a number on the wire
      const serial = Number(msg.replySerial);
      const done = this.timed.get(serial);
      if (done !== undefined) {
        this.timed.delete(serial);
        done(t);
        return;
      }
      const s = this.byReplySerial.get(serial);
      if (s === undefined) return;
      this.byReplySerial.delete(serial);
      s.tReply = t;
      if (type === ERROR) {
        s.error = msg.errorName ?? 'error';
        this.hub.errors++;
        this.hub.errorNames.set(s.error, (this.hub.errorNames.get(s.error) ?? 0) + 1);
        if (s.tFirst === undefined) this.hub.onDone?.(s);
      } else {
        const p: unknown = msg.body[0];
        if (typeof p === 'string') s.path = p;
        this.hub.replies++;
      }
      this.hub.wake();
    } else if (type === METHOD_CALL && msg.interface === NOTIFICATION && msg.path !== undefined) {
      const s = this.byNotifier.get(msg.path);
      if (s === undefined) return;
      if (msg.member === 'Release') {
        s.released = true;
        return;
      }
      if (msg.member !== 'Update') return;
      const dict: unknown = msg.body[0];
      const changed: Record<string, unknown> = {};
      if (typeof dict === 'object' && dict !== null) for (const [k, v] of Object.entries(dict)) changed[k] = unwrap(v);
      Object.assign(s.current, changed);
      const e: UpdateEvent = { t, changed };
      s.updates.push(e);
      const first = s.tFirst === undefined;
      if (first) {
        s.tFirst = t;
        this.hub.firstUpdates++;
      }
      this.hub.updates++;
      for (const l of this.hub.listeners) l(s, e);
      if (first && s.error === undefined) this.hub.onDone?.(s);
      this.hub.wake();
    }
  }

  /** Disconnects: the daemon ends every session of this connection (owner gone). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.hub.conns.delete(this);
    this.sb.close();
  }
}
