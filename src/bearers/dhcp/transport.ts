// Sockets of one DHCP client: how DHCP messages leave and reach one interface.
//
// Two sockets, because a kernel UDP socket alone is not enough on a real multi-uplink host
// (measured on Linux 6.18; test/bearers/dhcp/dhcp-client.test.ts, "why a packet socket",
// shows both effects against dnsmasq):
//  - Sending to 255.255.255.255 from a UDP socket with SO_BINDTODEVICE does work without any
//    IPv4 address on the interface, and leaves with source 0.0.0.0 — but only while *no*
//    interface in the namespace has an address: otherwise inet_select_addr() borrows another
//    uplink's address as the source (a DISCOVER on eth0 left as 198.51.100.5 from eth1),
//    which RFC 2131 §4.1 forbids and which leaks one uplink's address onto another.
//  - Receiving the server's broadcast reply on an interface without address fails as soon as
//    rp_filter is 1 or 2 (fib_validate_source finds no route back through that interface,
//    and an interface without address goes straight to the "last resort" reject). The
//    daemon runs with loose rp_filter (DESIGN.md), so that is the normal case, not an edge.
// So, like dhclient, udhcpc and systemd-networkd, the client talks below IP while it has no
// address: an AF_PACKET/SOCK_DGRAM socket (the kernel adds the Ethernet header), with a BPF
// filter so only unfragmented UDP to port 68 wakes us, and IP/UDP headers built by us
// (frame.ts) with the right source. It receives every reply, in every phase: it sees the
// frame before the IP layer can drop it. The UDP socket (bound to 0.0.0.0:68 on the
// device) sends the unicast messages of a bound client (RENEWING, RELEASE: the kernel does
// routing and ARP) and keeps the port bound, so the kernel does not answer unicast replies
// with ICMP port-unreachable; what it receives is read and thrown away, the packet socket
// has the same frames.
// Mode 'udp' uses the UDP socket for everything: fine where rp_filter is 0 and no other
// interface has an address (the lab's default), and kept to show the difference in tests.
import { errnoName } from '../../kernel/netlink/errors.ts';
import { watchFd } from '../../kernel/sys/fd-watch.ts';
import {
  errno as lastErrno,
  libc as c,
  MSG_DONTWAIT,
  SO_BINDTODEVICE,
  SO_BROADCAST,
  SO_REUSEADDR,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOL_SOCKET,
  u32,
} from '../../kernel/sys/libc.ts';
import { inNetns } from '../../kernel/sys/netns.ts';
import koffi from 'koffi';
import { buildIpv4Udp, parseIpv4Udp } from './frame.ts';
import { CLIENT_PORT, parseIpv4, SERVER_PORT } from './packet.ts';

const AF_INET = 2;
const AF_PACKET = 17;
const ETH_P_IP = 0x0800;
const SOCK_NONBLOCK = 0o4000;
const SO_ATTACH_FILTER = 26;
const PACKET_OTHERHOST = 3;
const PACKET_OUTGOING = 4;
const EAGAIN = 11;
const EINTR = 4;
const SOCKADDR_IN_SIZE = 16;
const SOCKADDR_LL_SIZE = 20;
/** Reads per readiness callback before yielding to the event loop (a flood must not starve it). */
const MAX_READS_PER_WAKE = 256;

export type TransportMode = 'packet' | 'udp';

export class TransportError extends Error {
  readonly errno: number;
  readonly code: string;
  constructor(errno: number, what: string) {
    super(`${what}: ${errnoName(errno)}`);
    this.name = 'TransportError';
    this.errno = errno;
    this.code = errnoName(errno);
  }
}

export interface TransportOptions {
  ifname: string;
  ifindex: number;
  /** network namespace (name under /run/netns) to create the sockets in; tests and the lab */
  netns?: string;
  /** default 'packet' (see the head of this file) */
  mode?: TransportMode;
  /** one DHCP payload (the UDP data), with the sender's address */
  onMessage: (payload: Uint8Array, from: string) => void;
  /** a frame we could not use, or a receive error: worth a debug line, never fatal */
  onProblem: (what: string) => void;
}

/**
 * Classic BPF for a SOCK_DGRAM packet socket (offsets start at the IP header): accept UDP to
 * port 68 that is not a fragment, drop everything else. Without it every IPv4 packet on the
 * uplink would wake the daemon.
 */
