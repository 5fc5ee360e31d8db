// Per-interface sysctls of an uplink: /proc/sys/net/{ipv4,ipv6}/conf/<ifname>/<key>.
//
// /proc/sys/net shows the network namespace of the *thread* that looks a path up, so the
// daemon (running in the device namespace) reads and writes its own. For a namespace we do
// not run in (tests, the lab), the `netns` option enters it with setns for the duration of
// one synchronous open+read/write (inNetns): no `ip netns exec … sysctl` child, and no
// `sysctl` dotted-name parsing, which would turn `eth0.100` into `eth0/100`.
//
// The values we set (configureUplink) and why:
//   ipv6 accept_ra_defrtr=0   the kernel would put RA default routes into `main` only; the
//                             daemon learns routers itself (ipv6/router-listener.ts) and
//                             programs them into the service's own table
//   ipv6 accept_ra_rtr_pref=0 preferences then come from our listener only
//   ipv6 accept_ra_pinfo=1, autoconf=1   keep kernel SLAAC addresses
//   ipv6 accept_ra=1 (2 when forwarding is on: 1 is ignored by a forwarding interface)
//   ipv6 disable_ipv6=0/1     the service's IPv6 method
//   ipv4 rp_filter=2          loose: with several uplinks a reply may come back on any
//                             uplink that has a route to its source
//   ipv4 promote_secondaries=1  deleting the primary address of a prefix (a lease that
//                             ends) keeps the other addresses of that prefix (a static one
//                             beside it) instead of deleting them with it (as NetworkManager)
import { readFileSync, writeFileSync } from 'node:fs';
import { inNetns } from '../kernel/sys/netns.ts';

export type SysctlFamily = 'ipv4' | 'ipv6';

export interface SysctlOptions {
  /** named namespace (/run/netns) to act in; default: the one we run in */
  netns?: string;
}

/** IFNAMSIZ - 1 */
const MAX_IFNAME = 15;

/** Bad interface name or key: nothing was read or written. */
export class SysctlNameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SysctlNameError';
  }
}

/**
 * An interface name the kernel would accept (dev_valid_name), so it cannot point anywhere
 * but at its own conf directory: 1..15 bytes, not `.` or `..`, no `/`, `:`, whitespace or NUL.
 * `all` and `default` are valid conf directories too; `forInterface` refuses them where
 * writing them would change every interface.
 */
export function validateIfname(ifname: string, forInterface = false): string {
  if (
    typeof ifname !== 'string' ||
    ifname.length === 0 ||
    Buffer.byteLength(ifname) > MAX_IFNAME ||
    ifname === '.' ||
    ifname === '..' ||
    /[/:\s\0]/.test(ifname)
  ) {
    throw new SysctlNameError(`bad interface name ${JSON.stringify(ifname)}`);
  }
  if (forInterface && (ifname === 'all' || ifname === 'default')) {
    throw new SysctlNameError(`"${ifname}" is not an interface`);
  }
  return ifname;
}

function validateKey(key: string): string {
  if (!/^[a-z0-9_]{1,64}$/.test(key)) throw new SysctlNameError(`bad sysctl key ${JSON.stringify(key)}`);
  return key;
}

export function sysctlPath(family: SysctlFamily, ifname: string, key: string): string {
  if (family !== 'ipv4' && family !== 'ipv6') throw new SysctlNameError(`bad family ${JSON.stringify(family)}`);
  return `/proc/sys/net/${family}/conf/${validateIfname(ifname)}/${validateKey(key)}`;
}

