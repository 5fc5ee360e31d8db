// A session of ConnMan's Session API (seed 004, seed 001) for an application: created with
// Manager.CreateSession, told about its service through our own net.connman.Notification
// object (Update, Release), steered with Connect/Disconnect/Change, ended with
// DestroySession — and, with netsessiond, traffic through it: sockets carrying its
// SessionMarker (SO_MARK) go through its service, or nowhere (fail closed).
import { EventEmitter } from 'node:events';
import type http from 'node:http';
import type { Socket } from 'node:net';
import type { Message, MessageBus } from 'dbus-next';
import { systemBusAddress } from '../bus.ts';
import { ClientUsageError, DaemonError, DaemonUnavailableError } from '../errors.ts';
import { CONNMAN_BUS_NAME } from '../connman/client.ts';
import { connectMarked, fetchVia, requestVia, type SessionFetchInit, type SessionRequestOptions, type TcpTarget } from './net.ts';
import { SessionBus } from './session-bus.ts';
import {
  initialSettings,
  parseSessionUpdate,
  type SessionConfig,
  type SessionConfigKey,
  sessionConfigDict,
  sessionConfigVariant,
  type SessionSettings,
  type SessionState,
  setsExtendedKey,
} from './types.ts';

const MANAGER_IFACE = 'net.connman.Manager';
const SESSION_IFACE = 'net.connman.Session';
export const NOTIFICATION_IFACE = 'net.connman.Notification';
const DEFAULT_FIRST_UPDATE_TIMEOUT_MS = 10_000;
/** what a notifier path may be: an object path other than `/` (ConnMan aborts on `/`) */
const NOTIFIER_PATH = /^(?:\/[A-Za-z0-9_]+)+$/;

let notifierCounter = 0;
/** A notifier path unique in this process (and, with the random part, across module copies). */
function uniqueNotifierPath(): string {
  notifierCounter += 1;
  const rnd = Math.floor(Math.random() * 0x100000000).toString(16);
  return `/net/netsession/client/p${process.pid}_${notifierCounter}_${rnd}`;
}

/** NameOwnerChanged of the daemon's name: how a session hears of the daemon leaving. */
function ownerChangedRule(busName: string): string {
  return `type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='${busName}'`;
}

export interface SessionOptions {
  /**
   * The bus: an address (default: $DBUS_SYSTEM_BUS_ADDRESS, else the system bus), each
   * session then has a connection of its own (and is ended by the daemon if the process
   * dies); or an open dbus-next MessageBus the application shares with us (left open).
   */
  bus?: string | MessageBus;
  /** the daemon's bus name (default net.connman) */
  busName?: string;
  /** the notifier object path (default: a unique one of ours) */
  notifierPath?: string;
  /**
   * Set one of seed 001's keys at creation (AvoidHandover: false, the default value, unless
   * the settings set one already), so that netsessiond reports the SessionMarker, which
   * connectTcp/request/fetch need. Default true; false for ConnMan itself, which refuses
   * those keys.
   */
  extended?: boolean;
  /** network namespace (a name under /run/netns) in which sockets are created (labs, tests); default: the process's own */
  netns?: string;
  /** bus connect/Hello time limit (default 5 s) */
  connectTimeoutMs?: number;
  /** reply time limit of calls (default 25 s) */
  callTimeoutMs?: number;
  /** how long create() waits for the first Update (default 10 s) */
  firstUpdateTimeoutMs?: number;
}

/** Why a session ended (for this object: it takes no more calls). */
export type SessionEndReason =
  /** destroy() */
  | 'destroyed'
  /** the daemon ended it and said so (Release), e.g. because it stops */
  | 'released'
  /** the daemon left the bus without a Release */
  | 'daemon-lost'
  /** our connection to the bus broke */
  | 'bus-lost'
  /** close() */
  | 'closed';

export interface SessionEvents {
  /** an Update: the keys it carried (typed, unwrapped) and the merged view after it */
  update: [changed: Partial<SessionSettings>, settings: SessionSettings];
  /** the daemon ended the session (net.connman.Notification.Release) */
  released: [];
  /** the session object is done (after released, destroy(), close(), or a lost daemon or bus) */
  closed: [reason: SessionEndReason];
}

export class Session extends EventEmitter<SessionEvents> {
  /** the session's object path at the daemon (/sessions/<owner><notifier>) */
  path = '';
  private current: SessionSettings = initialSettings();
  private updates = 0;
  private endReason: SessionEndReason | undefined;
  private readonly offs: (() => void)[] = [];
  private readonly ownerRule: string;

