// ConnMan's property dictionaries, from the engine's model, and ConnMan property writes
// parsed back into engine commands. Pure (dbus-next's Variant is plain data).
import dbus from 'dbus-next';
import { type Command, domainsOf, ipv4Of, ipv6Of, managerState, nameserversOf, prefixToNetmask } from '../../engine/engine.ts';
import type { EngineState, Ipv4Config, Ipv6Config, Service, Technology } from '../../engine/types.ts';
import { ApiError } from '../bus/errors.ts';

const { Variant } = dbus;
type V = InstanceType<typeof Variant>;
export type Dict = Record<string, V>;

const s = (v: string): V => new Variant('s', v);
const b = (v: boolean): V => new Variant('b', v);
const as = (v: string[]): V => new Variant('as', v);
const dict = (d: Dict): V => new Variant('a{sv}', d);

export const SERVICE_PATH = '/net/connman/service/';
export const TECHNOLOGY_PATH = '/net/connman/technology/';
export const servicePath = (id: string): string => `${SERVICE_PATH}${id}`;
export const technologyPath = (type: string): string => `${TECHNOLOGY_PATH}${type}`;

const TECH_NAMES: Record<string, string> = { ethernet: 'Wired', wifi: 'WiFi', cellular: 'Cellular', bluetooth: 'Bluetooth', vpn: 'VPN', gadget: 'Gadget' };

/** `sessionMode` is reported but never signalled (ConnMan): the change tracking sees it as false always. */
export function managerProperties(state: EngineState, sessionMode = false): Dict {
  return { State: s(managerState(state)), OfflineMode: b(state.offlineMode), SessionMode: b(sessionMode) };
}

export function technologyProperties(state: EngineState, t: Technology): Dict {
  let connected = false;
  for (const x of state.services.values()) if (x.type === t.type && (x.state === 'ready' || x.state === 'online')) connected = true;
  return {
    Name: s(TECH_NAMES[t.type] ?? t.type),
    Type: s(t.type),
    Powered: b(t.powered),
    Connected: b(connected),
    Tethering: b(false),
    TetheringFreq: new Variant('i', 0),
  };
}

function ipv4Dict(sv: Service, connected: boolean): Dict {
  const v4 = connected ? ipv4Of(sv) : undefined;
  if (!v4) return {};
  const d: Dict = { Method: s(v4.method), Address: s(v4.address), Netmask: s(prefixToNetmask(v4.prefixLen)) };
  if (v4.gateway) d.Gateway = s(v4.gateway);
  return d;
}

function ipv4ConfigDict(c: Ipv4Config): Dict {
  const d: Dict = { Method: s(c.method) };
  if (c.method === 'manual') {
    if (c.address) d.Address = s(c.address);
    if (c.netmask) d.Netmask = s(c.netmask);
    if (c.gateway) d.Gateway = s(c.gateway);
  }
  return d;
}

function ipv6Dict(sv: Service, connected: boolean, now: number): Dict {
  const v6 = connected ? ipv6Of(sv, now) : undefined;
  const first = v6?.addresses[0];
  if (!v6 || !first) return {};
  const d: Dict = { Method: s(v6.method), Address: s(first.address), PrefixLength: new Variant('y', first.prefixLen) };
  if (v6.router) d.Gateway = s(v6.router);
  d.Privacy = s(sv.settings.ipv6.privacy ?? 'disabled');
  return d;
}

function ipv6ConfigDict(c: Ipv6Config): Dict {
  const d: Dict = { Method: s(c.method) };
  if (c.method === 'manual') {
    if (c.address) d.Address = s(c.address);
    if (c.prefixLength !== undefined) d.PrefixLength = new Variant('y', c.prefixLength);
    if (c.gateway) d.Gateway = s(c.gateway);
  }
  if (c.method !== 'off') d.Privacy = s(c.privacy ?? 'disabled');
  return d;
}

