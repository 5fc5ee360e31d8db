// One DHCPv4 client for one interface: the state machine (machine.ts) driven by real time,
// real sockets (transport.ts) and one setTimeout. It reports leases and never touches
// addresses or routes: the daemon programs the kernel from the `lease` and `lost` events.
//
// Nothing thrown in here escapes into the event loop (that would end the daemon): socket
// errors are logged and the machine's retransmissions retry; a socket that cannot be opened
// (interface not there yet) is retried with backoff; a listener that throws is logged.
import { randomInt } from 'node:crypto';
import { EventEmitter } from 'node:events';
import {
  type Action,
  type Input,
  initialState,
  type Lease,
  type LeaseKind,
  type LogLevel,
  type LostReason,
  type MachineState,
  type Phase,
  step,
} from './machine.ts';
import { decode, encode } from './packet.ts';
import { DhcpTransport, type TransportMode } from './transport.ts';

export type { Lease, LeaseKind, LostReason, Phase } from './machine.ts';

export type DhcpLogLevel = LogLevel | 'error';

export interface DhcpClientOptions {
  ifname: string;
  ifindex: number;
  /** the interface's MAC (chaddr, and the default client identifier) */
  mac: string;
  /** network namespace to open the sockets in (tests, the lab) */
  netns?: string;
  /** option 12 */
  hostname?: string;
  /** option 61; default 0x01 + MAC */
  clientId?: Uint8Array;
  /** an address from an earlier run: start with INIT-REBOOT */
  requestedAddress?: string;
  /** a lease from an earlier run still in use: held while INIT-REBOOT confirms it (see machine.ts) */
  lease?: Lease;
  log?: (level: DhcpLogLevel, message: string) => void;
  /** default 'packet'; see transport.ts */
  transport?: TransportMode;
  /** PRNG seed (xids, jitter); default random */
  seed?: number;
}

export interface DhcpLeaseEvent extends Lease {
  kind: LeaseKind;
  ifname: string;
  /** set when kind is 'changed' and the address itself changed */
  previousAddress?: string;
}

export interface DhcpLostEvent {
  reason: LostReason;
  ifname: string;
  address: string;
}

interface Events {
  lease: [DhcpLeaseEvent];
  lost: [DhcpLostEvent];
}

/** setTimeout takes at most 2^31−1 ms; a later wake-up is re-armed when this one fires. */
const MAX_TIMER_MS = 0x7fffffff;
const REOPEN_FIRST_MS = 500;
const REOPEN_MAX_MS = 30_000;

export class DhcpClient extends EventEmitter<Events> {
  readonly ifname: string;
  private state: MachineState;
  private transport: DhcpTransport | undefined;
  private timer: NodeJS.Timeout | undefined;
  private reopenTimer: NodeJS.Timeout | undefined;
  private reopenDelay = REOPEN_FIRST_MS;
  private running = false;
  /** inputs that arrive while a step's actions are being carried out (a listener calling stop()) */
  private readonly queue: Input[] = [];
  private busy = false;
  private readonly log: (level: DhcpLogLevel, message: string) => void;

  constructor(private readonly o: DhcpClientOptions) {
    super();
    this.ifname = o.ifname;
    const log = o.log ?? (() => {});
    this.log = (level, message) => {
      try {
        log(level, `dhcp ${o.ifname}: ${message}`);
      } catch {
        // a logger that throws must not take the client down with it
      }
    };
    this.state = initialState({
      mac: o.mac,
      seed: o.seed ?? randomInt(0x100000000),
      ...(o.clientId === undefined ? {} : { clientId: o.clientId }),
      ...(o.hostname === undefined ? {} : { hostname: o.hostname }),
      ...(o.requestedAddress === undefined ? {} : { requestedAddress: o.requestedAddress }),
      ...(o.lease === undefined ? {} : { lease: copyLease(o.lease) }),
    });
  }

  get phase(): Phase {
    return this.state.phase;
  }

  /** The lease the daemon should be using, if any (a copy). */
  get lease(): Lease | undefined {
    const l = this.state.lease;
    return l && copyLease(l);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.openTransport();
    this.dispatch({ kind: 'start' });
  }

  /** Stops; with `release`, a bound client tells the server first (DHCPRELEASE). */
  stop(opts: { release?: boolean } = {}): void {
    if (!this.running) return;
    // not running from here on: no timer is armed again, no packet is taken in
    this.running = false;
    clearTimeout(this.reopenTimer);
    this.reopenTimer = undefined;
    this.dispatch({ kind: 'stop', release: opts.release ?? false });
  }