  private constructor(
    private readonly link: SessionBus,
    /** the daemon's unique bus name: only it may call our notifier */
    readonly daemon: string,
    readonly busName: string,
    readonly notifierPath: string,
    private readonly opts: SessionOptions,
  ) {
    super();
    this.ownerRule = ownerChangedRule(busName);
  }

  /**
   * Creates a session and resolves once the daemon has told its settings (the first
   * Update). Settings are checked before anything is sent (ClientUsageError); the daemon's
   * refusal is a DaemonError (InvalidArguments, AlreadyExists, PermissionDenied, …); no bus
   * or no daemon is a DaemonUnavailableError.
   */
  static async create(settings: SessionConfig = {}, opts: SessionOptions = {}): Promise<Session> {
    const dict = sessionConfigDict(settings);
    if (opts.extended !== false && !setsExtendedKey(settings)) dict.AvoidHandover = sessionConfigVariant('AvoidHandover', false);
    const notifier = opts.notifierPath ?? uniqueNotifierPath();
    if (!NOTIFIER_PATH.test(notifier)) throw new ClientUsageError(`notifier path ${JSON.stringify(notifier)} is not an object path other than /`);
    const busName = opts.busName ?? CONNMAN_BUS_NAME;
    const link = typeof opts.bus === 'object' && opts.bus !== null ? await SessionBus.shared(opts.bus, opts.connectTimeoutMs) : await SessionBus.open(systemBusAddress(opts.bus), opts.connectTimeoutMs);
    let s: Session | undefined;
    const ownerRule = ownerChangedRule(busName);
    try {
      // both before CreateSession: who may call our notifier, and hearing of the daemon leaving
      const [daemon] = await Promise.all([link.nameOwner(busName, opts.callTimeoutMs), link.addMatch(ownerRule)]);
      if (daemon === undefined) throw new DaemonUnavailableError('no-daemon', link.address, `${busName} is not on the bus (is netsessiond running?)`);
      s = new Session(link, daemon, busName, notifier, opts);
      await s.start(dict);
      return s;
    } catch (err) {
      // on a shared connection a session created meanwhile must not outlive us
      if (s) s.close();
      else {
        link.removeMatch(ownerRule);
        link.close();
      }
      throw err;
    }
  }

  private async start(dict: Record<string, unknown>): Promise<void> {
    // the notifier first: the first Update may come before (or be read before) the reply
    // (removed by link.close(): on a shared connection only after a grace period)
    this.link.serve(this.notifierPath, NOTIFICATION_IFACE, (m) => this.notification(m));
    this.offs.push(this.link.onClose((e) => this.finish(e.reason === 'closed' ? 'closed' : 'bus-lost')));
    this.offs.push(
      this.link.onSignal((m) => {
        if (m.sender !== 'org.freedesktop.DBus' || m.member !== 'NameOwnerChanged' || m.interface !== 'org.freedesktop.DBus') return;
        const [name, , newOwner] = (m.body ?? []) as [unknown, unknown, unknown];
        if (name === this.busName && newOwner !== this.daemon) this.finish('daemon-lost');
      }),
    );
    const first = this.nextUpdate(this.opts.firstUpdateTimeoutMs ?? DEFAULT_FIRST_UPDATE_TIMEOUT_MS);
    first.catch(() => {});
    const [path] = await this.call(MANAGER_IFACE, 'CreateSession', 'a{sv}o', [dict, this.notifierPath], '/');
    this.path = String(path);
    await first;
  }