/** A service's properties, in ConnMan's order (clients print them in this order). */
export function serviceProperties(sv: Service, now: number): Dict {
  const connected = sv.state === 'ready' || sv.state === 'online';
  const d: Dict = { Type: s(sv.type), Security: as([]), State: s(sv.state) };
  if (sv.error) d.Error = s(sv.error);
  d.Favorite = b(sv.settings.favorite);
  d.Immutable = b(sv.settings.immutable);
  d.AutoConnect = b(sv.settings.autoConnect);
  d.Name = s(sv.name);
  d.Ethernet = dict({ Method: s('auto'), Interface: s(sv.ifname), Address: s(sv.mac.toUpperCase()), MTU: new Variant('q', Math.min(sv.mtu, 0xffff)) });
  d.IPv4 = dict(ipv4Dict(sv, connected));
  d['IPv4.Configuration'] = dict(ipv4ConfigDict(sv.settings.ipv4));
  d.IPv6 = dict(ipv6Dict(sv, connected, now));
  d['IPv6.Configuration'] = dict(ipv6ConfigDict(sv.settings.ipv6));
  d.Nameservers = as(connected ? nameserversOf(sv, now) : []);
  d['Nameservers.Configuration'] = as(sv.settings.nameservers);
  d.Timeservers = as(connected ? (sv.settings.timeservers.length > 0 ? sv.settings.timeservers : (sv.lease?.ntp ?? [])) : []);
  d['Timeservers.Configuration'] = as(sv.settings.timeservers);
  d.Domains = as(connected ? domainsOf(sv) : []);
  d['Domains.Configuration'] = as(sv.settings.domains);
  d.Proxy = dict(connected ? { Method: s('direct') } : {});
  d['Proxy.Configuration'] = dict({});
  d.mDNS = b(false);
  d['mDNS.Configuration'] = b(false);
  d.Provider = dict({});
  // netsession: where a captive portal wants the user to log in (not in ConnMan)
  const portal = sv.online.ipv4.portalUrl ?? sv.online.ipv6.portalUrl;
  if (connected && sv.state !== 'online' && portal) d.CaptivePortal = s(portal);
  return d;
}

// ---- writes --------------------------------------------------------------------------

function isVariant(v: unknown): v is V {
  return typeof v === 'object' && v !== null && 'signature' in v && 'value' in v;
}

/** A name from the caller, short enough to go back in an error message (a name may be megabytes long). */
export const quoted = (name: string): string => JSON.stringify(name.length > 60 ? `${name.slice(0, 60)}…` : name);

/**
 * A dictionary from the bus, as dbus-next builds it: a plain object. A key named
 * "__proto__" becomes the object's prototype instead of a key, and would vanish unnoticed:
 * such a dictionary has a key we do not know, and is refused like any other.
 */
export function plainDict(d: unknown, where: string): Record<string, unknown> {
  if (typeof d !== 'object' || d === null || Array.isArray(d)) throw new ApiError('InvalidArguments', `${where} must be a{sv}`);
  if (Object.getPrototypeOf(d) !== Object.prototype) throw new ApiError('InvalidArguments', `${where}: unknown key "__proto__"`);
  return d as Record<string, unknown>;
}

function want<T>(name: string, v: unknown, sig: string): T {
  if (!isVariant(v) || v.signature !== sig) throw new ApiError('InvalidArguments', `${name} must be of type ${sig}`);
  return v.value as T;
}

function stringField(d: Record<string, unknown>, key: string, where: string): string | undefined {
  const v = d[key];
  if (v === undefined) return undefined;
  return want<string>(`${where}.${key}`, v, 's');
}

function parseIpv4Config(d: Record<string, unknown>): Ipv4Config {
  const method = stringField(d, 'Method', 'IPv4.Configuration');
  for (const k of Object.keys(d)) if (!['Method', 'Address', 'Netmask', 'Gateway'].includes(k)) throw new ApiError('InvalidArguments', `IPv4.Configuration: unknown key ${k}`);
  switch (method) {
    case 'dhcp':
    case 'auto': // ConnMan's IPv4LL fallback is not done: auto means DHCP
      return { method: 'dhcp' };
    case 'off':
      return { method: 'off' };
    case 'manual': {
      const c: Ipv4Config = { method: 'manual' };
      const address = stringField(d, 'Address', 'IPv4.Configuration');
      const netmask = stringField(d, 'Netmask', 'IPv4.Configuration');
      const gateway = stringField(d, 'Gateway', 'IPv4.Configuration');
      if (address !== undefined) c.address = address;
      if (netmask !== undefined) c.netmask = netmask;
      if (gateway !== undefined && gateway !== '') c.gateway = gateway;
      return c;
    }
    default:
      throw new ApiError('InvalidArguments', `IPv4.Configuration: Method must be dhcp, manual or off, not ${JSON.stringify(method ?? null)}`);
  }
}

