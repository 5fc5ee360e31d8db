// ConnmanClient: the connection-manager side of netsessiond (or of ConnMan itself) over
// D-Bus — Manager, Technology and Service objects, their signals as typed events, and
// errors that keep the D-Bus error name.
import { BusConnection, type SignalMessage, systemBusAddress } from '../bus.ts';
import { ClientUsageError, DaemonUnavailableError } from '../errors.ts';
import { type DbusVariant, unwrap, variant } from '../variant.ts';
import {
  isServiceState,
  managerProperties,
  partialServiceProperties,
  serviceProperties,
  serviceSettingVariant,
  technologyProperties,
} from './properties.ts';
import type {
  ConnmanEvent,
  IPv4ConfigInput,
  IPv6ConfigInput,
  ManagerProperties,
  ManagerSettings,
  ServiceEntry,
  ServiceProperties,
  ServiceSettings,
  ServiceState,
  TechnologyEntry,
  TechnologyProperties,
  TechnologySettings,
} from './types.ts';

export const CONNMAN_BUS_NAME = 'net.connman';
export const MANAGER_PATH = '/';
export const SERVICE_PATH_PREFIX = '/net/connman/service/';
export const TECHNOLOGY_PATH_PREFIX = '/net/connman/technology/';
const MANAGER_IFACE = 'net.connman.Manager';
const SERVICE_IFACE = 'net.connman.Service';
const TECHNOLOGY_IFACE = 'net.connman.Technology';
/** ConnMan's Connect returns only once the service is connected: its docs ask for a long timeout */
const CONNECT_TIMEOUT_MS = 120_000;

/** An object path element: what ConnMan's service ids and technology types consist of. */
const PATH_ELEMENT = /^[A-Za-z0-9_]+$/;

export interface ConnectOptions {
  /** connect/Hello time limit (default 5 s) */
  connectTimeoutMs?: number;
  /** reply time limit of ordinary calls (default 25 s, as libdbus) */
  callTimeoutMs?: number;
  /** the daemon's bus name (default net.connman) */
  busName?: string;
  /** fail with DaemonUnavailableError('no-daemon') when nobody owns the name (default true) */
  requireDaemon?: boolean;
}

export interface Subscription {
  /** stops the events and removes the match rules */
  close(): Promise<void>;
}

export function serviceIdOf(path: string): string {
  return path.startsWith(SERVICE_PATH_PREFIX) ? path.slice(SERVICE_PATH_PREFIX.length) : path.slice(path.lastIndexOf('/') + 1);
}

