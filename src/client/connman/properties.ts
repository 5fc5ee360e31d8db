// Raw property dictionaries (variants) → the typed views of types.ts, and typed writes →
// variants of the exact signatures ConnMan expects. A known key whose value has the wrong
// type is dropped (and a required one defaulted) so the static type never lies; unknown keys
// are kept as they are.
import { ClientUsageError } from '../errors.ts';
import { type DbusVariant, isRecord, unwrapDict, variant } from '../variant.ts';
import {
  type IPv4ConfigInput,
  type IPv6ConfigInput,
  type ManagerProperties,
  type ManagerState,
  type ProxyConfigInput,
  SERVICE_STATES,
  type ServiceProperties,
  type ServiceSettings,
  type ServiceState,
  type TechnologyProperties,
} from './types.ts';

type Kind = 'string' | 'number' | 'boolean' | 'strings' | 'dict';

function hasKind(v: unknown, k: Kind): boolean {
  switch (k) {
    case 'string':
      return typeof v === 'string';
    case 'number':
      return typeof v === 'number';
    case 'boolean':
      return typeof v === 'boolean';
    case 'strings':
      return Array.isArray(v) && v.every((x) => typeof x === 'string');
    case 'dict':
      return isRecord(v);
  }
}

/** Copies `raw`, dropping known keys whose value is not of their kind. */
function checked(raw: Record<string, unknown>, kinds: Record<string, Kind>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) {
    const kind = kinds[k];
    if (kind === undefined || hasKind(v, kind)) out[k] = v;
  }
  return out;
}

const IPV4: Record<string, Kind> = { Method: 'string', Address: 'string', Netmask: 'string', Gateway: 'string' };
const IPV6: Record<string, Kind> = { Method: 'string', Address: 'string', PrefixLength: 'number', Gateway: 'string', Privacy: 'string' };
const PROXY: Record<string, Kind> = { Method: 'string', URL: 'string', Servers: 'strings', Excludes: 'strings' };
const ETHERNET: Record<string, Kind> = { Method: 'string', Interface: 'string', Address: 'string', MTU: 'number' };
const PROVIDER: Record<string, Kind> = { Host: 'string', Domain: 'string', Name: 'string', Type: 'string' };

const SERVICE: Record<string, Kind> = {
  Type: 'string',
  Security: 'strings',
  State: 'string',
  Error: 'string',
  Strength: 'number',
  Favorite: 'boolean',
  Immutable: 'boolean',
  AutoConnect: 'boolean',
  Roaming: 'boolean',
  Name: 'string',
  Nameservers: 'strings',
  'Nameservers.Configuration': 'strings',
  Timeservers: 'strings',
  'Timeservers.Configuration': 'strings',
  Domains: 'strings',
  'Domains.Configuration': 'strings',
  mDNS: 'boolean',
  'mDNS.Configuration': 'boolean',
  CaptivePortal: 'string',
};
const SERVICE_DICTS: Record<string, Record<string, Kind>> = {
  Ethernet: ETHERNET,
  IPv4: IPV4,
  'IPv4.Configuration': IPV4,
  IPv6: IPV6,
  'IPv6.Configuration': IPV6,
  Proxy: PROXY,
  'Proxy.Configuration': PROXY,
  Provider: PROVIDER,
};

export function isServiceState(v: unknown): v is ServiceState {
  return typeof v === 'string' && (SERVICE_STATES as readonly string[]).includes(v);
}

const MANAGER_STATES: readonly string[] = ['offline', 'idle', 'ready', 'online'];

/** The service properties an unwrapped dict holds, checked, nothing defaulted (signals carry subsets). */
export function parseServiceDict(raw: Record<string, unknown>): Partial<ServiceProperties> {
  const out = checked(raw, SERVICE);
  for (const [k, kinds] of Object.entries(SERVICE_DICTS)) {
    if (k in raw) {
      const v = raw[k];
      if (isRecord(v)) out[k] = checked(v, kinds);
      else delete out[k];
    }
  }
  if ('State' in out && !isServiceState(out.State)) delete out.State;
  return out as Partial<ServiceProperties>;
}