function parseIpv6Config(d: Record<string, unknown>): Ipv6Config {
  const method = stringField(d, 'Method', 'IPv6.Configuration');
  for (const k of Object.keys(d)) if (!['Method', 'Address', 'PrefixLength', 'Gateway', 'Privacy'].includes(k)) throw new ApiError('InvalidArguments', `IPv6.Configuration: unknown key ${k}`);
  const privacy = stringField(d, 'Privacy', 'IPv6.Configuration');
  if (privacy !== undefined && !['disabled', 'enabled', 'preferred', 'prefered'].includes(privacy)) throw new ApiError('InvalidArguments', 'IPv6.Configuration: Privacy must be disabled, enabled or preferred');
  const priv = privacy === undefined ? undefined : privacy === 'prefered' ? 'preferred' : (privacy as Ipv6Config['privacy']);
  switch (method) {
    case 'auto':
      return { method: 'auto', privacy: priv ?? 'disabled' };
    case 'off':
      return { method: 'off' };
    case 'manual': {
      const c: Ipv6Config = { method: 'manual' };
      const address = stringField(d, 'Address', 'IPv6.Configuration');
      const gateway = stringField(d, 'Gateway', 'IPv6.Configuration');
      if (address !== undefined) c.address = address;
      if (gateway !== undefined && gateway !== '') c.gateway = gateway;
      if (d.PrefixLength !== undefined) {
        const v = d.PrefixLength;
        if (!isVariant(v) || (v.signature !== 'y' && v.signature !== 'u' && v.signature !== 'i' && v.signature !== 'q')) throw new ApiError('InvalidArguments', 'IPv6.Configuration.PrefixLength must be a byte');
        c.prefixLength = Number(v.value);
      }
      return c;
    }
    default:
      throw new ApiError('InvalidArguments', `IPv6.Configuration: Method must be auto, manual or off, not ${JSON.stringify(method ?? null)}`);
  }
}

function stringList(name: string, v: unknown): string[] {
  const xs = want<unknown[]>(name, v, 'as');
  if (!Array.isArray(xs) || xs.some((x) => typeof x !== 'string')) throw new ApiError('InvalidArguments', `${name} must be a list of strings`);
  return (xs as string[]).map((x) => x.trim()).filter((x) => x !== '');
}

/** Service.SetProperty(name, value) → an engine command; bad names and types throw ApiError. */
export function serviceSetProperty(id: string, name: string, value: unknown): Command {
  switch (name) {
    case 'AutoConnect':
      return { kind: 'set-autoconnect', id, value: want<boolean>(name, value, 'b') };
    case 'IPv4.Configuration':
      return { kind: 'set-ipv4', id, config: parseIpv4Config(plainDict(want(name, value, 'a{sv}'), name)) };
    case 'IPv6.Configuration':
      return { kind: 'set-ipv6', id, config: parseIpv6Config(plainDict(want(name, value, 'a{sv}'), name)) };
    case 'Nameservers.Configuration':
      return { kind: 'set-nameservers', id, servers: stringList(name, value) };
    case 'Timeservers.Configuration':
      return { kind: 'set-timeservers', id, servers: stringList(name, value) };
    case 'Domains.Configuration':
      return { kind: 'set-domains', id, domains: stringList(name, value) };
    case 'Proxy.Configuration':
    case 'mDNS.Configuration':
      throw new ApiError('NotSupported', `${name} is not supported yet`);
    default:
      throw new ApiError('InvalidProperty', `${quoted(name)} is not a writable service property`);
  }
}

/** Service.ClearProperty(name): only Error can be cleared (ConnMan). */
export function serviceClearProperty(id: string, name: string): Command {
  if (name === 'Error') return { kind: 'clear-error', id };
  throw new ApiError('InvalidProperty', `${quoted(name)} cannot be cleared`);
}

export function managerSetProperty(name: string, value: unknown): Command | { sessionMode: boolean } {
  switch (name) {
    case 'OfflineMode':
      return { kind: 'set-offline', value: want<boolean>(name, value, 'b') };
    case 'SessionMode':
      // kept for compatibility only, as in ConnMan: the Manager object keeps it, nothing acts on it
      return { sessionMode: want<boolean>(name, value, 'b') };
    default:
      throw new ApiError('InvalidProperty', `${quoted(name)} is not a writable manager property`);
  }
}

export function technologySetProperty(type: string, name: string, value: unknown): Command {
  switch (name) {
    case 'Powered':
      return { kind: 'set-powered', type: type as Technology['type'], value: want<boolean>(name, value, 'b') };
    case 'Tethering':
    case 'TetheringIdentifier':
    case 'TetheringPassphrase':
    case 'TetheringFreq':
      throw new ApiError('NotSupported', `${name}: tethering is not supported`);
    default:
      throw new ApiError('InvalidProperty', `${quoted(name)} is not a writable technology property`);
  }
}

/** Deep equality of two variants (to send PropertyChanged only for real changes). */
export function sameVariant(a: V | undefined, x: V | undefined): boolean {
  if (a === x) return true;
  if (!a || !x || a.signature !== x.signature) return false;
  return JSON.stringify(a.value, variantReplacer) === JSON.stringify(x.value, variantReplacer);
}

function variantReplacer(_k: string, v: unknown): unknown {
  return isVariant(v) ? { $sig: v.signature, $v: v.value } : v;
}