  /** Resolves with the first Update from now (at once if one arrived already and none was awaited). */
  private nextUpdate(timeoutMs: number): Promise<void> {
    if (this.updates > 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(new DaemonUnavailableError('timeout', this.link.address, `no Update from ${this.busName} within ${timeoutMs} ms of CreateSession`));
      }, timeoutMs);
      const onUpdate = (): void => {
        cleanup();
        resolve();
      };
      const onClosed = (reason: SessionEndReason): void => {
        cleanup();
        reject(new DaemonUnavailableError(reason === 'bus-lost' ? 'bus-lost' : 'daemon-lost', this.link.address, `the session ended (${reason}) before its first Update`));
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        this.off('update', onUpdate);
        this.off('closed', onClosed);
      };
      this.on('update', onUpdate);
      this.on('closed', onClosed);
    });
  }

  /** Our net.connman.Notification: Update and Release, from the daemon only. */
  private notification(m: Message): { reply?: unknown[]; error?: { name: string; message: string } } {
    if (m.sender !== this.daemon) return { error: { name: 'org.freedesktop.DBus.Error.AccessDenied', message: `only ${this.busName} may call this notifier` } };
    if (this.endReason !== undefined) return { reply: [] };
    if (m.member === 'Update' && m.signature === 'a{sv}') {
      const changed = parseSessionUpdate(m.body[0]);
      this.current = { ...this.current, ...changed };
      this.updates += 1;
      const snapshot = this.settings;
      // listeners run outside the bus's message handler: what they throw is theirs
      process.nextTick(() => this.emit('update', changed, snapshot));
      return { reply: [] };
    }
    if (m.member === 'Release' && (m.signature ?? '') === '') {
      process.nextTick(() => this.finish('released'));
      return { reply: [] };
    }
    return { error: { name: 'org.freedesktop.DBus.Error.UnknownMethod', message: `${NOTIFICATION_IFACE} has no method ${m.member}(${m.signature ?? ''})` } };
  }

  /** Ends this object once: stops listening, closes our own bus connection, tells the listeners. */
  private finish(reason: SessionEndReason): void {
    if (this.endReason !== undefined) return;
    this.endReason = reason;
    for (const off of this.offs.splice(0)) off();
    this.link.removeMatch(this.ownerRule);
    // a shared connection stays; the daemon ends sessions of a closed one by itself
    this.link.close();
    if (reason === 'released') this.emit('released');
    this.emit('closed', reason);
  }

  private call(iface: string, member: string, signature = '', body: unknown[] = [], path = this.path): Promise<unknown[]> {
    return this.link.call({ destination: this.busName, path, interface: iface, member, signature, body, ...(this.opts.callTimeoutMs ? { timeoutMs: this.opts.callTimeoutMs } : {}) });
  }

  private usable(what: string): void {
    if (this.endReason !== undefined) throw new ClientUsageError(`${what}: the session has ended (${this.endReason})`);
  }

  // ---- what the application sees -------------------------------------------------------

  /** The merged view of every Update so far (a copy). */
  get settings(): SessionSettings {
    return { ...this.current, IPv4: { ...this.current.IPv4 }, IPv6: { ...this.current.IPv6 }, AllowedBearers: [...this.current.AllowedBearers] };
  }

  get state(): SessionState {
    return this.current.State;
  }

  /** SessionMarker, when the daemon reports it (netsessiond, extended sessions). */
  get marker(): number | undefined {
    return typeof this.current.SessionMarker === 'number' ? this.current.SessionMarker : undefined;
  }

  /** Our unique name on the bus: the session's owner. */
  get owner(): string {
    return this.link.uniqueName;
  }

  /** Why the session ended, or undefined while it lasts. */
  get ended(): SessionEndReason | undefined {
    return this.endReason;
  }

  /**
   * Resolves with the settings once State is one of `states` (at once if it is now);
   * rejects when the session ends first or after `timeoutMs` (DaemonUnavailableError 'timeout').
   */
  waitForState(states: SessionState | readonly SessionState[], timeoutMs = 30_000): Promise<SessionSettings> {
    const wanted = typeof states === 'string' ? [states] : states;
    return this.waitFor((s) => wanted.includes(s.State), timeoutMs, `State ${wanted.join('|')}`);
  }

  /** Resolves with the settings once `check` holds for them (checked now and after every Update). */
  waitFor(check: (s: SessionSettings) => boolean, timeoutMs = 30_000, what = 'the condition'): Promise<SessionSettings> {
    if (check(this.current)) return Promise.resolve(this.settings);
    if (this.endReason !== undefined) return Promise.reject(new ClientUsageError(`waiting for ${what}: the session has ended (${this.endReason})`));
    return new Promise<SessionSettings>((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(new DaemonUnavailableError('timeout', this.link.address, `session ${this.path}: no ${what} within ${timeoutMs} ms (State ${this.current.State})`));
      }, timeoutMs);
      const onUpdate = (_c: Partial<SessionSettings>, s: SessionSettings): void => {
        if (!check(s)) return;
        cleanup();
        resolve(s);
      };
      const onClosed = (reason: SessionEndReason): void => {
        cleanup();
        reject(new DaemonUnavailableError(reason === 'bus-lost' ? 'bus-lost' : 'daemon-lost', this.link.address, `waiting for ${what}: the session ended (${reason})`));
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        this.off('update', onUpdate);
        this.off('closed', onClosed);
      };
      this.on('update', onUpdate);
      this.on('closed', onClosed);
    });
  }

  // ---- methods ----------------------------------------------------------------------------

  /** Session.Connect: ask for a connection (returns at once; State follows in Updates). */
  async connect(): Promise<void> {
    this.usable('connect');
    await this.call(SESSION_IFACE, 'Connect');
  }

  /** Session.Disconnect: the session needs no connection any more. */
  async disconnect(): Promise<void> {
    this.usable('disconnect');
    await this.call(SESSION_IFACE, 'Disconnect');
  }

  /** Session.Change: one setting; the value's type is checked before anything is sent. */
  async change<K extends SessionConfigKey>(key: K, value: NonNullable<SessionConfig[K]>): Promise<void> {
    const v = sessionConfigVariant(key, value);
    this.usable(`change ${key}`);
    await this.call(SESSION_IFACE, 'Change', 'sv', [key, v]);
  }

  /**
   * Manager.DestroySession, then the object is done. A session the daemon no longer knows
   * (InvalidArguments, NotFound) counts as destroyed; other errors are thrown after the
   * local end.
   */
  async destroy(): Promise<void> {
    if (this.endReason !== undefined) return;
    try {
      await this.call(MANAGER_IFACE, 'DestroySession', 'o', [this.path], '/');
    } catch (err) {
      if (!(err instanceof DaemonError && (err.shortName === 'InvalidArguments' || err.shortName === 'NotFound'))) {
        this.finish('destroyed');
        throw err;
      }
    }
    this.finish('destroyed');
  }

  /**
   * Ends the object without waiting: on our own bus connection, closing it is enough (the
   * daemon ends the sessions of a client that leaves the bus); on a shared connection a
   * DestroySession is sent without waiting for its answer. Never throws.
   */
  close(): void {
    if (this.endReason !== undefined) return;
    if (!this.link.owned && this.path) this.call(MANAGER_IFACE, 'DestroySession', 'o', [this.path], '/').catch(() => {});
    this.finish('closed');
  }

  // ---- traffic through the session ---------------------------------------------------------

  /**
   * The service's address, for the bind-before-connect style (SourceIPRule): a socket bound
   * to it leaves through the session's service. undefined while the session has none.
   */
  bindAddress(family: 4 | 6 = 4): string | undefined {
    const a = family === 4 ? this.current.IPv4.Address : this.current.IPv6.Address;
    return typeof a === 'string' && a !== '' ? a : undefined;
  }

  private plan(mark: boolean | undefined): { mark: number | undefined; netns: string | undefined } {
    // an ended session's marker fails closed for a while, then another session may get it
    if (this.endReason !== undefined) throw new ClientUsageError(`the session has ended (${this.endReason})`);
    if (mark === false) return { mark: undefined, netns: this.opts.netns };
    const m = this.marker;
    if (m === undefined) {
      throw new ClientUsageError('the daemon did not tell this session its SessionMarker (created with extended: false, or a daemon without SessionMarker such as ConnMan)');
    }
    return { mark: m, netns: this.opts.netns };
  }

  /**
   * A TCP connection through the session: the socket carries SO_MARK = SessionMarker from
   * its creation, so the kernel routes it through the session's service with that service's
   * source address. A session without a usable service (State disconnected) is not refused
   * here: the kernel fails closed and this rejects with ENETUNREACH (it may come back any
   * moment). An ended session is refused (ClientUsageError): its marker goes to another
   * session after a while. Sockets already open keep their mark: after the session ends they
   * fail closed. Setting a mark needs CAP_NET_ADMIN (EPERM otherwise).
   */
  connectTcp(target: TcpTarget): Promise<Socket> {
    let plan: { mark: number | undefined; netns: string | undefined };
    try {
      plan = this.plan(target.mark);
    } catch (err) {
      return Promise.reject(err);
    }
    return connectMarked(plan, target);
  }

  /** http.request through the session (https: TLS on top of the marked socket). */
  request(url: string | URL, options: SessionRequestOptions = {}, callback?: (res: http.IncomingMessage) => void): http.ClientRequest {
    this.plan(options.mark);
    return requestVia((t) => this.connectTcp(t), url, options, callback);
  }

  /** fetch() through the session: a WHATWG Response (http: and https:). */
  fetch(url: string | URL, init: SessionFetchInit = {}): Promise<Response> {
    try {
      this.plan(init.mark);
    } catch (err) {
      return Promise.reject(err);
    }
    return fetchVia((t) => this.connectTcp(t), url, init);
  }
}
