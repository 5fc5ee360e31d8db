// The lab's topology: a typed, declarative description, its default, and everything derived
// from it (names, addresses, file paths, the ip batches that build it, the lab JSON).
// Pure: no I/O here, so the shape of a lab can be tested without root.
import type { LabDaemonInfo, LabDaemonSpec } from './lab-daemon.ts';

/** All lab state lives below this directory, one sub-directory per lab name. */
export const LAB_ROOT = '/tmp/netsession-lab';
/** One internet server serves every ISP, so a lab of 64 costs dnsmasqs (~1 MB each), not 64 node processes. */
export const MAX_UPLINKS = 64;
export const DEFAULT_UPLINKS = 3;
export const DEFAULT_LAB_NAME = 'lab';
export const DEFAULT_LEASE_SECONDS = 3600;
/** dnsmasq silently raises shorter leases to 2 minutes; refuse them rather than lie. */
export const MIN_LEASE_SECONDS = 120;
/** Lab names end up in netns names and paths: keep them short and shell/path safe. */
export const MAX_NAME_LENGTH = 8;

/** The "internet" behind every ISP: the same addresses everywhere, like a real anycast service. */
export const INTERNET = {
  ipv4: '198.18.0.1',
  ipv6: '2001:db8:ffff::1',
  httpPort: 80,
  echoPort: 7,
} as const;

/** Path of ConnMan's D-Bus policy, included by the lab bus (it is what a real system has). */
export const CONNMAN_BUS_POLICY = '/usr/share/dbus-1/system.d/connman.conf';

export const ISP_MODES = ['online', 'no-upstream', 'portal'] as const;
export type IspMode = (typeof ISP_MODES)[number];
export const ISP_ACTIONS = ['online', 'no-upstream', 'portal', 'dhcp-off', 'dhcp-on'] as const;
export type IspAction = (typeof ISP_ACTIONS)[number];
export const LINK_STATES = ['up', 'down'] as const;
export type LinkState = (typeof LINK_STATES)[number];

/** Bad input from a user or a caller: the CLI maps it to exit code 2, and nothing was changed. */
export class LabUsageError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'LabUsageError';
  }
}

/** What a caller may say about one uplink; everything is optional. */
export interface UplinkSpec {
  /** DHCPv4 lease time in seconds (≥ 120), default 3600. */
  leaseSeconds?: number;
  /** Run the ISP's dnsmasq (DHCP, RA, DNS) from the start; default true. */
  dhcp?: boolean;
  /** Initial state of the ISP's upstream; default 'online'. */
  mode?: IspMode;
  /** Initial state of the ISP-side link; default 'up'. */
  link?: LinkState;
}

/** What a caller may say about a lab. `uplinks` is a count or one spec per uplink. */
export interface TopologySpec {
  name?: string;
  uplinks?: number | readonly UplinkSpec[];
  /** Default lease time for uplinks that do not set their own. */
  leaseSeconds?: number;
  /** Set the device-side interfaces up (so the kernel does SLAAC at once); default true. */
  deviceLinksUp?: boolean;
  /** also start netsessiond in the device namespace, configured for the lab */
  daemon?: boolean | LabDaemonSpec;
}

export interface Uplink {
  index: number;
  /** `isp<i>` */
  name: string;
  /** interface in the device namespace, `eth<i>` */
  ifname: string;
  ispNetns: string;
  /** interface in the ISP namespace, `gw<i>` */
  ispIfname: string;
  gateway4: string;
  prefix4: string;
  netmask4: string;
  gateway6: string;
  prefix6: string;
  dhcpPool4: { start: string; end: string };
  leaseSeconds: number;
  dhcp: boolean;
  mode: IspMode;
  link: LinkState;
}

export interface Topology {
  name: string;
  /** every namespace of this lab starts with it: `nsl-<name>-` */
  netnsPrefix: string;
  dir: string;
  device: { netns: string; linksUp: boolean };
  bus: { socket: string; address: string; config: string };
  internet: typeof INTERNET;
  uplinks: Uplink[];
}