function dhcpFilter(): Buffer {
  const ins: [number, number, number, number][] = [
    [0x30, 0, 0, 9], //          ldb [9]               IP protocol
    [0x15, 0, 6, 17], //         jeq #17, 0, drop      UDP?
    [0x28, 0, 0, 6], //          ldh [6]               flags + fragment offset
    [0x45, 4, 0, 0x3fff], //     jset #0x3fff, drop    MF or offset: a fragment
    [0xb1, 0, 0, 0], //          ldxb 4*([0]&0xf)      X = IP header length
    [0x48, 0, 0, 2], //          ldh [x+2]             UDP destination port
    [0x15, 0, 1, CLIENT_PORT], // jeq #68, 0, drop
    [0x06, 0, 0, 0x40000], //    ret #262144           accept, whole packet
    [0x06, 0, 0, 0], //          ret #0                drop
  ];
  const b = Buffer.alloc(ins.length * 8);
  ins.forEach(([code, jt, jf, k], i) => {
    b.writeUInt16LE(code, i * 8);
    b[i * 8 + 2] = jt;
    b[i * 8 + 3] = jf;
    b.writeUInt32LE(k, i * 8 + 4);
  });
  return b;
}

function sockaddrIn(address: string, port: number): Buffer {
  const sa = Buffer.alloc(SOCKADDR_IN_SIZE);
  sa.writeUInt16LE(AF_INET, 0);
  sa.writeUInt16BE(port, 2);
  const a = parseIpv4(address);
  if (!a) throw new RangeError(`not an IPv4 address: ${address}`);
  sa.set(a, 4);
  return sa;
}

function sockaddrLl(ifindex: number, broadcast: boolean): Buffer {
  const sa = Buffer.alloc(SOCKADDR_LL_SIZE);
  sa.writeUInt16LE(AF_PACKET, 0);
  sa.writeUInt16BE(ETH_P_IP, 2);
  sa.writeInt32LE(ifindex, 4);
  if (broadcast) {
    sa[11] = 6;
    sa.fill(0xff, 12, 18);
  }
  return sa;
}

function check(r: number, what: string): void {
  if (r < 0) throw new TransportError(lastErrno(), what);
}

function setOpt(fd: number, opt: number, value: Buffer, what: string): void {
  check(c.setsockopt(fd, SOL_SOCKET, opt, value, value.length) as number, what);
}

function openUdp(ifname: string): number {
  const fd = c.socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) as number;
  check(fd, 'socket(AF_INET)');
  try {
    setOpt(fd, SO_REUSEADDR, u32(1), 'SO_REUSEADDR');
    setOpt(fd, SO_BROADCAST, u32(1), 'SO_BROADCAST');
    // before bind: several clients (one per uplink) share port 68, one device each
    setOpt(fd, SO_BINDTODEVICE, Buffer.from(`${ifname}\0`), `SO_BINDTODEVICE ${ifname}`);
    check(c.bind(fd, sockaddrIn('0.0.0.0', CLIENT_PORT), SOCKADDR_IN_SIZE) as number, 'bind 0.0.0.0:68');
    return fd;
  } catch (e) {
    c.close(fd);
    throw e;
  }
}

function openPacket(ifindex: number): number {
  // protocol 0: the socket receives nothing until bind, so no frame slips in before the filter
  const fd = c.socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) as number;
  check(fd, 'socket(AF_PACKET)');
  try {
    const filter = dhcpFilter();
    const prog = Buffer.alloc(16);
    prog.writeUInt16LE(filter.length / 8, 0);
    // struct sock_fprog holds a pointer; the kernel copies the program during the call
    prog.writeBigUInt64LE(koffi.address(filter), 8);
    setOpt(fd, SO_ATTACH_FILTER, prog, 'SO_ATTACH_FILTER');
    check(c.bind(fd, sockaddrLl(ifindex, false), SOCKADDR_LL_SIZE) as number, `bind(AF_PACKET, ifindex ${ifindex})`);
    return fd;
  } catch (e) {
    c.close(fd);
    throw e;
  }
}

export class DhcpTransport {
  readonly mode: TransportMode;
  private readonly buf = Buffer.alloc(65536);
  private readonly from = Buffer.alloc(SOCKADDR_LL_SIZE);
  private readonly fromLen = [0];
  private readonly unwatch: (() => void)[] = [];
  private closed = false;

  private constructor(
    private readonly o: TransportOptions,
    private readonly udp: number,
    private readonly packet: number | undefined,
  ) {
    this.mode = packet === undefined ? 'udp' : 'packet';
  }

  /** Opens and binds the sockets (in `netns` if given). Throws TransportError. */
  static open(o: TransportOptions): DhcpTransport {
    const mode = o.mode ?? 'packet';
    const [udp, packet] = inNetns(o.netns, () => {
      const u = openUdp(o.ifname);
      if (mode === 'udp') return [u, undefined] as const;
      try {
        return [u, openPacket(o.ifindex)] as const;
      } catch (e) {
        c.close(u);
        throw e;
      }
    });
    const t = new DhcpTransport(o, udp, packet);
    try {
      if (packet !== undefined) {
        t.unwatch.push(watchFd(packet, () => t.drain(packet, 'packet')));
        t.unwatch.push(watchFd(udp, () => t.drain(udp, 'discard')));
      } else {
        t.unwatch.push(watchFd(udp, () => t.drain(udp, 'udp')));
      }
    } catch (e) {
      t.close();
      throw e;
    }
    return t;
  }

