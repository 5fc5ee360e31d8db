// IPv4 + UDP headers around a DHCP message, for the packet socket (transport.ts) that sends
// and receives below the IP layer while the interface has no address. Pure.
//
// Parsing never throws: frames come from the link. The packet socket's BPF filter already
// passes only unfragmented UDP to port 68, but nothing here relies on that.
import { parseIpv4 } from './packet.ts';

export const IPPROTO_UDP = 17;
const IP_HEADER = 20;
const UDP_HEADER = 8;
/** DSCP CS6 (network control), as systemd-networkd and dhcpcd mark DHCP. */
const TOS_CS6 = 0xc0;

export interface UdpDatagram {
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  payload: Uint8Array;
}

export type ParseResult = { ok: true; datagram: UdpDatagram } | { ok: false; error: string };

/** Ones' complement sum of 16-bit words, not folded. */
function sum16(b: Uint8Array, start: number, end: number, acc = 0): number {
  let s = acc;
  let i = start;
  for (; i + 1 < end; i += 2) s += (b[i]! << 8) | b[i + 1]!;
  if (i < end) s += b[i]! << 8;
  return s;
}

function fold(s: number): number {
  let v = s;
  while (v > 0xffff) v = (v & 0xffff) + Math.floor(v / 0x10000);
  return v;
}

function pseudoSum(src: Uint8Array, dst: Uint8Array, udpLen: number): number {
  return sum16(src, 0, 4) + sum16(dst, 0, 4) + IPPROTO_UDP + udpLen;
}

const ip4 = (s: string): Uint8Array => {
  const v = parseIpv4(s);
  if (!v) throw new RangeError(`not an IPv4 address: ${JSON.stringify(s)}`);
  return Uint8Array.from(v);
};

/** An IPv4 packet (no options, DF clear, TTL 64) carrying one UDP datagram, checksums filled in. */
export function buildIpv4Udp(d: UdpDatagram): Buffer {
  const udpLen = UDP_HEADER + d.payload.length;
  const total = IP_HEADER + udpLen;
  if (total > 0xffff) throw new RangeError('datagram too large');
  const b = Buffer.alloc(total);
  const src = ip4(d.src);
  const dst = ip4(d.dst);
  b[0] = 0x45;
  b[1] = TOS_CS6;
  b.writeUInt16BE(total, 2);
  b[8] = 64;
  b[9] = IPPROTO_UDP;
  b.set(src, 12);
  b.set(dst, 16);
  b.writeUInt16BE(~fold(sum16(b, 0, IP_HEADER)) & 0xffff, 10);
  b.writeUInt16BE(d.srcPort, 20);
  b.writeUInt16BE(d.dstPort, 22);
  b.writeUInt16BE(udpLen, 24);
  b.set(d.payload, IP_HEADER + UDP_HEADER);
  const c = ~fold(sum16(b, IP_HEADER, total, pseudoSum(src, dst, udpLen))) & 0xffff;
  // RFC 768: a computed 0 is sent as all ones, 0 means "no checksum"
  b.writeUInt16BE(c === 0 ? 0xffff : c, 26);
  return b;
}

/**
 * The UDP datagram inside an IPv4 packet (as a SOCK_DGRAM packet socket delivers it: no
 * link header). Checks the IP header checksum and the UDP checksum. A UDP checksum that
 * holds only the pseudo-header sum is accepted too: that is a packet whose checksum was left
 * to offload (CHECKSUM_PARTIAL), which a packet socket sees before anyone completed it —
 * veth and virtio deliver those when the DHCP server runs on the same host, and a client
 * that rejects them never gets a lease there (the classic dhclient-in-a-VM failure).
 */
export function parseIpv4Udp(b: Uint8Array): ParseResult {
  if (b.length < IP_HEADER + UDP_HEADER) return { ok: false, error: `too short (${b.length} bytes)` };
  if (b[0]! >> 4 !== 4) return { ok: false, error: 'not IPv4' };
  const ihl = (b[0]! & 0x0f) * 4;
  if (ihl < IP_HEADER) return { ok: false, error: 'bad IP header length' };
  const total = (b[2]! << 8) | b[3]!;
  if (total < ihl + UDP_HEADER || total > b.length) return { ok: false, error: 'bad IP total length' };
  if (fold(sum16(b, 0, ihl)) !== 0xffff) return { ok: false, error: 'bad IP header checksum' };
  if ((((b[6]! << 8) | b[7]!) & 0x3fff) !== 0) return { ok: false, error: 'fragment' };
  if (b[9] !== IPPROTO_UDP) return { ok: false, error: 'not UDP' };
  const udpLen = (b[ihl + 4]! << 8) | b[ihl + 5]!;
  if (udpLen < UDP_HEADER || ihl + udpLen > total) return { ok: false, error: 'bad UDP length' };
  const src = b.subarray(12, 16);
  const dst = b.subarray(16, 20);
  const check = (b[ihl + 6]! << 8) | b[ihl + 7]!;
  if (check !== 0) {
    const pseudo = pseudoSum(src, dst, udpLen);
    if (fold(sum16(b, ihl, ihl + udpLen, pseudo)) !== 0xffff) {
      if (check !== fold(pseudo)) return { ok: false, error: 'bad UDP checksum' };
    }
  }
  const ip = (a: Uint8Array): string => `${a[0]}.${a[1]}.${a[2]}.${a[3]}`;
  return {
    ok: true,
    datagram: {
      src: ip(src),
      dst: ip(dst),
      srcPort: (b[ihl]! << 8) | b[ihl + 1]!,
      dstPort: (b[ihl + 2]! << 8) | b[ihl + 3]!,
      payload: b.subarray(ihl + UDP_HEADER, ihl + udpLen),
    },
  };
}
