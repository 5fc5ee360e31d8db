// A black-box ConnMan API client for benchmarks: one dbus-next connection that subscribes
// (AddMatch) to every net.connman.Service signal and to Manager.ServicesChanged, and
// timestamps each message with performance.now() the moment dbus-next hands it over. It
// keeps the last known State of every service and a log of State events, so a benchmark
// can take t0 itself and look up the first event after it.
//
// A State can reach a client two ways: Service.PropertyChanged('State'), or the property
// dict of a service that ServicesChanged (re)announces. ConnMan uses the second one when a
// service object is created anew (an ethernet service is removed on carrier loss and
// re-created on carrier, already `ready` when it is first announced): both are recorded,
// with the signal they came by.
import dbus, { Message, type MessageBus, Variant } from 'dbus-next';

export type StateVia = 'PropertyChanged' | 'ServicesChanged' | 'removed';

export interface StateEvent {
  /** performance.now() when the message arrived */
  t: number;
  path: string;
  /** 'removed' when ServicesChanged listed the service as removed */
  state: string;
  via: StateVia;
}

const SIGNAL = dbus.MessageType.SIGNAL as number;
const MATCHES = [
  "type='signal',interface='net.connman.Service'",
  "type='signal',interface='net.connman.Manager',member='ServicesChanged'",
];

function variantValue(v: unknown): unknown {
  return v instanceof Variant ? v.value : v;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** State and Ethernet.Interface out of a service property dict, as far as they are there. */
function readProps(dict: unknown): { state?: string; ifname?: string } {
  if (!isRecord(dict)) return {};
  const out: { state?: string; ifname?: string } = {};
  const state = variantValue(dict.State);
  if (typeof state === 'string') out.state = state;
  const eth = variantValue(dict.Ethernet);
  if (isRecord(eth)) {
    const ifname = variantValue(eth.Interface);
    if (typeof ifname === 'string' && ifname !== '') out.ifname = ifname;
  }
  return out;
}

interface Waiter {
  check: () => boolean;
  resolve: () => void;
}

export class ServiceWatch {
  /** every State event, in arrival order */
  readonly events: StateEvent[] = [];
  private readonly states = new Map<string, string>();
  private readonly pathByIf = new Map<string, string>();
  private waiters: Waiter[] = [];

  private constructor(private readonly bus: MessageBus) {
    bus.on('message', (msg: Message) => {
      // first thing: the timestamp is the figure the benchmark reports
      const t = performance.now();
      if (msg.type !== SIGNAL) return;
      this.onSignal(t, msg);
      this.wake();
    });
  }

  /** Connects, subscribes, and reads the current services (GetServices). */
  static async open(busAddress: string): Promise<ServiceWatch> {
    const bus = dbus.sessionBus({ busAddress });
    const w = new ServiceWatch(bus);
    for (const rule of MATCHES) {
      await bus.call(
        new Message({
          destination: 'org.freedesktop.DBus',
          path: '/org/freedesktop/DBus',
          interface: 'org.freedesktop.DBus',
          member: 'AddMatch',
          signature: 's',
          body: [rule],
        }),
      );
    }
    await w.refresh();
    return w;
  }

  close(): void {
    this.bus.disconnect();
  }

  /** Manager.GetServices: the daemon's current list (states not logged as events). */
  async refresh(): Promise<void> {
    const reply = await this.bus.call(
      new Message({ destination: 'net.connman', path: '/', interface: 'net.connman.Manager', member: 'GetServices' }),
    );
    const list: unknown = reply?.body[0];
    if (!Array.isArray(list)) throw new Error('GetServices: unexpected reply');
    for (const entry of list) {
      if (!Array.isArray(entry) || typeof entry[0] !== 'string') continue;
      const p = readProps(entry[1]);
      if (p.ifname !== undefined) this.pathByIf.set(p.ifname, entry[0]);
      if (p.state !== undefined) this.states.set(entry[0], p.state);
    }
  }

  private onSignal(t: number, msg: Message): void {
    const body: unknown[] = msg.body;
    if (msg.interface === 'net.connman.Service' && msg.member === 'PropertyChanged' && msg.path !== undefined) {
      const value = variantValue(body[1]);
      if (body[0] === 'State' && typeof value === 'string') this.record(t, msg.path, value, 'PropertyChanged');
    } else if (msg.interface === 'net.connman.Manager' && msg.member === 'ServicesChanged') {
      const changed = Array.isArray(body[0]) ? body[0] : [];
      const removed = Array.isArray(body[1]) ? body[1] : [];
      for (const path of removed) if (typeof path === 'string') this.record(t, path, 'removed', 'removed');
      for (const entry of changed) {
        if (!Array.isArray(entry) || typeof entry[0] !== 'string') continue;
        const p = readProps(entry[1]);
        if (p.ifname !== undefined) this.pathByIf.set(p.ifname, entry[0]);
        // an order change carries an empty dict; only a real (re)announcement tells a state
        if (p.state !== undefined && p.state !== this.states.get(entry[0])) {
          this.record(t, entry[0], p.state, 'ServicesChanged');
        }
      }
    }
  }

  private record(t: number, path: string, state: string, via: StateVia): void {
    this.states.set(path, state);
    this.events.push({ t, path, state, via });
  }

  private wake(): void {
    if (this.waiters.length === 0) return;
    const still: Waiter[] = [];
    for (const w of this.waiters) {
      if (w.check()) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
  }

  /** The service path of an interface, as the daemon announced it. */
  pathOf(ifname: string): string | undefined {
    return this.pathByIf.get(ifname);
  }

  /** Last known state of a service ('removed' after ServicesChanged removed it; undefined: never seen). */
  stateOf(path: string): string | undefined {
    return this.states.get(path);
  }

  stateOfIf(ifname: string): string | undefined {
    const p = this.pathByIf.get(ifname);
    return p === undefined ? undefined : this.states.get(p);
  }

  /** Resolves once check() holds (checked now and after every signal); rejects after timeoutMs. */
  until(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const waiter: Waiter = {
        check,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      this.waiters.push(waiter);
    });
  }

  /** First event at index ≥ from on path that matches. */
  find(from: number, path: string, match: (e: StateEvent) => boolean): StateEvent | undefined {
    for (let i = from; i < this.events.length; i++) {
      const e = this.events[i] as StateEvent;
      if (e.path === path && match(e)) return e;
    }
    return undefined;
  }

  /** Waits for such an event (index ≥ from); undefined after timeoutMs. */
  async next(from: number, path: string, match: (e: StateEvent) => boolean, timeoutMs: number): Promise<StateEvent | undefined> {
    try {
      await this.until(`${path}: event`, () => this.find(from, path, match) !== undefined, timeoutMs);
    } catch {
      return undefined;
    }
    return this.find(from, path, match);
  }

  /** Resolves when no State event arrived for quietMs (at most maxMs in all). */
  async quiet(quietMs: number, maxMs: number): Promise<void> {
    const end = performance.now() + maxMs;
    for (;;) {
      const n = this.events.length;
      await new Promise((r) => setTimeout(r, quietMs));
      if (this.events.length === n || performance.now() > end) return;
    }
  }
}