/** The value (trimmed), or undefined when the interface or key does not exist (ENOENT). */
export function readSysctl(family: SysctlFamily, ifname: string, key: string, opts: SysctlOptions = {}): string | undefined {
  const path = sysctlPath(family, ifname, key);
  try {
    return inNetns(opts.netns, () => readFileSync(path, 'utf8')).trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** Writes one value; throws (ENOENT, EINVAL, EPERM…) when the kernel refuses it. */
export function writeSysctl(family: SysctlFamily, ifname: string, key: string, value: string | number, opts: SysctlOptions = {}): void {
  const path = sysctlPath(family, ifname, key);
  const text = String(value);
  if (!/^-?[0-9]{1,10}$/.test(text)) throw new SysctlNameError(`bad sysctl value ${JSON.stringify(text)}`);
  // procfs takes one write(2); 'r+' never creates a file, whatever the path turned out to be
  inNetns(opts.netns, () => writeFileSync(path, `${text}\n`, { flag: 'r+' }));
}

export interface SysctlSetting {
  family: SysctlFamily;
  key: string;
  value: string;
}

export interface UplinkConfig {
  /** IPv6 on this uplink (SLAAC, RAs learned by the daemon) or off */
  ipv6: boolean;
}

/**
 * The settings of an uplink, in the order to write them (pure). With IPv6 on, the RA
 * settings come before disable_ipv6=0, so the first RA after enabling already finds
 * accept_ra_defrtr=0 and never installs a default route in `main`.
 */
export function uplinkSettings(cfg: UplinkConfig, forwarding: boolean): SysctlSetting[] {
  const v6 = (key: string, value: number): SysctlSetting => ({ family: 'ipv6', key, value: String(value) });
  const out: SysctlSetting[] = [
    { family: 'ipv4', key: 'rp_filter', value: '2' },
    { family: 'ipv4', key: 'promote_secondaries', value: '1' },
  ];
  if (cfg.ipv6) {
    out.push(
      v6('accept_ra_defrtr', 0),
      v6('accept_ra_rtr_pref', 0),
      v6('accept_ra_pinfo', 1),
      v6('autoconf', 1),
      v6('accept_ra', forwarding ? 2 : 1),
      v6('disable_ipv6', 0),
    );
  } else {
    out.push(v6('disable_ipv6', 1));
  }
  return out;
}

/** What was there before configureUplink, to put back with restoreUplink. */
export interface UplinkSnapshot {
  ifname: string;
  /** old values, in the order they were changed; keys the kernel lacks are left out */
  previous: SysctlSetting[];
  /** what configureUplink wrote */
  applied: SysctlSetting[];
}

/**
 * Sets an uplink's sysctls (see the top of this file) and returns the old values. Keys this
 * kernel does not have (accept_ra_rtr_pref without CONFIG_IPV6_ROUTER_PREF) are skipped;
 * any other failure throws after putting back what was already changed.
 */
export function configureUplink(ifname: string, cfg: UplinkConfig, opts: SysctlOptions = {}): UplinkSnapshot {
  validateIfname(ifname, true);
  const forwarding = readSysctl('ipv6', ifname, 'forwarding', opts) === '1';
  const snapshot: UplinkSnapshot = { ifname, previous: [], applied: [] };
  try {
    for (const s of uplinkSettings(cfg, forwarding)) {
      const old = readSysctl(s.family, ifname, s.key, opts);
      if (old === undefined) {
        // the whole interface missing is an error; one unknown key is not
        if (readSysctl(s.family, ifname, s.family === 'ipv4' ? 'forwarding' : 'disable_ipv6', opts) === undefined) {
          throw new Error(`no interface ${ifname} (${s.family}) in ${opts.netns ?? 'this namespace'}`);
        }
        continue;
      }
      if (old !== s.value) writeSysctl(s.family, ifname, s.key, s.value, opts);
      snapshot.previous.push({ ...s, value: old });
      snapshot.applied.push(s);
    }
  } catch (e) {
    restoreUplink(snapshot, opts, true);
    throw e;
  }
  return snapshot;
}

/**
 * Puts back the values configureUplink found, last change first (disable_ipv6 before the RA
 * settings it depends on). An interface that is gone meanwhile is not an error; with
 * `bestEffort` nothing throws, otherwise the first failure is rethrown after trying all.
 */
export function restoreUplink(snapshot: UplinkSnapshot, opts: SysctlOptions = {}, bestEffort = false): void {
  validateIfname(snapshot.ifname, true);
  let first: unknown;
  for (const s of [...snapshot.previous].reverse()) {
    try {
      if (readSysctl(s.family, snapshot.ifname, s.key, opts) === undefined) continue;
      writeSysctl(s.family, snapshot.ifname, s.key, s.value, opts);
    } catch (e) {
      first ??= e;
    }
  }
  if (first !== undefined && !bestEffort) throw first;
}
