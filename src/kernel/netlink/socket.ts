// A raw netlink socket through koffi (libc FFI, no native build, no install script).
//
// Why this shape: Node cannot poll an arbitrary fd, so waiting happens in poll(2) run on
// libuv's thread pool (`poll.async`), and all reading happens on the main thread with
// non-blocking recv(2) — that keeps errno (ENOBUFS!) readable and parsing single-threaded.
// An eventfd wakes the waiting poll on close, so a closed socket never holds the process.
// Requests need no waiting at all: rtnetlink handles a request inside send(2), so its ack
// (or the first part of a dump) is already queued when send returns.
import { openSync, closeSync } from 'node:fs';
import koffi from 'koffi';
import { AF_NETLINK, NETLINK_ADD_MEMBERSHIP, NETLINK_ROUTE, SOL_NETLINK } from './constants.ts';
import { EAGAIN, EINTR, NetlinkError } from './errors.ts';

const libc = koffi.load('libc.so.6');
const c = {
  socket: libc.func('int socket(int, int, int)'),
  bind: libc.func('int bind(int, const void *, uint32_t)'),
  getsockname: libc.func('int getsockname(int, _Out_ void *, _Inout_ uint32_t *)'),
  send: libc.func('intptr_t send(int, const void *, size_t, int)'),
  recv: libc.func('intptr_t recv(int, _Out_ void *, size_t, int)'),
  setsockopt: libc.func('int setsockopt(int, int, int, const void *, uint32_t)'),
  poll: libc.func('int poll(_Inout_ void *, uint64_t, int)'),
  eventfd: libc.func('int eventfd(uint32_t, int)'),
  write: libc.func('intptr_t write(int, const void *, size_t)'),
  close: libc.func('int close(int)'),
  setns: libc.func('int setns(int, int)'),
};

const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_SNDBUFFORCE = 32;
const SO_RCVBUFFORCE = 33;
const MSG_DONTWAIT = 0x40;
const EFD_CLOEXEC = 0o2000000;
const EFD_NONBLOCK = 0o4000;
const CLONE_NEWNET = 0x40000000;
const POLLIN = 0x1;

const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};

/**
 * Runs `fn` with the calling thread in network namespace `netns` (a name under
 * /run/netns), then returns to the original one. Sockets created inside stay bound to
 * that namespace for their whole life, which is how tests and the lab reach a namespace
 * without running in it. Synchronous on purpose: nothing else can run in between.
 */
export function inNetns<T>(netns: string | undefined, fn: () => T): T {
  if (!netns) return fn();
  const self = openSync('/proc/thread-self/ns/net', 'r');
  let target: number | undefined;
  try {
    target = openSync(`/run/netns/${netns}`, 'r');
    if (c.setns(target, CLONE_NEWNET) !== 0) throw new NetlinkError(koffi.errno(), `setns(${netns})`);
    try {
      return fn();
    } finally {
      if (c.setns(self, CLONE_NEWNET) !== 0) {
        // Staying in the wrong namespace would make every later socket lie about where it is.
        process.stderr.write('netsession: FATAL: cannot return to the original network namespace\n');
        process.abort();
      }
    }
  } finally {
    if (target !== undefined) closeSync(target);
    closeSync(self);
  }
}

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
    if (fd < 0) throw new NetlinkError(koffi.errno(), 'socket(AF_NETLINK)');
    try {
      const sa = Buffer.alloc(12);
      sa.writeUInt16LE(AF_NETLINK, 0);
      if (c.bind(fd, sa, 12) !== 0) throw new NetlinkError(koffi.errno(), 'bind(netlink)');
      const len = [12];
      if (c.getsockname(fd, sa, len) !== 0) throw new NetlinkError(koffi.errno(), 'getsockname(netlink)');
      const rcvbuf = opts.rcvbuf ?? 4 << 20;
      // FORCE variants ignore rmem_max (we run as root); fall back silently otherwise.
      c.setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, u32(rcvbuf), 4);
      c.setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, u32(1 << 20), 4);
      for (const f of opts.flags ?? []) c.setsockopt(fd, SOL_NETLINK, f, u32(1), 4);
      for (const g of opts.groups ?? []) {
        if (c.setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, u32(g), 4) !== 0) {
          throw new NetlinkError(koffi.errno(), `join netlink group ${g}`);
        }
      }
      const wake = c.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) as number;
      if (wake < 0) throw new NetlinkError(koffi.errno(), 'eventfd');
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
      const errno = koffi.errno();
      if (errno !== EINTR) throw new NetlinkError(errno, 'send(netlink)');
    }
  }

  /** One non-blocking recv into `buf`. */
  recv(buf: Buffer): RecvResult {
    if (this.closed) return { kind: 'empty' };
    for (;;) {
      const n = c.recv(this.fd, buf, buf.length, MSG_DONTWAIT) as number;
      if (n >= 0) return { kind: 'data', length: n };
      const errno = koffi.errno();
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

  close(): void {
    if (this.closed) return;
    this.closed = true;
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