  /**
   * A broadcast to 255.255.255.255:67. `source` is the IP source address (0.0.0.0 until an
   * address is bound); in 'udp' mode the kernel picks it (see the head of this file).
   */
  sendBroadcast(payload: Uint8Array, source: string): void {
    if (this.closed) throw new TransportError(9, 'send on a closed transport');
    if (this.packet === undefined) {
      this.sendUdp(payload, '255.255.255.255');
      return;
    }
    const frame = buildIpv4Udp({
      src: source,
      dst: '255.255.255.255',
      srcPort: CLIENT_PORT,
      dstPort: SERVER_PORT,
      payload,
    });
    const to = sockaddrLl(this.o.ifindex, true);
    for (;;) {
      const n = c.sendto(this.packet, frame, frame.length, 0, to, SOCKADDR_LL_SIZE) as number;
      if (n >= 0) return;
      const e = lastErrno();
      if (e !== EINTR) throw new TransportError(e, `send broadcast on ${this.o.ifname}`);
    }
  }

  /** A unicast to server:67 through the kernel (routing, ARP): for a client that is bound. */
  sendUnicast(payload: Uint8Array, address: string): void {
    if (this.closed) throw new TransportError(9, 'send on a closed transport');
    this.sendUdp(payload, address);
  }

  private sendUdp(payload: Uint8Array, address: string): void {
    const to = sockaddrIn(address, SERVER_PORT);
    for (;;) {
      const n = c.sendto(this.udp, payload, payload.length, 0, to, SOCKADDR_IN_SIZE) as number;
      if (n >= 0) return;
      const e = lastErrno();
      if (e !== EINTR) throw new TransportError(e, `send to ${address}:67 on ${this.o.ifname}`);
    }
  }

  /** Reads until the socket is empty (SIGIO coalesces: see fd-watch.ts). Never throws. */
  private drain(fd: number, kind: 'packet' | 'udp' | 'discard'): void {
    for (let i = 0; i < MAX_READS_PER_WAKE; i++) {
      if (this.closed) return;
      this.fromLen[0] = SOCKADDR_LL_SIZE;
      const n = c.recvfrom(fd, this.buf, this.buf.length, MSG_DONTWAIT, this.from, this.fromLen) as number;
      if (n < 0) {
        const e = lastErrno();
        if (e === EINTR) continue;
        // ENETDOWN when the link goes down: the packet socket carries on when it comes back
        if (e !== EAGAIN) this.problem(`recv on ${this.o.ifname}: ${errnoName(e)}`);
        return;
      }
      if (kind === 'discard') continue;
      // copy: the buffer is reused by the next read, the consumer may keep the bytes
      const data = Uint8Array.prototype.slice.call(this.buf, 0, n);
      if (kind === 'udp') {
        this.deliver(data, `${this.from[4]}.${this.from[5]}.${this.from[6]}.${this.from[7]}`);
        continue;
      }
      const pkttype = this.from[10];
      if (pkttype === PACKET_OUTGOING || pkttype === PACKET_OTHERHOST) continue;
      const r = parseIpv4Udp(data);
      if (!r.ok) {
        this.problem(`frame on ${this.o.ifname} dropped: ${r.error}`);
        continue;
      }
      if (r.datagram.dstPort !== CLIENT_PORT) continue;
      this.deliver(r.datagram.payload, r.datagram.src);
    }
    // more may be queued: come back after others had their turn
    setImmediate(() => this.drain(fd, kind));
  }

  private deliver(payload: Uint8Array, from: string): void {
    try {
      this.o.onMessage(payload, from);
    } catch (e) {
      this.problem(`message handler failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  private problem(what: string): void {
    try {
      this.o.onProblem(what);
    } catch {
      // a broken logger must not stop the reading
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Closes both sockets. The packet socket is closed on a worker thread: the kernel waits for
   * an RCU grace period when a packet socket goes (synchronize_net() in packet_release(),
   * 10-20 ms measured on 2 cores), and every carrier loss stops a DHCP client, so on the main
   * thread a flapping uplink would hold up everything else, D-Bus answers included (a storm
   * of 1,000 carrier flips spent ~4 s of 10 there). Nothing refers to the fd once it is no
   * longer watched; its number is not reused before the close is done.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const u of this.unwatch) u();
    c.close(this.udp);
    if (this.packet !== undefined) {
      c.close.async(this.packet, () => {
        /* nothing to do with the result: the descriptor is gone either way (EINTR included) */
      });
    }
  }
}
