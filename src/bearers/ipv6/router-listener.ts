// Learns IPv6 routers from their Router Advertisements, for the whole network namespace.
//
// Why: the daemon turns the kernel's RA default routes off (accept_ra_defrtr=0, because
// mainline kernels can only put them into `main`) and programs `default via <router> dev
// ethX` into each service's own table instead. For that it must see the RAs itself.
//
// One raw ICMPv6 socket serves every interface: the kernel filters it down to RAs
// (ICMP6_FILTER), tells us the arrival interface and the hop limit through ancillary data
// (recvmsg + IPV6_RECVPKTINFO/IPV6_RECVHOPLIMIT), and signals readability through SIGIO
// (watchFd). Raw sockets get a copy of every RA before and independent of the kernel's own
// handling, so accept_ra settings do not hide anything from us.
import koffi from 'koffi';
import { EAGAIN, EINTR, errnoName } from '../../kernel/netlink/errors.ts';
import { addressString } from '../../kernel/netlink/codec.ts';
import { watchFd } from '../../kernel/sys/fd-watch.ts';
import { errno as lastErrno, libc, MSG_DONTWAIT, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_RAW, u32 } from '../../kernel/sys/libc.ts';
import { inNetns } from '../../kernel/sys/netns.ts';
import { buildRouterSolicitation, parseRouterAdvertisement, type RouterAdvertisement, ICMP6_ROUTER_ADVERTISEMENT } from './ra.ts';

const AF_INET6 = 10;
const IPPROTO_IPV6 = 41;
const IPPROTO_ICMPV6 = 58;
const ICMP6_FILTER = 1;
const IPV6_UNICAST_HOPS = 16;
const IPV6_MULTICAST_HOPS = 18;
const IPV6_MULTICAST_LOOP = 19;
const IPV6_RECVPKTINFO = 49;
const IPV6_PKTINFO = 50;
const IPV6_RECVHOPLIMIT = 51;
const IPV6_HOPLIMIT = 52;
const MSG_TRUNC = 0x20;
const MSG_CTRUNC = 0x08;
/** Packets handled per readiness callback before yielding to the event loop (a flood must not starve it). */
const BATCH = 256;
const SOCKADDR_IN6_LEN = 28;
const ALL_ROUTERS = Buffer.from('ff020000000000000000000000000002', 'hex');

// recvmsg is the one call we need that src/kernel/sys/libc.ts does not bind; msghdr is built by
// hand below (pointers from koffi.address), so it is declared with a plain pointer.
const recvmsg = koffi.load('libc.so.6').func('intptr_t recvmsg(int, void *, int)');

/** What the daemon learns from one RA. Times in ms on the listener's clock, lifetimes in seconds. */
export interface RouterEvent extends Omit<RouterAdvertisement, 'routerLifetime'> {
  /** arrival interface in the listener's namespace */
  ifindex: number;
  /** the router's link-local source address, without scope */
  router: string;
  /** router lifetime in seconds (0: not a default router, or no longer) */
  lifetime: number;
  receivedAt: number;
  /** IP hop limit of the packet; always 255, others are dropped */
  hopLimit: number;
}

export type DropReason = 'truncated' | 'no-ancillary' | 'hop-limit' | 'not-link-local' | 'malformed';

export interface RouterListenerOptions {
  onRouter: (ev: RouterEvent) => void;
  /** socket errors and exceptions thrown by onRouter; nothing escapes the listener */
  onError?: (err: Error) => void;
  /** packets refused (RFC 4861 §6.1.2 validity checks), for diagnostics */
  onDrop?: (reason: DropReason, ifindex: number, source: string) => void;
  /** named namespace (/run/netns) to listen in; default: the one we run in */
  netns?: string;
  /** clock for receivedAt; default performance.now() (monotonic, unlike Date.now()) */
  now?: () => number;
}

export type SolicitResult = { ok: true } | { ok: false; errno: number; code: string };

export interface RouterListenerStats {
  received: number;
  accepted: number;
  dropped: number;
}