/** Files of one uplink in the lab's state directory. */
export interface UplinkFiles {
  modeFile: string;
  leaseFile: string;
  dnsmasqPid: string;
  dnsmasqLog: string;
  dnsmasqOut: string;
}

export function validateLabName(name: string): string {
  if (!/^[A-Za-z0-9]+$/.test(name) || name.length > MAX_NAME_LENGTH) {
    throw new LabUsageError(
      `bad lab name ${JSON.stringify(name)}: letters and digits only, 1..${MAX_NAME_LENGTH} characters`,
    );
  }
  return name;
}

export function labDir(name: string): string {
  return `${LAB_ROOT}/${validateLabName(name)}`;
}

export function netnsPrefix(name: string): string {
  return `nsl-${validateLabName(name)}-`;
}

export function uplinkFiles(dir: string, index: number): UplinkFiles {
  const p = `${dir}/isp${index}`;
  return {
    modeFile: `${p}.mode`,
    leaseFile: `${p}.leases`,
    dnsmasqPid: `${p}.dnsmasq.pid`,
    dnsmasqLog: `${p}.dnsmasq.log`,
    dnsmasqOut: `${p}.dnsmasq.out`,
  };
}

export const BUS_PID_FILE = 'bus.pid';
export const BUS_LOG_FILE = 'bus.log';
/** the one internet server of the lab (internet-server.ts), serving every ISP namespace */
export const INTERNET_PID_FILE = 'internet.pid';
export const INTERNET_LOG_FILE = 'internet.log';
export const LAB_JSON_FILE = 'lab.json';

/** The first three uplinks use the three TEST-NETs; further ones use 198.19.<i>.0/24 (benchmark range). */
function ipv4Net(index: number): string {
  return ['192.0.2', '198.51.100', '203.0.113'][index] ?? `198.19.${index}`;
}

function checkLease(seconds: number, what: string): number {
  if (!Number.isInteger(seconds) || seconds < MIN_LEASE_SECONDS) {
    throw new LabUsageError(`${what}: lease time must be an integer ≥ ${MIN_LEASE_SECONDS} seconds, got ${seconds}`);
  }
  return seconds;
}

export function parseUplinkCount(value: string | number): number {
  const n = typeof value === 'number' ? value : /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_UPLINKS) {
    throw new LabUsageError(`bad uplink count ${JSON.stringify(String(value))}: must be 1..${MAX_UPLINKS}`);
  }
  return n;
}

export function makeUplink(name: string, index: number, spec: UplinkSpec, defaultLease: number): Uplink {
  const net4 = ipv4Net(index);
  const net6 = `2001:db8:${(index + 1).toString(16)}::`;
  const mode = spec.mode ?? 'online';
  if (!(ISP_MODES as readonly string[]).includes(mode)) throw new LabUsageError(`isp${index}: unknown mode ${mode}`);
  const link = spec.link ?? 'up';
  if (!(LINK_STATES as readonly string[]).includes(link)) throw new LabUsageError(`isp${index}: unknown link state ${link}`);
  return {
    index,
    name: `isp${index}`,
    ifname: `eth${index}`,
    ispNetns: `${netnsPrefix(name)}isp${index}`,
    ispIfname: `gw${index}`,
    gateway4: `${net4}.1`,
    prefix4: `${net4}.0/24`,
    netmask4: '255.255.255.0',
    gateway6: `${net6}1`,
    prefix6: `${net6}/64`,
    dhcpPool4: { start: `${net4}.50`, end: `${net4}.99` },
    leaseSeconds: checkLease(spec.leaseSeconds ?? defaultLease, `isp${index}`),
    dhcp: spec.dhcp ?? true,
    mode,
    link,
  };
}

