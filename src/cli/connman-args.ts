// Validation of the connection-manager commands' arguments, all before any D-Bus call: a
// usage error (exit 2) must leave the daemon untouched. Pure.
import { isIP, isIPv4, isIPv6 } from 'node:net';
import type { IPv4ConfigInput, IPv6ConfigInput } from '../client/index.ts';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

const SERVICE_ID = /^[A-Za-z0-9_]+$/;
const SERVICE_PATH = /^\/net\/connman\/service\/[A-Za-z0-9_]+$/;
/** what the kernel allows in an interface name that is also plausible on a command line */
const IFNAME = /^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,14}$/;
const HOSTNAME = /^(?=.{1,253}$)(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

/** SERVICE: an id, an object path or an interface name. */
export function parseServiceRef(v: string): string {
  if (SERVICE_ID.test(v) || SERVICE_PATH.test(v) || IFNAME.test(v)) return v;
  throw new UsageError(`${JSON.stringify(v)} is not a service id, service object path or interface name`);
}

/** connmanctl's words for booleans. */
export function parseBool(v: string, what: string): boolean {
  const s = v.toLowerCase();
  if (['yes', 'y', 'on', 'true', 't', '1', 'enable'].includes(s)) return true;
  if (['no', 'n', 'off', 'false', 'f', '0', 'disable'].includes(s)) return false;
  throw new UsageError(`${what}: ${JSON.stringify(v)} is not yes or no`);
}

export function parseOnOff(v: string, what: string): boolean {
  if (v === 'on') return true;
  if (v === 'off') return false;
  throw new UsageError(`${what}: ${JSON.stringify(v)} is not on or off`);
}

export function parseTechnology(v: string): string {
  if (/^[a-z][a-z0-9]{0,31}$/.test(v)) return v;
  throw new UsageError(`${JSON.stringify(v)} is not a technology type (ethernet, wifi, …)`);
}

/** A dotted netmask (255.255.255.0) or a prefix length (24 or /24) → dotted netmask. */
export function parseNetmask(v: string): string {
  const m = /^\/?([0-9]{1,2})$/.exec(v);
  if (m) {
    const len = Number(m[1]);
    if (len > 32) throw new UsageError(`netmask /${len} is longer than 32`);
    const bits = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
    return [24, 16, 8, 0].map((s) => (bits >>> s) & 0xff).join('.');
  }
  if (!isIPv4(v)) throw new UsageError(`${JSON.stringify(v)} is not a netmask`);
  const n = v.split('.').reduce((acc, o) => ((acc << 8) | Number(o)) >>> 0, 0);
  const inv = ~n >>> 0;
  // contiguous: the inverted mask plus one is a power of two
  if ((inv & (inv + 1)) !== 0) throw new UsageError(`${v} is not a contiguous netmask`);
  return v;
}

export function parseIpv4Args(args: readonly string[]): IPv4ConfigInput {
  const [method, ...rest] = args;
  switch (method) {
    case 'dhcp':
    case 'off':
      if (rest.length > 0) throw new UsageError(`--ipv4 ${method} takes no more arguments`);
      return { Method: method };
    case 'manual': {
      if (rest.length < 2 || rest.length > 3) throw new UsageError('--ipv4 manual ADDRESS NETMASK [GATEWAY]');
      const [address = '', netmask = '', gateway] = rest;
      if (!isIPv4(address)) throw new UsageError(`--ipv4 manual: ${JSON.stringify(address)} is not an IPv4 address`);
      const mask = parseNetmask(netmask);
      if (gateway !== undefined && !isIPv4(gateway)) throw new UsageError(`--ipv4 manual: gateway ${JSON.stringify(gateway)} is not an IPv4 address`);
      return gateway === undefined ? { Method: 'manual', Address: address, Netmask: mask } : { Method: 'manual', Address: address, Netmask: mask, Gateway: gateway };
    }
    default:
      throw new UsageError(`--ipv4 takes dhcp, manual ADDRESS NETMASK [GATEWAY] or off, not ${JSON.stringify(method ?? '')}`);
  }
}

export function parseIpv6Args(args: readonly string[]): IPv6ConfigInput {
  const [method, ...rest] = args;
  switch (method) {
    case 'auto':
    case 'off':
      if (rest.length > 0) throw new UsageError(`--ipv6 ${method} takes no more arguments`);
      return { Method: method };
    case 'manual': {
      if (rest.length < 2 || rest.length > 3) throw new UsageError('--ipv6 manual ADDRESS PREFIXLEN [GATEWAY]');
      const [address = '', prefix = '', gateway] = rest;
      if (!isIPv6(address)) throw new UsageError(`--ipv6 manual: ${JSON.stringify(address)} is not an IPv6 address`);
      if (!/^[0-9]{1,3}$/.test(prefix) || Number(prefix) > 128) throw new UsageError(`--ipv6 manual: prefix length ${JSON.stringify(prefix)} is not 0..128`);
      if (gateway !== undefined && !isIPv6(gateway)) throw new UsageError(`--ipv6 manual: gateway ${JSON.stringify(gateway)} is not an IPv6 address`);
      const c: IPv6ConfigInput = { Method: 'manual', Address: address, PrefixLength: Number(prefix) };
      return gateway === undefined ? c : { ...c, Gateway: gateway };
    }
    default:
      throw new UsageError(`--ipv6 takes auto, manual ADDRESS PREFIXLEN [GATEWAY] or off, not ${JSON.stringify(method ?? '')}`);
  }
}

/** commander gives `true` for an optional variadic option with no values: the empty list (clears). */
function list(v: string[] | true): string[] {
  return v === true ? [] : v;
}

export function parseNameservers(v: string[] | true): string[] {
  const xs = list(v);
  for (const x of xs) if (isIP(x) === 0) throw new UsageError(`--nameservers: ${JSON.stringify(x)} is not an IP address`);
  return xs;
}

export function parseTimeservers(v: string[] | true): string[] {
  const xs = list(v);
  for (const x of xs) if (isIP(x) === 0 && !HOSTNAME.test(x)) throw new UsageError(`--timeservers: ${JSON.stringify(x)} is not a host name or IP address`);
  return xs;
}

export function parseDomains(v: string[] | true): string[] {
  const xs = list(v);
  for (const x of xs) if (!HOSTNAME.test(x) || isIP(x) !== 0) throw new UsageError(`--domains: ${JSON.stringify(x)} is not a domain name`);
  return xs;
}
