// The observed-state mirror: an ObservedState kept current from rtnetlink events, with a
// coldplug gate (`ready` resolves after the first full dump) and resync by dumping
// again whenever events may have been lost (ENOBUFS) or the kernel changed things
// without telling (IPv4 routes flushed with a device or an address).
import { forEachMessage } from './netlink/codec.ts';
import {
  AF_INET,
  AF_INET6,
  RTNLGRP_IPV4_IFADDR,
  RTNLGRP_IPV4_ROUTE,
  RTNLGRP_IPV4_RULE,
  RTNLGRP_IPV6_IFADDR,
  RTNLGRP_IPV6_ROUTE,
  RTNLGRP_IPV6_RULE,
  RTNLGRP_LINK,
} from './netlink/constants.ts';
import { ENOBUFS, errnoName } from './netlink/errors.ts';
import { NetlinkSocket } from './netlink/socket.ts';
import { type DumpedObjects, ObservedState } from './observed-state.ts';
import { Rtnetlink } from './rtnetlink/client.ts';
import { ALL_CLASSES, type ObjectClass, type RtEvent, classOf, parseEvent } from './rtnetlink/events.ts';

export interface KernelMirrorOptions {
  netns?: string;
  /** request socket to share (the reconciler's); one is opened otherwise */
  rtnl?: Rtnetlink;
  /** monitor socket receive buffer (bytes) */
  rcvbuf?: number;
  /** delay before re-dumping IPv4 routes after a silent flush; coalesces storms */
  flushResyncDelayMs?: number;
  /** called on any internal failure that was handled (for logs) */
  onWarning?: (msg: string) => void;
}

export interface MirrorStats {
  events: number;
  overflows: number;
  resyncs: number;
  /** changes found by a resync that no event had told (lost to ENOBUFS, or silent flushes): told afterwards */
  missed: number;
}

type Listener = (ev: RtEvent) => void;

const MAX_DATAGRAMS_PER_TURN = 256;
/** after an overflow, at most this many queued datagrams are dropped at once */
const MAX_DISCARD = 1 << 20;

export class KernelMirror {
  readonly state = new ObservedState();
  readonly stats: MirrorStats = { events: 0, overflows: 0, resyncs: 0, missed: 0 };
  /** Resolves once the initial dump is complete; until then the mirror is not authoritative. */
  readonly ready: Promise<void>;
  readonly rtnl: Rtnetlink;

  private readonly mon: NetlinkSocket;
  private readonly ownsRtnl: boolean;
  private readonly rbuf = Buffer.allocUnsafe(1 << 18);
  private readonly listeners = new Set<Listener>();
  private readonly opts: KernelMirrorOptions;
  private complete = false;
  private closed = false;
  /** classes being re-dumped, with the events seen since their dump began */
  private readonly buffering = new Map<ObjectClass, RtEvent[]>();
  private readonly wanted = new Set<ObjectClass>();
  private running: Promise<void> | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  /** settle() already dumped for the pending flush timer (which dumps once more when it fires) */
  private flushDumpedEarly = false;
  /** when the pending flush timer was first armed */
  private flushFirstAt = 0;
  private pumping = false;

  private constructor(opts: KernelMirrorOptions) {
    this.opts = opts;
    this.mon = NetlinkSocket.open({
      netns: opts.netns,
      rcvbuf: opts.rcvbuf ?? 8 << 20,
      groups: [
        RTNLGRP_LINK,
        RTNLGRP_IPV4_IFADDR,
        RTNLGRP_IPV6_IFADDR,
        RTNLGRP_IPV4_ROUTE,
        RTNLGRP_IPV6_ROUTE,
        RTNLGRP_IPV4_RULE,
        RTNLGRP_IPV6_RULE,
      ],
    });
    this.ownsRtnl = opts.rtnl === undefined;
    this.rtnl = opts.rtnl ?? Rtnetlink.open({ netns: opts.netns });
    // Subscribe before dumping: events of changes made during the dump are kept and replayed.
    this.read();
    this.ready = this.resync(ALL_CLASSES).then(() => {
      this.complete = true;
    });
  }

