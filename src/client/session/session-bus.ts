// The bus side of a session: one dbus-next MessageBus (our own, or one the application
// shares with us), method calls that never hang (time limit, broken connection), the
// Notification calls the daemon makes to us, signals, and the end of the connection.
// A session needs the MessageBus itself (to answer calls), which BusConnection keeps private.
import type { EventEmitter } from 'node:events';
import dbus, { type Message, type MessageBus } from 'dbus-next';
import { useWireCodec } from '../../api/bus/wire-decoder.ts';
import { busAddressProblem, type CallSpec, timedCall } from '../bus.ts';
import { ClientUsageError, DaemonUnavailableError } from '../errors.ts';

const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
const SIGNAL = dbus.MessageType.SIGNAL as number;
const METHOD_CALL = dbus.MessageType.METHOD_CALL as number;
/** the message flag that says the caller wants no reply */
export const NO_REPLY_EXPECTED = 0x1;
/** how long a closed session's notifier still takes calls on a shared connection */
const SHARED_GRACE_MS = 2_000;

function describe(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') return 'no such socket (ENOENT)';
  if (code === 'ECONNREFUSED') return 'nobody listens on it (ECONNREFUSED)';
  if (code === 'EACCES') return 'permission denied (EACCES)';
  return err instanceof Error ? err.message : String(err);
}

/** Resolves when a MessageBus has said Hello (at once when it has). */
function connected(bus: MessageBus, address: string, timeoutMs: number): Promise<void> {
  if ((bus as unknown as { name?: string | null }).name) return Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  let onError: ((err: unknown) => void) | undefined;
  let onConnect: (() => void) | undefined;
  return new Promise<void>((resolve, reject) => {
    onError = (err: unknown) => reject(new DaemonUnavailableError('no-bus', address, `cannot connect to the bus at ${address}: ${describe(err)}`));
    onConnect = () => resolve();
    bus.once('connect', onConnect);
    bus.on('error', onError);
    timer = setTimeout(() => reject(new DaemonUnavailableError('no-bus', address, `the bus at ${address} did not answer within ${timeoutMs} ms`)), timeoutMs);
  }).finally(() => {
    clearTimeout(timer);
    if (onError) bus.off('error', onError);
    if (onConnect) bus.off('connect', onConnect);
  });
}

export class SessionBus {
  private closedError: DaemonUnavailableError | undefined;
  private readonly pending = new Set<(e: Error) => void>();
  private readonly closeListeners = new Set<(e: DaemonUnavailableError) => void>();
  private readonly cleanups: (() => void)[] = [];
  private disconnected = false;

  private constructor(
    readonly bus: MessageBus,
    readonly address: string,
    /** true: ours, closed with the session; false: the application's, left open */
    readonly owned: boolean,
  ) {
    const onError = (err: unknown): void => this.fail('bus-lost', `connection to the bus at ${address} lost: ${describe(err)}`);
    bus.on('error', onError);
    this.cleanups.push(() => bus.off('error', onError));
    // the end of the stream is only seen by dbus-next's private connection object
    const conn = (bus as unknown as { _connection?: EventEmitter })._connection;
    if (conn) {
      const onEnd = (): void => this.fail('bus-lost', `the bus at ${address} closed the connection`);
      conn.on('end', onEnd);
      this.cleanups.push(() => conn.off('end', onEnd));
    }
  }

  /** Our own connection to the bus at `address`. */
  static async open(address: string, timeoutMs = DEFAULT_CONNECT_TIMEOUT_MS): Promise<SessionBus> {
    const problem = busAddressProblem(address);
    if (problem) throw new ClientUsageError(problem);
    let bus: MessageBus;
    try {
      bus = dbus.sessionBus({ busAddress: address });
      // our marshalling both ways (src/api/bus/wire-*.ts): a fraction of dbus-next's cost per message
      useWireCodec(bus);
    } catch (err) {
      throw new DaemonUnavailableError('no-bus', address, `cannot connect to the bus at ${address}: ${describe(err)}`);
    }
    try {
      await connected(bus, address, timeoutMs);
    } catch (err) {
      // the failing socket may still emit: keep a listener so nothing is thrown at the process
      bus.on('error', () => {});
      try {
        bus.disconnect();
      } catch {
        // never opened
      }
      throw err;
    }
    return new SessionBus(bus, address, true);
  }

  /** The application's connection; it stays open when the session ends. */
  static async shared(bus: MessageBus, timeoutMs = DEFAULT_CONNECT_TIMEOUT_MS): Promise<SessionBus> {
    await connected(bus, '(shared connection)', timeoutMs);
    return new SessionBus(bus, '(shared connection)', false);
  }