/** A full service view: ConnMan's always-present keys defaulted when a daemon leaves them out. */
export function serviceProperties(v: unknown): ServiceProperties {
  const p = parseServiceDict(unwrapDict(v));
  return {
    ...p,
    Type: p.Type ?? '',
    Security: p.Security ?? [],
    State: p.State ?? 'idle',
    Favorite: p.Favorite ?? false,
    Immutable: p.Immutable ?? false,
    AutoConnect: p.AutoConnect ?? false,
    Name: p.Name ?? '',
    Ethernet: p.Ethernet ?? {},
    IPv4: p.IPv4 ?? {},
    'IPv4.Configuration': p['IPv4.Configuration'] ?? {},
    IPv6: p.IPv6 ?? {},
    'IPv6.Configuration': p['IPv6.Configuration'] ?? {},
    Nameservers: p.Nameservers ?? [],
    'Nameservers.Configuration': p['Nameservers.Configuration'] ?? [],
    Timeservers: p.Timeservers ?? [],
    'Timeservers.Configuration': p['Timeservers.Configuration'] ?? [],
    Domains: p.Domains ?? [],
    'Domains.Configuration': p['Domains.Configuration'] ?? [],
    Proxy: p.Proxy ?? {},
    'Proxy.Configuration': p['Proxy.Configuration'] ?? {},
  };
}

/** A partial service dict (ServicesChanged); undefined when it is empty (an unchanged service). */
export function partialServiceProperties(v: unknown): Partial<ServiceProperties> | undefined {
  const raw = unwrapDict(v);
  return Object.keys(raw).length === 0 ? undefined : parseServiceDict(raw);
}

export function managerProperties(v: unknown): ManagerProperties {
  const p = checked(unwrapDict(v), { State: 'string', OfflineMode: 'boolean', SessionMode: 'boolean' });
  const state = MANAGER_STATES.includes(String(p.State)) ? (p.State as ManagerState) : 'idle';
  return { ...p, State: state, OfflineMode: p.OfflineMode === true, SessionMode: p.SessionMode === true };
}

export function technologyProperties(v: unknown): TechnologyProperties {
  const p = checked(unwrapDict(v), {
    Name: 'string',
    Type: 'string',
    Powered: 'boolean',
    Connected: 'boolean',
    Tethering: 'boolean',
    TetheringIdentifier: 'string',
    TetheringPassphrase: 'string',
    TetheringFreq: 'number',
  });
  return {
    ...p,
    Name: typeof p.Name === 'string' ? p.Name : '',
    Type: typeof p.Type === 'string' ? p.Type : '',
    Powered: p.Powered === true,
    Connected: p.Connected === true,
    Tethering: p.Tethering === true,
  };
}

// ---- writes ---------------------------------------------------------------------------

function ipv4Variant(c: IPv4ConfigInput): DbusVariant {
  const d: Record<string, DbusVariant> = { Method: variant.s(c.Method) };
  if (c.Method === 'manual') {
    d.Address = variant.s(c.Address);
    d.Netmask = variant.s(c.Netmask);
    if (c.Gateway !== undefined) d.Gateway = variant.s(c.Gateway);
  }
  return variant.dict(d);
}

function ipv6Variant(c: IPv6ConfigInput): DbusVariant {
  const d: Record<string, DbusVariant> = { Method: variant.s(c.Method) };
  if (c.Method === 'manual') {
    d.Address = variant.s(c.Address);
    // ConnMan reads PrefixLength as a byte (connmanctl sends 'y')
    if (!Number.isInteger(c.PrefixLength) || c.PrefixLength < 0 || c.PrefixLength > 128) throw new ClientUsageError(`IPv6 prefix length ${c.PrefixLength} is not 0..128`);
    d.PrefixLength = variant.y(c.PrefixLength);
    if (c.Gateway !== undefined) d.Gateway = variant.s(c.Gateway);
  } else if (c.Method === 'auto' && c.Privacy !== undefined) d.Privacy = variant.s(c.Privacy);
  return variant.dict(d);
}

function proxyVariant(c: ProxyConfigInput): DbusVariant {
  const d: Record<string, DbusVariant> = { Method: variant.s(c.Method) };
  if (c.Method === 'auto' && c.URL !== undefined) d.URL = variant.s(c.URL);
  if (c.Method === 'manual') {
    d.Servers = variant.as(c.Servers);
    if (c.Excludes !== undefined) d.Excludes = variant.as(c.Excludes);
  }
  return variant.dict(d);
}

/** The variant for a writable service property, with ConnMan's signature. */
export function serviceSettingVariant<K extends keyof ServiceSettings>(name: K, value: ServiceSettings[K]): DbusVariant {
  // the casts narrow a generic value whose type `name` already fixes
  switch (name) {
    case 'AutoConnect':
    case 'mDNS.Configuration':
      return variant.b(value as boolean);
    case 'IPv4.Configuration':
      return ipv4Variant(value as IPv4ConfigInput);
    case 'IPv6.Configuration':
      return ipv6Variant(value as IPv6ConfigInput);
    case 'Proxy.Configuration':
      return proxyVariant(value as ProxyConfigInput);
    case 'Nameservers.Configuration':
    case 'Timeservers.Configuration':
    case 'Domains.Configuration':
      return variant.as(value as string[]);
    default:
      throw new ClientUsageError(`${String(name)} is not a writable service property`);
  }
}