export class RouterListener {
  readonly stats: RouterListenerStats = { received: 0, accepted: 0, dropped: 0 };
  private closed = false;
  private unwatch: (() => void) | undefined;
  private drainQueued = false;
  // fixed buffers: koffi passes Buffers by address; their memory never moves
  private readonly data = Buffer.alloc(65536);
  private readonly name = Buffer.alloc(SOCKADDR_IN6_LEN);
  private readonly control = Buffer.alloc(256);
  private readonly iov = Buffer.alloc(16);
  private readonly msg = Buffer.alloc(56);
  private readonly now: () => number;

  private constructor(
    readonly fd: number,
    private readonly opts: RouterListenerOptions,
  ) {
    this.now = opts.now ?? (() => performance.now());
    this.iov.writeBigUInt64LE(koffi.address(this.data), 0);
    this.iov.writeBigUInt64LE(BigInt(this.data.length), 8);
  }

  /** Opens the socket and starts listening. Throws when the socket cannot be set up. */
  static open(opts: RouterListenerOptions): RouterListener {
    // msghdr below is laid out for LP64 little-endian Linux
    if (process.arch !== 'x64' && process.arch !== 'arm64') throw new Error(`RouterListener: unsupported architecture ${process.arch}`);
    const fd = inNetns(opts.netns, () => libc.socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMPV6) as number);
    if (fd < 0) throw new Error(`socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6): ${errnoName(lastErrno())}`);
    try {
      // Linux: a set bit blocks the type (ICMP6_FILTER_WILLBLOCK); block all but 134
      const filter = Buffer.alloc(32, 0xff);
      const word = ICMP6_ROUTER_ADVERTISEMENT >> 5;
      filter.writeUInt32LE(~(1 << (ICMP6_ROUTER_ADVERTISEMENT & 31)) >>> 0, word * 4);
      const set = (level: number, opt: number, value: Buffer, what: string): void => {
        if (libc.setsockopt(fd, level, opt, value, value.length) !== 0) throw new Error(`setsockopt(${what}): ${errnoName(lastErrno())}`);
      };
      set(IPPROTO_ICMPV6, ICMP6_FILTER, filter, 'ICMP6_FILTER');
      set(IPPROTO_IPV6, IPV6_RECVPKTINFO, u32(1), 'IPV6_RECVPKTINFO');
      set(IPPROTO_IPV6, IPV6_RECVHOPLIMIT, u32(1), 'IPV6_RECVHOPLIMIT');
      // RFC 4861 §4.1: an RS goes out with hop limit 255, or routers drop it
      set(IPPROTO_IPV6, IPV6_MULTICAST_HOPS, u32(255), 'IPV6_MULTICAST_HOPS');
      set(IPPROTO_IPV6, IPV6_UNICAST_HOPS, u32(255), 'IPV6_UNICAST_HOPS');
      set(IPPROTO_IPV6, IPV6_MULTICAST_LOOP, u32(0), 'IPV6_MULTICAST_LOOP');
      const l = new RouterListener(fd, opts);
      l.unwatch = watchFd(fd, () => l.drain());
      return l;
    } catch (e) {
      libc.close(fd);
      throw e;
    }
  }

  /**
   * Sends a Router Solicitation to ff02::2 out of `ifindex`, so the routers there answer
   * now instead of at their next periodic RA. Fails with EADDRNOTAVAIL while the
   * interface's link-local address is still tentative (DAD, ~1 s after link up): retry then.
   */
  solicit(ifindex: number, mac?: string): SolicitResult {
    if (this.closed) return { ok: false, errno: 9, code: 'EBADF' };
    const rs = buildRouterSolicitation(mac);
    // a scoped link-local multicast destination picks the outgoing interface per packet
    const sa = Buffer.alloc(SOCKADDR_IN6_LEN);
    sa.writeUInt16LE(AF_INET6, 0);
    ALL_ROUTERS.copy(sa, 8);
    sa.writeUInt32LE(ifindex >>> 0, 24);
    for (;;) {
      if ((libc.sendto(this.fd, rs, rs.length, 0, sa, SOCKADDR_IN6_LEN) as number) >= 0) return { ok: true };
      const e = lastErrno();
      if (e !== EINTR) return { ok: false, errno: e, code: errnoName(e) };
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unwatch?.();
    libc.close(this.fd);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private report(err: unknown): void {
    try {
      this.opts.onError?.(err instanceof Error ? err : new Error(String(err)));
    } catch {
      // an error handler that throws has nobody left to tell
    }
  }

  /** Reads until the socket is empty (SIGIO coalesces), at most BATCH packets per turn. */
  private drain(): void {
    this.drainQueued = false;
    for (let i = 0; i < BATCH; i++) {
      if (this.closed) return;
      const n = this.receive();
      if (n === 'empty') return;
      if (n === 'error') return;
    }
    if (!this.drainQueued) {
      this.drainQueued = true;
      setImmediate(() => this.drain());
    }
  }

  private receive(): 'packet' | 'empty' | 'error' {
    const m = this.msg;
    m.fill(0);
    m.writeBigUInt64LE(koffi.address(this.name), 0);
    m.writeUInt32LE(SOCKADDR_IN6_LEN, 8);
    m.writeBigUInt64LE(koffi.address(this.iov), 16);
    m.writeBigUInt64LE(1n, 24);
    m.writeBigUInt64LE(koffi.address(this.control), 32);
    m.writeBigUInt64LE(BigInt(this.control.length), 40);
    let n: number;
    for (;;) {
      n = recvmsg(this.fd, m, MSG_DONTWAIT) as number;
      if (n >= 0) break;
      const e = lastErrno();
      if (e === EINTR) continue;
      if (e === EAGAIN) return 'empty';
      this.report(new Error(`recvmsg(raw ICMPv6): ${errnoName(e)}`));
      return 'error';
    }
    const receivedAt = this.now();
    this.stats.received++;
    try {
      this.handle(n, Number(m.readBigUInt64LE(40)), m.readInt32LE(48), receivedAt);
    } catch (e) {
      this.report(e);
    }
    return 'packet';
  }

  private handle(n: number, controlLen: number, flags: number, receivedAt: number): void {
    const source = addressString(this.name, 8, 16);
    let ifindex = this.name.readUInt32LE(24);
    let hopLimit: number | undefined;
    // cmsghdr on LP64: size_t len, int level, int type, data aligned to 8
    const c = this.control;
    for (let off = 0; off + 16 <= controlLen; ) {
      const len = Number(c.readBigUInt64LE(off));
      if (len < 16 || off + len > controlLen) break;
      const level = c.readInt32LE(off + 8);
      const type = c.readInt32LE(off + 12);
      if (level === IPPROTO_IPV6 && type === IPV6_HOPLIMIT && len >= 20) hopLimit = c.readInt32LE(off + 16);
      // in6_pktinfo: the arrival interface, whatever the source address scope
      if (level === IPPROTO_IPV6 && type === IPV6_PKTINFO && len >= 36) ifindex = c.readUInt32LE(off + 32);
      off += (len + 7) & ~7;
    }
    let reason: DropReason | undefined;
    let ra: RouterAdvertisement | undefined;
    if ((flags & MSG_TRUNC) !== 0) reason = 'truncated';
    else if ((flags & MSG_CTRUNC) !== 0 || hopLimit === undefined) reason = 'no-ancillary';
    // RFC 4861 §6.1.2: only a neighbour can send with 255 left (an off-link forger cannot)
    else if (hopLimit !== 255) reason = 'hop-limit';
    else if (this.name.readUInt16BE(8) >> 6 !== 0xfe80 >> 6) reason = 'not-link-local';
    else {
      ra = parseRouterAdvertisement(this.data.subarray(0, n));
      if (!ra) reason = 'malformed';
    }
    if (reason !== undefined || ra === undefined || hopLimit === undefined) {
      this.stats.dropped++;
      this.opts.onDrop?.(reason ?? 'malformed', ifindex, source);
      return;
    }
    const { routerLifetime, ...rest } = ra;
    this.stats.accepted++;
    this.opts.onRouter({ ...rest, ifindex, router: source, lifetime: routerLifetime, receivedAt, hopLimit });
  }
}