  /** Closes the sockets of a stopped client once no step is being carried out (the RELEASE must go out first). */
  private closeIfStopped(): void {
    if (this.running || this.busy) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.transport?.close();
    this.transport = undefined;
  }

  /** Renew now (BOUND → RENEWING), or retransmit at once in any other active phase. */
  renewNow(): void {
    if (this.running) this.dispatch({ kind: 'renew-now' });
  }

  /** Carrier lost: stop talking, keep the lease in memory (it still expires on time). */
  linkDown(): void {
    this.dispatch({ kind: 'link-down' });
  }

  /** Carrier back: INIT-REBOOT with the kept lease (or discover). */
  linkUp(): void {
    this.dispatch({ kind: 'link-up' });
  }

  private openTransport(): void {
    if (!this.running || this.transport) return;
    try {
      this.transport = DhcpTransport.open({
        ifname: this.o.ifname,
        ifindex: this.o.ifindex,
        ...(this.o.netns === undefined ? {} : { netns: this.o.netns }),
        mode: this.o.transport ?? 'packet',
        onMessage: (payload) => this.receive(payload),
        onProblem: (what) => this.log('debug', what),
      });
      this.reopenDelay = REOPEN_FIRST_MS;
    } catch (e) {
      this.log('warn', `cannot open sockets (retry in ${this.reopenDelay} ms): ${errText(e)}`);
      clearTimeout(this.reopenTimer);
      this.reopenTimer = setTimeout(() => {
        this.reopenTimer = undefined;
        this.openTransport();
      }, this.reopenDelay);
      this.reopenDelay = Math.min(this.reopenDelay * 2, REOPEN_MAX_MS);
    }
  }

  private receive(payload: Uint8Array): void {
    if (!this.running) return;
    const r = decode(payload);
    if (!r.ok) {
      this.log('debug', `undecodable packet ignored: ${r.error}`);
      return;
    }
    for (const w of r.warnings) this.log('debug', w);
    this.dispatch({ kind: 'packet', message: r.message });
  }

  private dispatch(input: Input): void {
    this.queue.push(input);
    if (this.busy) return;
    this.busy = true;
    try {
      for (let i = this.queue.shift(); i !== undefined; i = this.queue.shift()) {
        try {
          const r = step(this.state, i, Date.now());
          this.state = r.state;
          for (const a of r.actions) this.perform(a);
        } catch (e) {
          // step is pure and should not throw; if it ever does, drop that input and live on
          this.log('error', `internal error on ${i.kind}: ${errText(e)}`);
        }
      }
    } finally {
      this.busy = false;
    }
    this.closeIfStopped();
  }

  private perform(a: Action): void {
    switch (a.kind) {
      case 'log':
        this.log(a.level, a.message);
        return;
      case 'timer':
        clearTimeout(this.timer);
        this.timer = undefined;
        if (a.at !== undefined && this.running) {
          const delay = Math.min(Math.max(0, a.at - Date.now()), MAX_TIMER_MS);
          this.timer = setTimeout(() => {
            this.timer = undefined;
            this.dispatch({ kind: 'timer' });
          }, delay);
        }
        return;
      case 'send': {
        const t = this.transport;
        if (!t) {
          this.log('debug', `no socket yet: ${a.message.options.messageType} not sent`);
          return;
        }
        try {
          const bytes = encode(a.message);
          if (a.to.kind === 'broadcast') t.sendBroadcast(bytes, a.to.source);
          else t.sendUnicast(bytes, a.to.address);
        } catch (e) {
          // the machine retransmits on its own schedule; nothing else to do
          this.log('warn', `send ${a.message.options.messageType} failed: ${errText(e)}`);
        }
        return;
      }
      case 'lease': {
        const ev: DhcpLeaseEvent = {
          // a copy: a listener that edits the arrays must not edit the machine's lease
          ...copyLease(a.lease),
          kind: a.event,
          ifname: this.ifname,
          ...(a.previous && a.previous.address !== a.lease.address ? { previousAddress: a.previous.address } : {}),
        };
        this.safeEmit('lease', ev);
        return;
      }
      case 'lost':
        this.safeEmit('lost', { reason: a.reason, ifname: this.ifname, address: a.lease.address });
        return;
    }
  }

  private safeEmit<K extends keyof Events>(event: K, ...args: Events[K]): void {
    try {
      // the generic emit() cannot relate K to its argument tuple; the cast is exact
      (this.emit as (e: K, ...a: Events[K]) => boolean)(event, ...args);
    } catch (e) {
      this.log('error', `${event} listener threw: ${errText(e)}`);
    }
  }
}

function copyLease(l: Lease): Lease {
  return { ...l, dns: [...l.dns], searchDomains: [...l.searchDomains], ntp: [...l.ntp] };
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
