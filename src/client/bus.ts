// One connection to a D-Bus bus, over dbus-next's low-level API (Message + call): no
// introspection round trips, exact signatures, and the failure modes dbus-next leaves open
// closed here — a call whose bus connection breaks, or that never gets a reply, rejects
// instead of hanging, and a bad address fails before anything is sent.
import type { EventEmitter } from 'node:events';
import dbus, { type Message, type MessageBus } from 'dbus-next';
import { useWireCodec } from '../api/bus/wire-decoder.ts';
import { ClientUsageError, DaemonError, DaemonUnavailableError, unavailableReasonOf } from './errors.ts';

export const DEFAULT_SYSTEM_BUS_ADDRESS = 'unix:path=/var/run/dbus/system_bus_socket';
/** libdbus's default reply timeout */
export const DEFAULT_CALL_TIMEOUT_MS = 25_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
const SIGNAL = dbus.MessageType.SIGNAL as number;

/** The system bus address: an explicit one, else DBUS_SYSTEM_BUS_ADDRESS, else the standard socket. */
export function systemBusAddress(explicit?: string): string {
  if (explicit !== undefined && explicit !== '') return explicit;
  const env = process.env.DBUS_SYSTEM_BUS_ADDRESS;
  return env !== undefined && env !== '' ? env : DEFAULT_SYSTEM_BUS_ADDRESS;
}

/**
 * Why dbus-next could not use this address (undefined: it can). Checked before connecting:
 * dbus-next throws a TypeError on some malformed addresses and needs an optional native
 * module for abstract sockets, which this project does not install.
 */
export function busAddressProblem(address: string): string | undefined {
  const parts = address.split(';').filter((p) => p !== '');
  if (parts.length === 0) return 'empty bus address';
  for (const part of parts) {
    const colon = part.indexOf(':');
    if (colon <= 0) return `bad bus address ${JSON.stringify(part)}: expected TRANSPORT:KEY=VALUE,… (e.g. unix:path=/run/dbus/system_bus_socket)`;
    const transport = part.slice(0, colon);
    const params = new Map<string, string>();
    for (const kv of part.slice(colon + 1).split(',')) {
      const eq = kv.indexOf('=');
      if (eq <= 0) return `bad bus address ${JSON.stringify(part)}: ${JSON.stringify(kv)} is not KEY=VALUE`;
      params.set(kv.slice(0, eq), kv.slice(eq + 1));
    }
    if (transport === 'unix') {
      if (params.has('abstract')) return `bus address ${JSON.stringify(part)}: abstract sockets are not supported; use unix:path=…`;
      if (!params.get('path') && !params.get('socket')) return `bus address ${JSON.stringify(part)}: unix needs path=…`;
    } else if (transport === 'tcp') {
      const port = params.get('port');
      if (!port || !/^[0-9]{1,5}$/.test(port) || Number(port) > 65535) return `bus address ${JSON.stringify(part)}: tcp needs port=1..65535`;
    } else return `bus address ${JSON.stringify(part)}: transport ${JSON.stringify(transport)} is not supported (unix or tcp)`;
  }
  return undefined;
}

export interface CallSpec {
  destination: string;
  path: string;
  interface: string;
  member: string;
  signature?: string;
  body?: unknown[];
  /** reply time limit; DEFAULT_CALL_TIMEOUT_MS when not given */
  timeoutMs?: number;
}

export interface SignalMessage {
  sender: string;
  path: string;
  interface: string;
  member: string;
  signature: string;
  body: unknown[];
}

function describeSocketError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'no such socket (ENOENT)';
    if (code === 'ECONNREFUSED') return 'nobody listens on it (ECONNREFUSED)';
    if (code === 'EACCES') return 'permission denied (EACCES)';
    return err.message;
  }
  return String(err);
}

export class BusConnection {
  private readonly pending = new Set<(e: Error) => void>();
  private readonly signalListeners = new Set<(m: SignalMessage) => void>();
  private readonly closeListeners = new Set<(e: DaemonUnavailableError) => void>();
  private closedError: DaemonUnavailableError | undefined;

  private constructor(
    private readonly bus: MessageBus,
    readonly address: string,
  ) {
    bus.on('message', (msg: Message) => {
      if ((msg.type as number) !== SIGNAL) return;
      const m: SignalMessage = {
        sender: msg.sender,
        path: msg.path,
        interface: msg.interface,
        member: msg.member,
        signature: msg.signature ?? '',
        body: msg.body ?? [],
      };
      for (const l of this.signalListeners) l(m);
    });
    // dbus-next emits 'error' on socket errors and on writes to a closed stream; an
    // EventEmitter without an 'error' listener would throw and end the process
    bus.on('error', (err: unknown) => this.fail('bus-lost', `connection to the bus at ${address} lost: ${describeSocketError(err)}`));
    // the end of the stream (bus daemon gone) is only seen by dbus-next's private connection object
    const conn = (bus as unknown as { _connection?: EventEmitter })._connection;
    conn?.on('end', () => this.fail('bus-lost', `the bus at ${address} closed the connection`));
  }