function technologyTypeOf(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** A service id or its object path → the path; ClientUsageError for anything else. */
export function servicePath(idOrPath: string): string {
  if (idOrPath.startsWith(SERVICE_PATH_PREFIX)) {
    if (!PATH_ELEMENT.test(idOrPath.slice(SERVICE_PATH_PREFIX.length))) throw new ClientUsageError(`${JSON.stringify(idOrPath)} is not a service object path`);
    return idOrPath;
  }
  if (!PATH_ELEMENT.test(idOrPath)) throw new ClientUsageError(`${JSON.stringify(idOrPath)} is not a service id (letters, digits and _)`);
  return SERVICE_PATH_PREFIX + idOrPath;
}

export class ConnmanClient {
  private owner: string | undefined;

  private constructor(
    readonly connection: BusConnection,
    readonly busName: string,
    private readonly callTimeoutMs: number | undefined,
  ) {}

  /**
   * Connects to the bus (default: DBUS_SYSTEM_BUS_ADDRESS, else the system bus socket) and
   * checks that the daemon is there. Throws DaemonUnavailableError when it is not, and
   * ClientUsageError for an unusable address.
   */
  static async connect(busAddress?: string, opts: ConnectOptions = {}): Promise<ConnmanClient> {
    const conn = await BusConnection.open(systemBusAddress(busAddress), opts.connectTimeoutMs);
    const c = new ConnmanClient(conn, opts.busName ?? CONNMAN_BUS_NAME, opts.callTimeoutMs);
    try {
      c.owner = await conn.nameOwner(c.busName);
      if (c.owner === undefined && opts.requireDaemon !== false) {
        throw new DaemonUnavailableError('no-daemon', conn.address, `${c.busName} is not on the bus at ${conn.address} (is netsessiond running?)`);
      }
    } catch (err) {
      conn.close();
      throw err;
    }
    return c;
  }

  get busAddress(): string {
    return this.connection.address;
  }

  /** The unique bus name of the daemon (undefined when it is not running). */
  get daemonOwner(): string | undefined {
    return this.owner;
  }

  /** A method call to the daemon (what the handles use; for methods they do not cover). */
  async call(path: string, iface: string, member: string, signature = '', body: unknown[] = [], timeoutMs?: number): Promise<unknown[]> {
    const limit = timeoutMs ?? this.callTimeoutMs;
    return this.connection.call({ destination: this.busName, path, interface: iface, member, signature, body, ...(limit === undefined ? {} : { timeoutMs: limit }) });
  }

  // ---- manager --------------------------------------------------------------------------

  async getProperties(): Promise<ManagerProperties> {
    const [d] = await this.call(MANAGER_PATH, MANAGER_IFACE, 'GetProperties');
    return managerProperties(d);
  }

  async setProperty<K extends keyof ManagerSettings>(name: K, value: ManagerSettings[K]): Promise<void> {
    await this.call(MANAGER_PATH, MANAGER_IFACE, 'SetProperty', 'sv', [name, variant.b(value)]);
  }

  setOfflineMode(on: boolean): Promise<void> {
    return this.setProperty('OfflineMode', on);
  }

  /** Services in the daemon's order (the first is the default service). */
  async services(): Promise<ServiceEntry[]> {
    const [list] = await this.call(MANAGER_PATH, MANAGER_IFACE, 'GetServices');
    return (Array.isArray(list) ? list : []).map((entry: unknown) => {
      const [path, dict] = Array.isArray(entry) ? entry : [];
      const p = String(path);
      return { id: serviceIdOf(p), path: p, properties: serviceProperties(dict) };
    });
  }

  async technologies(): Promise<TechnologyEntry[]> {
    const [list] = await this.call(MANAGER_PATH, MANAGER_IFACE, 'GetTechnologies');
    return (Array.isArray(list) ? list : []).map((entry: unknown) => {
      const [path, dict] = Array.isArray(entry) ? entry : [];
      const p = String(path);
      return { type: technologyTypeOf(p), path: p, properties: technologyProperties(dict) };
    });
  }

  /** A handle on one service by id or object path (nothing is sent until it is used). */
  service(idOrPath: string): ServiceHandle {
    return new ServiceHandle(this, servicePath(idOrPath));
  }

  /**
   * Finds a service by id, object path or network interface name (Ethernet.Interface);
   * undefined when there is none.
   */
  async findService(ref: string): Promise<ServiceEntry | undefined> {
    const all = await this.services();
    return (
      all.find((s) => s.id === ref || s.path === ref) ?? all.find((s) => s.properties.Ethernet.Interface === ref)
    );
  }

  technology(type: string): TechnologyHandle {
    if (!PATH_ELEMENT.test(type)) throw new ClientUsageError(`${JSON.stringify(type)} is not a technology type`);
    return new TechnologyHandle(this, TECHNOLOGY_PATH_PREFIX + type);
  }

  // ---- events ---------------------------------------------------------------------------

  /**
   * Delivers the daemon's signals as events. Resolves once the bus routes them to us, so a
   * change made after this resolves is never missed (read state after subscribing, not before).
   */
  async subscribe(listener: (ev: ConnmanEvent) => void): Promise<Subscription> {
    const rules = [
      ...[MANAGER_IFACE, TECHNOLOGY_IFACE, SERVICE_IFACE].map((i) => `type='signal',sender='${this.busName}',interface='${i}'`),
      `type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='${this.busName}'`,
    ];
    const offSignal = this.connection.onSignal((m) => {
      for (const ev of this.decode(m)) listener(ev);
    });
    const offClose = this.connection.onClose((e) => {
      if (e.reason !== 'closed') listener({ kind: 'bus-lost', message: e.message });
    });
    try {
      await Promise.all(rules.map((r) => this.connection.addMatch(r)));
      // the daemon may have restarted since connect(): signals are checked against its current name
      this.owner = await this.connection.nameOwner(this.busName);
    } catch (err) {
      offSignal();
      offClose();
      throw err;
    }
    return {
      close: async () => {
        offSignal();
        offClose();
        await Promise.all(rules.map((r) => this.connection.removeMatch(r).catch(() => {})));
      },
    };
  }

  /** The same events as an async iterator (ends when the bus connection is lost or `return()` is called). */
  async events(): Promise<AsyncIterableIterator<ConnmanEvent>> {
    const queue: ConnmanEvent[] = [];
    let wake: (() => void) | undefined;
    let ended = false;
    const sub = await this.subscribe((ev) => {
      queue.push(ev);
      if (ev.kind === 'bus-lost') ended = true;
      wake?.();
    });
    const it: AsyncIterableIterator<ConnmanEvent> = {
      [Symbol.asyncIterator]: () => it,
      next: async () => {
        for (;;) {
          const ev = queue.shift();
          if (ev) return { value: ev, done: false };
          if (ended) return { value: undefined, done: true };
          await new Promise<void>((r) => {
            wake = r;
          });
          wake = undefined;
        }
      },
      return: async () => {
        ended = true;
        wake?.();
        await sub.close();
        return { value: undefined, done: true };
      },
    };
    return it;
  }

  private decode(m: SignalMessage): ConnmanEvent[] {
    if (m.interface === 'org.freedesktop.DBus' && m.member === 'NameOwnerChanged') {
      const [name, , now] = m.body;
      if (name !== this.busName) return [];
      const owner = typeof now === 'string' ? now : '';
      this.owner = owner === '' ? undefined : owner;
      return [{ kind: 'daemon', present: owner !== '', owner }];
    }
    // signals of an old owner, or of someone else through a broader match rule of another user
    if (this.owner !== undefined && m.sender !== this.owner) return [];
    if (m.member === 'PropertyChanged' && m.signature === 'sv') {
      const name = String(m.body[0]);
      const value = unwrap(m.body[1]);
      if (m.interface === MANAGER_IFACE) return [{ kind: 'property-changed', object: 'manager', path: '/', name, value }];
      if (m.interface === TECHNOLOGY_IFACE) return [{ kind: 'property-changed', object: 'technology', path: m.path, type: technologyTypeOf(m.path), name, value }];
      if (m.interface === SERVICE_IFACE) return [{ kind: 'property-changed', object: 'service', path: m.path, id: serviceIdOf(m.path), name, value }];
      return [];
    }
    if (m.interface !== MANAGER_IFACE) return [];
    if (m.member === 'ServicesChanged') {
      const [changed, removed] = m.body;
      return [
        {
          kind: 'services-changed',
          changed: (Array.isArray(changed) ? changed : []).map((e: unknown) => {
            const [path, dict] = Array.isArray(e) ? e : [];
            const p = String(path);
            const properties = partialServiceProperties(dict);
            return properties ? { id: serviceIdOf(p), path: p, properties } : { id: serviceIdOf(p), path: p };
          }),
          removed: (Array.isArray(removed) ? removed : []).map((p: unknown) => ({ id: serviceIdOf(String(p)), path: String(p) })),
        },
      ];
    }
    if (m.member === 'TechnologyAdded') {
      const path = String(m.body[0]);
      return [{ kind: 'technology-added', path, type: technologyTypeOf(path), properties: technologyProperties(m.body[1]) }];
    }
    if (m.member === 'TechnologyRemoved') {
      const path = String(m.body[0]);
      return [{ kind: 'technology-removed', path, type: technologyTypeOf(path) }];
    }
    return [];
  }

  close(): void {
    this.connection.close();
  }
}

export class ServiceHandle {
  readonly id: string;

  constructor(
    private readonly client: ConnmanClient,
    readonly path: string,
  ) {
    this.id = serviceIdOf(path);
  }

  async getProperties(): Promise<ServiceProperties> {
    const [d] = await this.client.call(this.path, SERVICE_IFACE, 'GetProperties');
    return serviceProperties(d);
  }

  /** Returns when the daemon has accepted (ConnMan: when the service is connected). */
  async connect(timeoutMs = CONNECT_TIMEOUT_MS): Promise<void> {
    await this.client.call(this.path, SERVICE_IFACE, 'Connect', '', [], timeoutMs);
  }

  async disconnect(): Promise<void> {
    await this.client.call(this.path, SERVICE_IFACE, 'Disconnect');
  }

  async remove(): Promise<void> {
    await this.client.call(this.path, SERVICE_IFACE, 'Remove');
  }

  async setProperty<K extends keyof ServiceSettings>(name: K, value: ServiceSettings[K]): Promise<void> {
    await this.setRawProperty(name, serviceSettingVariant(name, value));
  }

  /** Any property with a variant built by the caller (for what ServiceSettings does not cover). */
  async setRawProperty(name: string, value: DbusVariant): Promise<void> {
    await this.client.call(this.path, SERVICE_IFACE, 'SetProperty', 'sv', [name, value]);
  }

  setAutoConnect(on: boolean): Promise<void> {
    return this.setProperty('AutoConnect', on);
  }

  setIPv4(config: IPv4ConfigInput): Promise<void> {
    return this.setProperty('IPv4.Configuration', config);
  }

  setIPv6(config: IPv6ConfigInput): Promise<void> {
    return this.setProperty('IPv6.Configuration', config);
  }

  setNameservers(servers: readonly string[]): Promise<void> {
    return this.setProperty('Nameservers.Configuration', [...servers]);
  }

  setTimeservers(servers: readonly string[]): Promise<void> {
    return this.setProperty('Timeservers.Configuration', [...servers]);
  }

  setDomains(domains: readonly string[]): Promise<void> {
    return this.setProperty('Domains.Configuration', [...domains]);
  }

  /** Only Error can be cleared (ConnMan). */
  async clearProperty(name: 'Error' | (string & {}) = 'Error'): Promise<void> {
    await this.client.call(this.path, SERVICE_IFACE, 'ClearProperty', 's', [name]);
  }

  async moveBefore(other: string | ServiceHandle): Promise<void> {
    await this.client.call(this.path, SERVICE_IFACE, 'MoveBefore', 'o', [typeof other === 'string' ? servicePath(other) : other.path]);
  }

  async moveAfter(other: string | ServiceHandle): Promise<void> {
    await this.client.call(this.path, SERVICE_IFACE, 'MoveAfter', 'o', [typeof other === 'string' ? servicePath(other) : other.path]);
  }

  /**
   * Waits until the service's State is one of `states` (checked right away too); resolves to
   * that state, rejects with DaemonUnavailableError('timeout') after `timeoutMs`.
   */
  async waitForState(states: readonly ServiceState[], timeoutMs = 10_000): Promise<ServiceState> {
    let resolveState: ((s: ServiceState) => void) | undefined;
    const reached = new Promise<ServiceState>((r) => {
      resolveState = r;
    });
    const sub = await this.client.subscribe((ev) => {
      if (ev.kind === 'property-changed' && ev.object === 'service' && ev.path === this.path && ev.name === 'State' && isServiceState(ev.value) && states.includes(ev.value)) resolveState?.(ev.value);
    });
    let timer: NodeJS.Timeout | undefined;
    try {
      const now = (await this.getProperties()).State;
      if (states.includes(now)) return now;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new DaemonUnavailableError('timeout', this.client.busAddress, `${this.id} did not reach ${states.join('/')} within ${timeoutMs} ms`)), timeoutMs);
      });
      return await Promise.race([reached, timeout]);
    } finally {
      clearTimeout(timer);
      await sub.close();
    }
  }
}

export class TechnologyHandle {
  readonly type: string;

  constructor(
    private readonly client: ConnmanClient,
    readonly path: string,
  ) {
    this.type = technologyTypeOf(path);
  }

  async getProperties(): Promise<TechnologyProperties> {
    const [d] = await this.client.call(this.path, TECHNOLOGY_IFACE, 'GetProperties');
    return technologyProperties(d);
  }

  async setProperty<K extends keyof TechnologySettings>(name: K, value: TechnologySettings[K]): Promise<void> {
    const v = typeof value === 'boolean' ? variant.b(value) : typeof value === 'number' ? variant.i(value) : variant.s(value);
    await this.client.call(this.path, TECHNOLOGY_IFACE, 'SetProperty', 'sv', [name, v]);
  }

  setPowered(on: boolean): Promise<void> {
    return this.setProperty('Powered', on);
  }

  async scan(): Promise<void> {
    await this.client.call(this.path, TECHNOLOGY_IFACE, 'Scan', '', [], CONNECT_TIMEOUT_MS);
  }
}
