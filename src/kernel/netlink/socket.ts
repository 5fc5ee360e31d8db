// A raw netlink socket through koffi (libc FFI, no native build, no install script).
//
// Why this shape: Node cannot watch an arbitrary fd, and libuv will not adopt a netlink
// socket. All reading happens on the main thread with non-blocking recv(2), which keeps
// errno (ENOBUFS!) readable and parsing single-threaded. Waiting comes in two forms:
//  - `watch`: SIGIO-driven readiness (../sys/fd-watch.ts), for event sockets.
//  - `waitReadable`: poll(2) on libuv's thread pool, for the rare request that is not
//    answered inside send(2). An eventfd wakes it on close.
// Requests need no waiting at all: rtnetlink handles a request inside send(2), so its ack
// (or the first part of a dump) is already queued when send returns.
import { errno as lastErrno, libc as c, MSG_DONTWAIT, SO_RCVBUFFORCE, SO_SNDBUFFORCE, SOCK_CLOEXEC, SOCK_RAW, SOL_SOCKET, u32 } from '../sys/libc.ts';
import { watchFd } from '../sys/fd-watch.ts';
import { inNetns } from '../sys/netns.ts';
import { AF_NETLINK, NETLINK_ADD_MEMBERSHIP, NETLINK_ROUTE, SOL_NETLINK } from './constants.ts';
import { EAGAIN, EINTR, NetlinkError } from './errors.ts';


const EFD_CLOEXEC = 0o2000000;
const EFD_NONBLOCK = 0o4000;
const POLLIN = 0x1;

export interface NetlinkSocketOptions {
  protocol?: number;
  /** multicast groups to join (RTNLGRP_* numbers) */
  groups?: readonly number[];
  netns?: string;
  /** receive buffer; SO_RCVBUFFORCE (root) so event bursts fit */
  rcvbuf?: number;
  /** extra SOL_NETLINK boolean options to turn on (NETLINK_CAP_ACK, …) */
  flags?: readonly number[];
}

export type RecvResult = { kind: 'data'; length: number } | { kind: 'empty' } | { kind: 'error'; errno: number };

export class NetlinkSocket {
  readonly fd: number;
  readonly portId: number;
  private readonly wakeFd: number;
  private readonly pollFds = Buffer.alloc(16);
  private closed = false;
  private waiting = false;
  private unwatch: (() => void) | undefined;

  private constructor(fd: number, portId: number, wakeFd: number) {
    this.fd = fd;
    this.portId = portId;
    this.wakeFd = wakeFd;
    this.pollFds.writeInt32LE(fd, 0);
    this.pollFds.writeInt16LE(POLLIN, 4);
    this.pollFds.writeInt32LE(wakeFd, 8);
    this.pollFds.writeInt16LE(POLLIN, 12);
  }

  static open(opts: NetlinkSocketOptions = {}): NetlinkSocket {
    const fd = inNetns(opts.netns, () => c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, opts.protocol ?? NETLINK_ROUTE) as number);
    if (fd < 0) throw new NetlinkError(lastErrno(), 'socket(AF_NETLINK)');
    try {
      const sa = Buffer.alloc(12);
      sa.writeUInt16LE(AF_NETLINK, 0);
      if (c.bind(fd, sa, 12) !== 0) throw new NetlinkError(lastErrno(), 'bind(netlink)');
      const len = [12];
      if (c.getsockname(fd, sa, len) !== 0) throw new NetlinkError(lastErrno(), 'getsockname(netlink)');
      const rcvbuf = opts.rcvbuf ?? 4 << 20;
      // FORCE variants ignore rmem_max (we run as root); fall back silently otherwise.
      c.setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, u32(rcvbuf), 4);
      c.setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, u32(1 << 20), 4);
      for (const f of opts.flags ?? []) c.setsockopt(fd, SOL_NETLINK, f, u32(1), 4);
      for (const g of opts.groups ?? []) {
        if (c.setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, u32(g), 4) !== 0) {
          throw new NetlinkError(lastErrno(), `join netlink group ${g}`);
        }
      }
      const wake = c.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) as number;
      if (wake < 0) throw new NetlinkError(lastErrno(), 'eventfd');
      return new NetlinkSocket(fd, sa.readUInt32LE(4), wake);
    } catch (e) {
      c.close(fd);
      throw e;
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Sends one datagram (which may hold several netlink messages). */
  send(buf: Buffer): void {
    if (this.closed) throw new Error('netlink socket is closed');
    for (;;) {
      const n = c.send(this.fd, buf, buf.length, 0) as number;
      if (n >= 0) return;
      const errno = lastErrno();
      if (errno !== EINTR) throw new NetlinkError(errno, 'send(netlink)');
    }
  }

  /** One non-blocking recv into `buf`. */
  recv(buf: Buffer): RecvResult {
    if (this.closed) return { kind: 'empty' };
    for (;;) {
      const n = c.recv(this.fd, buf, buf.length, MSG_DONTWAIT) as number;
      if (n >= 0) return { kind: 'data', length: n };
      const errno = lastErrno();
      if (errno === EINTR) continue;
      if (errno === EAGAIN) return { kind: 'empty' };
      return { kind: 'error', errno };
    }
  }

  /**
   * Waits (on the thread pool) until the socket is readable or closed, then calls
   * `ready`. One wait at a time.
   */
  waitReadable(ready: () => void): void {
    if (this.closed || this.waiting) return;
    this.waiting = true;
    const pfds = this.pollFds;
    pfds.writeInt16LE(0, 6);
    pfds.writeInt16LE(0, 14);
    c.poll.async(pfds, 2, -1, () => {
      this.waiting = false;
      if (this.closed) {
        this.release();
        return;
      }
      ready();
    });
  }

  /**
   * Calls `readable` (on the main thread) whenever data or an error may be queued. The
   * callback must read until recv() reports empty, or call again soon: signals coalesce.
   */
  watch(readable: () => void): void {
    if (this.closed) return;
    this.unwatch = watchFd(this.fd, readable);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unwatch?.();
    if (this.waiting) {
      // wake the poll; the fds are closed in its callback, never under its feet
      c.write(this.wakeFd, Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]), 8);
    } else {
      this.release();
    }
  }

  private release(): void {
    c.close(this.fd);
    c.close(this.wakeFd);
  }
}
