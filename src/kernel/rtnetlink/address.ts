// RTM_NEWADDR / RTM_DELADDR codec.
import { type MessageWriter, addressBytes, addressString, familyOf, forEachAttr, readCString } from '../netlink/codec.ts';
import {
  AF_INET,
  type Family,
  IFA_ADDRESS,
  IFA_BROADCAST,
  IFA_CACHEINFO,
  IFA_FLAGS,
  IFA_LABEL,
  IFA_LOCAL,
  IFA_PROTO,
} from '../netlink/constants.ts';
import type { Address } from './types.ts';

const IFADDRMSG_LEN = 8;
const FOREVER = 0xffffffff;

export function parseAddress(buf: Buffer, off: number, end: number): Address {
  const family = buf[off] as Family;
  let address: string | undefined;
  let local: string | undefined;
  const a: Address = {
    family,
    index: buf.readUInt32LE(off + 4),
    address: '',
    prefixLen: buf[off + 1] ?? 0,
    scope: buf[off + 3] ?? 0,
    flags: buf[off + 2] ?? 0,
    validLifetime: FOREVER,
    preferredLifetime: FOREVER,
    protocol: 0,
  };
  forEachAttr(buf, off + IFADDRMSG_LEN, end, (t, at, len) => {
    switch (t) {
      case IFA_ADDRESS:
        address = addressString(buf, at, len);
        break;
      case IFA_LOCAL:
        local = addressString(buf, at, len);
        break;
      case IFA_BROADCAST:
        a.broadcast = addressString(buf, at, len);
        break;
      case IFA_LABEL:
        a.label = readCString(buf, at, len);
        break;
      case IFA_FLAGS:
        a.flags = buf.readUInt32LE(at);
        break;
      case IFA_PROTO:
        a.protocol = buf[at] ?? 0;
        break;
      case IFA_CACHEINFO:
        a.preferredLifetime = buf.readUInt32LE(at);
        a.validLifetime = buf.readUInt32LE(at + 4);
        break;
    }
  });
  // IPv4 keeps the own address in IFA_LOCAL and the peer in IFA_ADDRESS; IPv6 only IFA_ADDRESS
  // (plus IFA_LOCAL when it has a peer).
  a.address = local ?? address ?? '';
  if (local !== undefined && address !== undefined && address !== local) a.peer = address;
  return a;
}

export function addressKey(a: Pick<Address, 'family' | 'index' | 'address' | 'prefixLen'>): string {
  return `${a.family}|${a.index}|${a.address}/${a.prefixLen}`;
}

export interface AddressSpec {
  index: number;
  address: string;
  prefixLen: number;
  peer?: string;
  broadcast?: string;
  scope?: number;
  flags?: number;
  label?: string;
  validLifetime?: number;
  preferredLifetime?: number;
  protocol?: number;
}

export function writeAddress(w: MessageWriter, spec: AddressSpec): void {
  const family = familyOf(spec.address);
  const h = w.struct(IFADDRMSG_LEN);
  h[0] = family;
  h[1] = spec.prefixLen;
  h[2] = (spec.flags ?? 0) & 0xff;
  h[3] = spec.scope ?? 0;
  h.writeUInt32LE(spec.index, 4);
  // Both families: IFA_LOCAL is our address, IFA_ADDRESS the peer (or ours again), as iproute2 sends.
  const local = addressBytes(spec.address);
  w.bytes(IFA_LOCAL, local);
  w.bytes(IFA_ADDRESS, spec.peer ? addressBytes(spec.peer) : local);
  if (spec.broadcast && family === AF_INET) w.bytes(IFA_BROADCAST, addressBytes(spec.broadcast));
  if (spec.label) w.string(IFA_LABEL, spec.label);
  if (spec.protocol !== undefined) w.u8(IFA_PROTO, spec.protocol);
  if (spec.flags !== undefined) w.u32(IFA_FLAGS, spec.flags);
  if (spec.validLifetime !== undefined || spec.preferredLifetime !== undefined) {
    const ci = Buffer.alloc(16);
    ci.writeUInt32LE(spec.preferredLifetime ?? spec.validLifetime ?? FOREVER, 0);
    ci.writeUInt32LE(spec.validLifetime ?? FOREVER, 4);
    w.bytes(IFA_CACHEINFO, ci);
  }
}

export function addressDumpHeader(w: MessageWriter, family: number): void {
  w.struct(IFADDRMSG_LEN)[0] = family;
}