  get uniqueName(): string {
    return (this.bus as unknown as { name?: string | null }).name ?? '';
  }

  get closed(): boolean {
    return this.closedError !== undefined;
  }

  private fail(reason: 'bus-lost' | 'closed', message: string): void {
    if (this.closedError) return;
    const e = new DaemonUnavailableError(reason, this.address, message);
    this.closedError = e;
    for (const reject of [...this.pending]) reject(e);
    this.pending.clear();
    for (const l of [...this.closeListeners]) l(e);
  }

  call(spec: CallSpec): Promise<unknown[]> {
    if (this.closedError) return Promise.reject(this.closedError);
    return timedCall(this.bus, spec, this.address, this.pending);
  }

  /** The unique name owning a well-known name, or undefined. */
  async nameOwner(name: string, timeoutMs?: number): Promise<string | undefined> {
    try {
      const [owner] = await this.call({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'GetNameOwner', signature: 's', body: [name], ...(timeoutMs ? { timeoutMs } : {}) });
      return typeof owner === 'string' ? owner : undefined;
    } catch (err) {
      if (err instanceof DaemonUnavailableError && err.dbusName === 'org.freedesktop.DBus.Error.NameHasNoOwner') return undefined;
      throw err;
    }
  }

  async addMatch(rule: string): Promise<void> {
    await this.call({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'AddMatch', signature: 's', body: [rule] });
  }

  /** Best effort: on a shared connection the rule should not outlive the session. */
  removeMatch(rule: string): void {
    if (this.closedError || this.owned) return;
    this.call({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'RemoveMatch', signature: 's', body: [rule] }).catch(() => {});
  }

  /**
   * Method calls to `path`: the handler answers them (return a reply body, or throw a
   * D-Bus error as {name, message}); a call that expects no reply gets none.
   */
  serve(path: string, iface: string, handler: (msg: Message) => { reply?: unknown[]; error?: { name: string; message: string } }): () => void {
    const fn = (msg: Message): boolean => {
      if ((msg.type as number) !== METHOD_CALL || msg.path !== path) return false;
      if (msg.interface !== undefined && msg.interface !== null && msg.interface !== '' && msg.interface !== iface) return false;
      let r: { reply?: unknown[]; error?: { name: string; message: string } };
      try {
        r = handler(msg);
      } catch (err) {
        r = { error: { name: 'org.freedesktop.DBus.Error.Failed', message: err instanceof Error ? err.message : String(err) } };
      }
      if (((msg.flags as number) & NO_REPLY_EXPECTED) !== 0) return true;
      try {
        // dbus-next's typings say newError takes a string; it takes the call
        if (r.error) this.bus.send(dbus.Message.newError(msg as unknown as string, r.error.name, r.error.message));
        else this.bus.send(dbus.Message.newMethodReturn(msg, '', r.reply ?? []));
      } catch {
        // the connection is going away
      }
      return true;
    };
    this.bus.addMethodHandler(fn);
    const off = (): void => this.bus.removeMethodHandler(fn);
    // on a shared connection the handler outlives close() a little: the daemon's last Update
    // (sent after DestroySession's reply) must not meet dbus-next's default answer, which
    // throws when the application disconnects at once
    this.cleanups.push(() => (this.owned ? off() : setTimeout(off, SHARED_GRACE_MS).unref()));
    return off;
  }

  onSignal(listener: (m: Message) => void): () => void {
    const fn = (m: Message): void => {
      if ((m.type as number) === SIGNAL) listener(m);
    };
    this.bus.on('message', fn);
    const off = (): void => {
      this.bus.off('message', fn);
    };
    this.cleanups.push(off);
    return off;
  }

  onClose(listener: (e: DaemonUnavailableError) => void): () => void {
    this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
  }

  /** Stops everything of ours; disconnects only a connection we opened. */
  close(): void {
    this.fail('closed', 'the session was closed');
    for (const c of this.cleanups.splice(0)) c();
    if (this.owned && !this.disconnected) {
      this.disconnected = true;
      // dbus-next may still emit on the dying stream, and would answer a call that is still
      // in its buffer (the daemon's last Update) with an error sent into the closed stream,
      // which throws out of its message handler: swallow every call from now on
      this.bus.on('error', () => {});
      this.bus.addMethodHandler(() => true);
      try {
        this.bus.disconnect();
      } catch {
        // already gone
      }
    }
  }
}