  static open(opts: KernelMirrorOptions = {}): KernelMirror {
    return new KernelMirror(opts);
  }

  get isComplete(): boolean {
    return this.complete;
  }

  /** Listens to every event after it has been applied to `state`. Returns an unsubscribe function. */
  onEvent(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  private warn(msg: string): void {
    this.opts.onWarning?.(msg);
  }

  private read(): void {
    this.mon.watch(() => this.pump());
  }

  /** Reads what is queued; a long backlog is read in turns so other work gets the loop in between. */
  private pump(): void {
    if (this.pumping || this.closed) return;
    if (this.drain(MAX_DATAGRAMS_PER_TURN)) {
      this.pumping = true;
      setImmediate(() => {
        this.pumping = false;
        this.pump();
      });
    }
  }

  /**
   * Reads up to `max` queued datagrams now. Returns true if more may be waiting.
   * On ENOBUFS (events were lost) everything is dumped again.
   */
  private drain(max: number): boolean {
    for (let i = 0; i < max; i++) {
      const r = this.mon.recv(this.rbuf);
      if (r.kind === 'empty') return false;
      if (r.kind === 'error') {
        if (r.errno === ENOBUFS) {
          this.stats.overflows++;
          // what is still queued is older than the dump about to start: replayed over it, a
          // lost part of a sequence (an object added, then deleted) would leave a ghost
          const dropped = this.discardQueued();
          this.warn(`rtnetlink event queue overflowed (ENOBUFS): dumping again${dropped > 0 ? ` (${dropped} queued messages older than the dump dropped)` : ''}`);
          void this.resync(ALL_CLASSES);
        } else {
          this.warn(`rtnetlink monitor: ${errnoName(r.errno)}`);
        }
        continue;
      }
      forEachMessage(this.rbuf, r.length, (h, off) => {
        const ev = parseEvent(h, this.rbuf, off);
        if (ev) this.dispatch(ev);
      });
    }
    return true;
  }

  /** Reads and drops every queued datagram (bounded: a kernel that never stops talking cannot hold us here). */
  private discardQueued(): number {
    let n = 0;
    for (; n < MAX_DISCARD; n++) {
      const r = this.mon.recv(this.rbuf);
      if (r.kind === 'empty' || (r.kind === 'error' && r.errno !== ENOBUFS)) break;
    }
    return n;
  }

  private dispatch(ev: RtEvent): void {
    this.stats.events++;
    const before = ev.kind === 'link' ? this.state.links.get(ev.link.index) : undefined;
    this.state.apply(ev);
    this.buffering.get(classOf(ev))?.push(ev);
    if (this.flushesIpv4Routes(ev, before?.up)) this.scheduleFlushResync();
    this.notify(ev);
  }

  private notify(ev: RtEvent): void {
    for (const l of this.listeners) {
      try {
        l(ev);
      } catch (e) {
        this.warn(`event listener failed: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }

  /** Events after which the kernel may have deleted IPv4 routes without a notification. */
  private flushesIpv4Routes(ev: RtEvent, wasUp: boolean | undefined): boolean {
    if (ev.kind === 'link') return ev.op === 'del' || (!ev.link.up && wasUp === true);
    return ev.kind === 'address' && ev.op === 'del' && ev.address.family === AF_INET;
  }

  private scheduleFlushResync(): void {
    // a flush seen while route4 is being dumped may postdate the dump: dump once more
    if (this.buffering.has('route4')) this.wanted.add('route4');
    if (this.closed) return;
    // this flush is new to whoever settles next
    this.flushDumpedEarly = false;
    const delay = this.opts.flushResyncDelayMs ?? 20;
    const now = performance.now();
    if (this.flushTimer) {
      // the last dump must come after the last flush; a storm of them defers it only so long
      if (now - this.flushFirstAt > 5 * delay) return;
      clearTimeout(this.flushTimer);
    } else this.flushFirstAt = now;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      this.flushDumpedEarly = false;
      void this.resync(['route4']);
    }, delay);
  }

  /** Dumps `classes` again and merges them with the events seen meanwhile. Coalesces overlapping calls. */
  resync(classes: readonly ObjectClass[]): Promise<void> {
    for (const c of classes) this.wanted.add(c);
    if (!this.running) {
      this.running = this.runResyncs().finally(() => {
        this.running = undefined;
      });
    }
    return this.running;
  }

  private async runResyncs(): Promise<void> {
    while (this.wanted.size > 0 && !this.closed) {
      const classes = [...this.wanted];
      this.wanted.clear();
      this.stats.resyncs++;
      for (const c of classes) this.buffering.set(c, []);
      try {
        const dumps: DumpedObjects[] = [];
        for (const c of classes) dumps.push(await this.dumpClass(c));
        // what the listeners were not told (events lost to ENOBUFS, silent flushes) is told
        // now, as events, once every class is up to date: a listener that keeps its own view
        // (the daemon's idea of an uplink's carrier) must not stay behind the mirror
        const missed: RtEvent[] = [];
        for (const d of dumps) {
          const seen = this.buffering.get(d.cls) ?? [];
          const before = this.complete ? this.state.classObjects(d.cls) : undefined;
          this.state.replace(d);
          // events since the dump began are newer than or equal to what it saw: replay in order
          for (const ev of seen) this.state.apply(ev);
          if (before) missed.push(...this.state.changesSince(d.cls, before));
        }
        if (missed.length > 0 && this.complete) {
          this.stats.missed += missed.length;
          for (const ev of missed) this.notify(ev);
        }
      } catch (e) {
        if (this.closed) return;
        this.warn(`resync failed (${e instanceof Error ? e.message : String(e)}): retrying`);
        for (const c of classes) this.wanted.add(c);
        await new Promise((r) => setTimeout(r, 50));
      } finally {
        for (const c of classes) this.buffering.delete(c);
      }
    }
  }

  private async dumpClass(c: ObjectClass): Promise<DumpedObjects> {
    switch (c) {
      case 'link':
        return { cls: c, objects: await this.rtnl.dumpLinks() };
      case 'address4':
      case 'address6':
        return { cls: c, objects: await this.rtnl.dumpAddresses(c === 'address4' ? AF_INET : AF_INET6) };
      case 'route4':
      case 'route6':
        return { cls: c, objects: await this.rtnl.dumpRoutes(c === 'route4' ? AF_INET : AF_INET6) };
      case 'rule4':
      case 'rule6':
        return { cls: c, objects: await this.rtnl.dumpRules(c === 'rule4' ? AF_INET : AF_INET6) };
    }
  }

  /**
   * Brings the mirror up to date with everything the kernel has announced so far:
   * reads all queued events now and waits for any resync in progress or scheduled.
   * Changes whose acknowledgement has been received are visible afterwards, because
   * the kernel queues the notification before the ack.
   */
  async settle(): Promise<void> {
    await this.ready;
    for (;;) {
      while (this.drain(MAX_DATAGRAMS_PER_TURN)) {
        /* read everything queued */
      }
      // whoever waits gets a dump now; the timer still dumps again: the kernel sends the
      // event (an address deleted) before it flushes the routes, and route dumps do not wait
      // for the flush (they run under RCU), so this dump may hold routes about to go
      if (this.flushTimer && !this.flushDumpedEarly) {
        this.flushDumpedEarly = true;
        void this.resync(['route4']);
      }
      if (!this.running) return;
      await this.running;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.mon.close();
    if (this.ownsRtnl) this.rtnl.close();
  }
}

/** Opens a mirror and waits for its coldplug dump. */
export async function openKernelMirror(opts: KernelMirrorOptions = {}): Promise<KernelMirror> {
  const m = KernelMirror.open(opts);
  await m.ready;
  return m;
}
