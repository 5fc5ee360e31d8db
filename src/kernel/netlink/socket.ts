// A raw netlink socket through koffi (libc FFI, no native build, no install script).
//
// Why this shape: Node cannot watch an arbitrary fd, and libuv will not adopt a netlink
// socket. All reading happens on the main thread with non-blocking recv(2), which keeps
// errno (ENOBUFS!) readable and parsing single-threaded. Waiting comes in two forms:
//  - `watch`: the kernel signals the process (O_ASYNC → SIGIO) when data or an error is
//    queued; libuv turns the signal into a main-loop callback. No thread hop: measured
//    p99 change → callback well under a millisecond where poll(2) on the thread pool
//    showed multi-millisecond tails on 2 cores. A slow timer drains as a safety net.
//  - `waitReadable`: poll(2) on libuv's thread pool, for the rare request that is not
//    answered inside send(2). An eventfd wakes it on close.
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
  fcntl: libc.func('int fcntl(int, int, int)'),
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
const F_GETFL = 3;
const F_SETFL = 4;
const F_SETOWN = 8;
const O_NONBLOCK = 0o4000;
const O_ASYNC = 0o20000;
/** how often watched sockets are drained even without a signal (a lost signal costs at most this) */
const SAFETY_DRAIN_MS = 1000;

/** Sockets watched through SIGIO, and what to call when any of them may be readable. */
const watched = new Map<NetlinkSocket, () => void>();
let sigioInstalled = false;
let safetyTimer: NodeJS.Timeout | undefined;
function onSigio(): void {
  for (const cb of [...watched.values()]) cb();
}

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

  /**
   * Calls `readable` (on the main thread) whenever data or an error may be queued. The
   * callback must read until recv() reports empty, or call again soon: signals coalesce.
   */
  watch(readable: () => void): void {
    if (this.closed) return;
    if (!sigioInstalled) {
      // SIGIO's default action ends the process: the handler must exist before O_ASYNC is set
      process.on('SIGIO', onSigio);
      sigioInstalled = true;
    }
    watched.set(this, readable);
    // the timer also keeps the process alive while a socket is watched, as an open server would
    safetyTimer ??= setInterval(onSigio, SAFETY_DRAIN_MS);
    const flags = c.fcntl(this.fd, F_GETFL, 0) as number;
    if (c.fcntl(this.fd, F_SETOWN, process.pid) !== 0 || c.fcntl(this.fd, F_SETFL, flags | O_ASYNC | O_NONBLOCK) !== 0) {
      watched.delete(this);
      throw new NetlinkError(koffi.errno(), 'fcntl(O_ASYNC)');
    }
    // anything queued before O_ASYNC raised no signal
    setImmediate(readable);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    watched.delete(this);
    if (watched.size === 0 && safetyTimer) {
      clearInterval(safetyTimer);
      safetyTimer = undefined;
    }
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
