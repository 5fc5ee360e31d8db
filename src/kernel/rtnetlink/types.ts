// The kernel's routing objects as netsession sees them: plain, serialisable data.
import type { Family } from '../netlink/constants.ts';

export interface Link {
  index: number;
  name: string;
  /** IFF_* flags */
  flags: number;
  /** IFF_UP: administratively up */
  up: boolean;
  /** IFF_LOWER_UP: carrier */
  lowerUp: boolean;
  operstate: OperState;
  mtu: number;
  mac?: string;
  /** IFLA_INFO_KIND: veth, bridge, wireguard, … (absent for physical devices) */
  kind?: string;
  master?: number;
  /** ARPHRD_* type (1 = ethernet, 772 = loopback) */
  type: number;
}

export type OperState = 'unknown' | 'notpresent' | 'down' | 'lowerlayerdown' | 'testing' | 'dormant' | 'up';

export interface Address {
  family: Family;
  index: number;
  /** the interface's own address (IFA_LOCAL for IPv4, IFA_ADDRESS for IPv6) */
  address: string;
  prefixLen: number;
  /** peer address of a point-to-point link, when it differs from `address` */
  peer?: string;
  broadcast?: string;
  scope: number;
  /** IFA_F_* (IFA_FLAGS, 32 bits) */
  flags: number;
  label?: string;
  /** seconds; 0xffffffff = forever */
  validLifetime: number;
  preferredLifetime: number;
  /** IFA_PROTO: who added it (0 = unknown, 1-3 = the kernel, ours = our protocol tag) */
  protocol: number;
}

export interface Nexthop {
  gateway?: string;
  oif?: number;
  weight: number;
  flags: number;
}

export interface Route {
  family: Family;
  table: number;
  /** destination prefix; `dstLen` 0 is the default route */
  dst: string;
  dstLen: number;
  src?: string;
  srcLen: number;
  tos: number;
  /** metric (RTA_PRIORITY); the kernel's default is 0 for IPv4 and 1024 for IPv6 */
  priority: number;
  /** RTN_* route type: unicast, unreachable, … */
  type: number;
  /** RTPROT_*: who installed it. netsession tags its own routes with its protocol number. */
  protocol: number;
  scope: number;
  gateway?: string;
  oif?: number;
  prefsrc?: string;
  /** RTM_F_* and RTNH_F_* flags */
  flags: number;
  multipath?: Nexthop[];
  /** IPv6 router preference (RTA_PREF) */
  pref?: number;
  /** seconds left for routes that expire (IPv6 RA routes) */
  expires?: number;
}

export interface Rule {
  family: Family;
  priority: number;
  /** FR_ACT_*: to table, goto, nop, blackhole, unreachable, prohibit */
  action: number;
  table: number;
  src?: string;
  srcLen: number;
  dst?: string;
  dstLen: number;
  tos: number;
  fwmark?: number;
  fwmask?: number;
  iifname?: string;
  oifname?: string;
  uidRange?: { start: number; end: number };
  ipProto?: number;
  sportRange?: { start: number; end: number };
  dportRange?: { start: number; end: number };
  suppressPrefixLen?: number;
  goto?: number;
  l3mdev?: boolean;
  /** FRA_PROTOCOL: who installed it */
  protocol: number;
  /** FIB_RULE_* flags (INVERT = "not") */
  flags: number;
}