/** Validates a spec and derives the full topology. Throws LabUsageError on bad input. */
export function resolveTopology(spec: TopologySpec = {}): Topology {
  const name = validateLabName(spec.name ?? DEFAULT_LAB_NAME);
  const defaultLease = checkLease(spec.leaseSeconds ?? DEFAULT_LEASE_SECONDS, 'lab');
  const specs: readonly UplinkSpec[] =
    spec.uplinks === undefined
      ? new Array<UplinkSpec>(DEFAULT_UPLINKS).fill({})
      : typeof spec.uplinks === 'number'
        ? new Array<UplinkSpec>(parseUplinkCount(spec.uplinks)).fill({})
        : spec.uplinks;
  parseUplinkCount(specs.length);
  const dir = labDir(name);
  const socket = `${dir}/bus/system_bus_socket`;
  return {
    name,
    netnsPrefix: netnsPrefix(name),
    dir,
    device: { netns: `${netnsPrefix(name)}dev`, linksUp: spec.deviceLinksUp ?? true },
    bus: { socket, address: `unix:path=${socket}`, config: `${dir}/bus.conf` },
    internet: INTERNET,
    uplinks: specs.map((s, i) => makeUplink(name, i, s, defaultLease)),
  };
}

/** Every namespace of the lab: the device first, then the ISPs. */
export function allNetns(t: Topology): string[] {
  return [t.device.netns, ...t.uplinks.map((u) => u.ispNetns)];
}

/**
 * `ip -batch -` run in the root namespace: creates the namespaces and the veth pairs. Both
 * ends are created directly inside their namespaces, so nothing ever appears in the root one.
 */
export function rootBatch(t: Topology): string {
  const lines = allNetns(t).map((ns) => `netns add ${ns}`);
  for (const u of t.uplinks) {
    lines.push(`link add ${u.ifname} netns ${t.device.netns} type veth peer name ${u.ispIfname} netns ${u.ispNetns}`);
  }
  return `${lines.join('\n')}\n`;
}

/** `ip -n <device> -batch -` */
export function deviceBatch(t: Topology): string {
  const lines = ['link set lo up'];
  if (t.device.linksUp) for (const u of t.uplinks) lines.push(`link set ${u.ifname} up`);
  return `${lines.join('\n')}\n`;
}

/** `ip -n <isp> -batch -`: gateway addresses (v6 without DAD: the RA must go out at once) and the internet on lo. */
export function ispBatch(t: Topology, u: Uplink): string {
  return (
    [
      'link set lo up',
      `address add ${u.gateway4}/24 dev ${u.ispIfname}`,
      `address add ${u.gateway6}/64 dev ${u.ispIfname} nodad`,
      ...internetAddressCommands(t, 'add'),
      `link set ${u.ispIfname} up`,
    ].join('\n') + '\n'
  );
}

/** The internet's addresses as they sit on every ISP's lo. */
export function internetPrefixes(t: Topology): string[] {
  return [`${t.internet.ipv4}/32`, `${t.internet.ipv6}/128`];
}

/** Adds ('replace': idempotent) or removes the internet addresses on an ISP's lo. */
export function internetAddressCommands(t: Topology, op: 'add' | 'replace' | 'del', prefixes = internetPrefixes(t)): string[] {
  return prefixes.map((p) => `address ${op} ${p} dev lo`);
}

/**
 * The shell script that sets an ISP namespace up; its stdin is ispBatch(). Before the veth
 * goes up:
 * - forwarding on: the ISP is a router. Its neighbour advertisements then carry the Router
 *   flag (a host's NA without it makes the device's kernel drop the RA default route,
 *   rt6_clean_tohost, a few seconds after every RA), and with no upstream it answers
 *   "no route" at once for both families instead of dropping IPv4 silently.
 * - no DAD on the gateway veth: dnsmasq's first RAs must come from a usable link-local
 *   address (RAs from the global one are dropped by the device), or SLAAC waits for the
 *   next unsolicited RA.
 * - addresses survive `lab link … down` (IPv6 ones are flushed on admin-down otherwise).
 * - TX checksum offload off: veth leaves the checksum to a NIC that does not exist, and
 *   raw-socket DHCP clients (udhcpc, ConnMan) drop every offer.
 */
