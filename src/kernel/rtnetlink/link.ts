// RTM_NEWLINK / RTM_DELLINK codec (read side: netsession never creates links).
import { forEachAttr, readCString } from '../netlink/codec.ts';
import {
  IFF_LOWER_UP,
  IFF_UP,
  IFLA_ADDRESS,
  IFLA_IFNAME,
  IFLA_INFO_KIND,
  IFLA_LINKINFO,
  IFLA_MASTER,
  IFLA_MTU,
  IFLA_OPERSTATE,
} from '../netlink/constants.ts';
import type { Link, OperState } from './types.ts';

const OPERSTATES: readonly OperState[] = ['unknown', 'notpresent', 'down', 'lowerlayerdown', 'testing', 'dormant', 'up'];
const IFINFOMSG_LEN = 16;

function hwAddress(buf: Buffer, at: number, len: number): string {
  const parts: string[] = [];
  for (let i = 0; i < len; i++) parts.push((buf[at + i] ?? 0).toString(16).padStart(2, '0'));
  return parts.join(':');
}

export function parseLink(buf: Buffer, off: number, end: number): Link {
  const flags = buf.readUInt32LE(off + 8);
  const link: Link = {
    index: buf.readInt32LE(off + 4),
    name: '',
    flags,
    up: (flags & IFF_UP) !== 0,
    lowerUp: (flags & IFF_LOWER_UP) !== 0,
    operstate: 'unknown',
    mtu: 0,
    type: buf.readUInt16LE(off + 2),
  };
  forEachAttr(buf, off + IFINFOMSG_LEN, end, (t, at, len) => {
    switch (t) {
      case IFLA_IFNAME:
        link.name = readCString(buf, at, len);
        break;
      case IFLA_MTU:
        link.mtu = buf.readUInt32LE(at);
        break;
      case IFLA_OPERSTATE:
        link.operstate = OPERSTATES[buf[at] ?? 0] ?? 'unknown';
        break;
      case IFLA_ADDRESS:
        link.mac = hwAddress(buf, at, len);
        break;
      case IFLA_MASTER:
        link.master = buf.readUInt32LE(at);
        break;
      case IFLA_LINKINFO:
        forEachAttr(buf, at, at + len, (t2, at2, len2) => {
          if (t2 === IFLA_INFO_KIND) link.kind = readCString(buf, at2, len2);
        });
        break;
    }
  });
  return link;
}

/** The ifinfomsg of a link dump request. */
export function linkDumpHeader(w: { struct(n: number): Buffer }): void {
  w.struct(IFINFOMSG_LEN);
}