  /** Connects and says Hello; DaemonUnavailableError('no-bus') when the bus cannot be reached. */
  static async open(address: string, timeoutMs = DEFAULT_CONNECT_TIMEOUT_MS): Promise<BusConnection> {
    const problem = busAddressProblem(address);
    if (problem) throw new ClientUsageError(problem);
    let bus: MessageBus;
    try {
      bus = dbus.sessionBus({ busAddress: address });
      // our marshalling both ways (src/api/bus/wire-*.ts): a fraction of dbus-next's cost per message
      useWireCodec(bus);
    } catch (err) {
      throw new DaemonUnavailableError('no-bus', address, `cannot connect to the bus at ${address}: ${describeSocketError(err)}`);
    }
    let timer: NodeJS.Timeout | undefined;
    let onError: ((err: unknown) => void) | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        onError = (err: unknown) => reject(new DaemonUnavailableError('no-bus', address, `cannot connect to the bus at ${address}: ${describeSocketError(err)}`));
        bus.once('connect', () => resolve());
        bus.on('error', onError);
        timer = setTimeout(() => reject(new DaemonUnavailableError('no-bus', address, `the bus at ${address} did not answer within ${timeoutMs} ms`)), timeoutMs);
      });
    } catch (err) {
      // keep an error listener: the failing socket may still emit
      bus.on('error', () => {});
      try {
        bus.disconnect();
      } catch {
        // the stream never opened
      }
      throw err;
    } finally {
      clearTimeout(timer);
      if (onError) bus.off('error', onError);
    }
    return new BusConnection(bus, address);
  }

  /** Our unique name on the bus (:1.42). */
  get uniqueName(): string {
    // set by dbus-next after Hello; its typings leave it out
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
    for (const l of this.closeListeners) l(e);
  }

  /** Calls a method; resolves to the reply body. D-Bus errors become DaemonError or DaemonUnavailableError. */
  call(spec: CallSpec): Promise<unknown[]> {
    if (this.closedError) return Promise.reject(this.closedError);
    return timedCall(this.bus, spec, this.address, this.pending);
  }

  /** Asks the bus to route matching signals to us; resolves once the bus has the rule. */
  async addMatch(rule: string): Promise<void> {
    await this.call({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'AddMatch', signature: 's', body: [rule] });
  }

  async removeMatch(rule: string): Promise<void> {
    if (this.closedError) return;
    await this.call({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'RemoveMatch', signature: 's', body: [rule] });
  }

  /** The unique name owning a well-known name, or undefined when nobody owns it. */
  async nameOwner(name: string): Promise<string | undefined> {
    try {
      const [owner] = await this.call({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'GetNameOwner', signature: 's', body: [name] });
      return typeof owner === 'string' ? owner : undefined;
    } catch (err) {
      if (err instanceof DaemonUnavailableError && err.dbusName === 'org.freedesktop.DBus.Error.NameHasNoOwner') return undefined;
      throw err;
    }
  }

  onSignal(listener: (m: SignalMessage) => void): () => void {
    this.signalListeners.add(listener);
    return () => this.signalListeners.delete(listener);
  }

  onClose(listener: (e: DaemonUnavailableError) => void): () => void {
    this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
  }

  close(): void {
    if (this.closedError) return;
    this.fail('closed', 'the client was closed');
    try {
      this.bus.disconnect();
    } catch {
      // already gone
    }
  }
}

/**
 * One method call with a time limit, shared by every connection of the client library:
 * `pending` holds the rejecters of calls in flight (so a lost bus fails them at once),
 * D-Bus errors become DaemonError / DaemonUnavailableError, bad values ClientUsageError.
 */
export function timedCall(bus: MessageBus, spec: CallSpec, address: string, pending: Set<(e: Error) => void>): Promise<unknown[]> {
  const msg = new dbus.Message({
    destination: spec.destination,
    path: spec.path,
    interface: spec.interface,
    member: spec.member,
    signature: spec.signature ?? '',
    body: spec.body ?? [],
  });
  const timeoutMs = spec.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  return new Promise<unknown[]>((resolve, reject) => {
    pending.add(reject);
    const timer = setTimeout(() => {
      pending.delete(reject);
      reject(new DaemonUnavailableError('timeout', address, `no reply from ${spec.destination} to ${spec.member} within ${timeoutMs} ms`));
    }, timeoutMs);
    const done = (): void => {
      clearTimeout(timer);
      pending.delete(reject);
    };
    let sent: Promise<Message | null>;
    try {
      sent = bus.call(msg);
    } catch (err) {
      // dbus-next throws synchronously for values that do not fit the signature, or a closed stream
      done();
      reject(mapCallError(err, spec, address));
      return;
    }
    sent.then(
      (reply) => {
        done();
        resolve(reply?.body ?? []);
      },
      (err: unknown) => {
        done();
        reject(mapCallError(err, spec, address));
      },
    );
  });
}

export function mapCallError(err: unknown, spec: CallSpec, address: string): Error {
  if (err instanceof dbus.DBusError) {
    const name = err.type;
    const reason = unavailableReasonOf(name);
    if (reason) {
      const what =
        reason === 'no-daemon'
          ? `${spec.destination} is not on the bus at ${address} (is the daemon running?)`
          : reason === 'daemon-lost'
            ? `${spec.destination} left the bus without replying to ${spec.member}`
            : `${spec.member}: ${err.text || name}`;
      return new DaemonUnavailableError(reason, address, what, name);
    }
    return new DaemonError(name, err.text ?? '', { path: spec.path, interface: spec.interface, member: spec.member });
  }
  if (err instanceof DaemonUnavailableError) return err;
  return new ClientUsageError(`${spec.member}: ${err instanceof Error ? err.message : String(err)}`);
}