export function ispShellScript(u: Uplink): string {
  return [
    'sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 net.ipv6.conf.all.keep_addr_on_down=1',
    `net.ipv6.conf.${u.ispIfname}.accept_dad=0`,
    `&& ethtool -K ${u.ispIfname} tx off >/dev/null && ip -batch -`,
  ].join(' ');
}

/** `isp1`, `eth1` and `gw1` all name uplink 1. */
export function parseUplinkRef(ref: string, count?: number): number {
  const m = /^(?:isp|eth|gw)(0|[1-9][0-9]?)$/.exec(ref);
  const index = m ? Number(m[1]) : Number.NaN;
  if (!Number.isInteger(index) || index >= MAX_UPLINKS || (count !== undefined && index >= count)) {
    const known = count === undefined ? `isp0..isp${MAX_UPLINKS - 1}` : count === 1 ? 'isp0' : `isp0..isp${count - 1}`;
    throw new LabUsageError(`unknown uplink ${JSON.stringify(ref)} (expected ${known} or eth<i>)`);
  }
  return index;
}

export function parseIspAction(value: string): IspAction {
  if ((ISP_ACTIONS as readonly string[]).includes(value)) return value as IspAction;
  throw new LabUsageError(`unknown isp mode ${JSON.stringify(value)} (expected ${ISP_ACTIONS.join('|')})`);
}

export function parseLinkState(value: string): LinkState {
  if ((LINK_STATES as readonly string[]).includes(value)) return value as LinkState;
  throw new LabUsageError(`unknown link state ${JSON.stringify(value)} (expected up|down)`);
}

// ---------------------------------------------------------------------------------------
// The lab JSON: what `lab up --json` prints and `<dir>/lab.json` holds. Others rely on it.

export interface LabUplinkInfo {
  name: string;
  index: number;
  ifname: string;
  ispNetns: string;
  ispIfname: string;
  gateway4: string;
  gateway6: string;
  prefix4: string;
  prefix6: string;
  dhcpPool4: { start: string; end: string };
  leaseSeconds: number;
}

export interface LabInfo {
  name: string;
  kind: 'netsession-lab';
  dir: string;
  device: { netns: string };
  bus: { address: string; socket: string };
  internet: { ipv4: string; ipv6: string; httpPort: number; echoPort: number };
  uplinks: LabUplinkInfo[];
  daemon?: LabDaemonInfo;
}

export function labInfo(t: Topology): LabInfo {
  return {
    name: t.name,
    kind: 'netsession-lab',
    dir: t.dir,
    device: { netns: t.device.netns },
    bus: { address: t.bus.address, socket: t.bus.socket },
    internet: { ...t.internet },
    uplinks: t.uplinks.map((u) => ({
      name: u.name,
      index: u.index,
      ifname: u.ifname,
      ispNetns: u.ispNetns,
      ispIfname: u.ispIfname,
      gateway4: u.gateway4,
      gateway6: u.gateway6,
      prefix4: u.prefix4,
      prefix6: u.prefix6,
      dhcpPool4: { ...u.dhcpPool4 },
      leaseSeconds: u.leaseSeconds,
    })),
  };
}

/**
 * Reads a lab.json back into a topology (to act on a running lab). Only what the file must
 * hold is checked; the rest is derived again, so a file and the code can never disagree.
 */
export function topologyFromJson(text: string): Topology {
  const data: unknown = JSON.parse(text);
  if (typeof data !== 'object' || data === null) throw new Error('lab.json: not an object');
  const name = (data as { name?: unknown }).name;
  const uplinks = (data as { uplinks?: unknown }).uplinks;
  if (typeof name !== 'string' || !Array.isArray(uplinks)) throw new Error('lab.json: missing name or uplinks');
  const specs: UplinkSpec[] = uplinks.map((u: unknown) => {
    const lease = typeof u === 'object' && u !== null ? (u as { leaseSeconds?: unknown }).leaseSeconds : undefined;
    return typeof lease === 'number' ? { leaseSeconds: lease } : {};
  });
  return resolveTopology({ name, uplinks: specs });
}
