// A TCP listener for connection-rate measurements that is not the bottleneck it measures:
// a plain socket inside a namespace (the lab's ISP side, on the internet address), with a
// deep accept queue, drained every few milliseconds by accept4() + close() through libc.
// The kernel completes every handshake by itself; what this must prevent is a full accept
// queue, which drops SYNs and stalls clients for the SYN retransmission timeout (1 s). The
// lab's internet server (a node process shared by the whole lab) stalls now and then on a
// busy 2-core machine, long enough for its 511-deep queue to fill at several thousand
// connections per second.
import koffi from 'koffi';
import { errno, libc, SO_REUSEADDR, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM, SOL_SOCKET, u32 } from '../../src/kernel/sys/libc.ts';
import { inNetns } from '../../src/kernel/sys/netns.ts';

const lib = koffi.load('libc.so.6');
const listen = lib.func('int listen(int, int)');
const accept4 = lib.func('int accept4(int, void *, void *, int)');
const AF_INET = 2;
const BACKLOG = 65535;
const DRAIN_MS = 2;

export interface TcpSink {
  port: number;
  /** connections accepted (and closed) so far */
  accepted(): number;
  close(): void;
}

function sockaddrIn(ipv4: string, port: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt16LE(AF_INET, 0);
  b.writeUInt16BE(port, 2);
  const octets = ipv4.split('.').map(Number);
  for (let i = 0; i < 4; i++) b.writeUInt8(octets[i] ?? 0, 4 + i);
  return b;
}

/** Listens on ipv4:port inside `netns` (the accept queue is capped by that namespace's net.core.somaxconn). */
export function openTcpSink(netns: string, ipv4: string, port: number): TcpSink {
  let err = 0;
  const fd = inNetns(netns, () => {
    const r = libc.socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0) as number;
    if (r < 0) err = errno();
    return r;
  });
  if (fd < 0) throw new Error(`socket in ${netns}: errno ${err}`);
  const fail = (what: string): never => {
    const e = errno();
    libc.close(fd);
    throw new Error(`${what} ${ipv4}:${port} in ${netns}: errno ${e}`);
  };
  if (libc.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, u32(1), 4) !== 0) fail('SO_REUSEADDR');
  if (libc.bind(fd, sockaddrIn(ipv4, port), 16) !== 0) fail('bind');
  if (listen(fd, BACKLOG) !== 0) fail('listen');
  let accepted = 0;
  const timer = setInterval(() => {
    for (;;) {
      const c = accept4(fd, null, null, SOCK_CLOEXEC) as number;
      if (c < 0) break;
      accepted++;
      libc.close(c);
    }
  }, DRAIN_MS);
  return {
    port,
    accepted: () => accepted,
    close: () => {
      clearInterval(timer);
      libc.close(fd);
    },
  };
}
