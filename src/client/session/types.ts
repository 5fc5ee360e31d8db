// A session's settings as an application sees them (seed 004 and seed 001, ConnMan's Session
// API): the Update dictionaries unwrapped and typed, the settings an application may choose,
// and their D-Bus encoding. Pure.
import { ClientUsageError } from '../errors.ts';
import type { Extra, IPv4Info, IPv6Info } from '../connman/types.ts';
import { type DbusVariant, isRecord, unwrapDict, variant } from '../variant.ts';

export type SessionState = 'disconnected' | 'connected' | 'online';
export const SESSION_STATES: readonly SessionState[] = ['disconnected', 'connected', 'online'];

export type SessionConnectionType = 'any' | 'local' | 'internet';
export const SESSION_CONNECTION_TYPES: readonly SessionConnectionType[] = ['any', 'local', 'internet'];

/** Bearer names of AllowedBearers; `*` is any bearer at that place of the preference order. */
export type SessionBearer = 'ethernet' | 'wifi' | 'bluetooth' | 'cellular' | 'gadget' | 'vpn' | '*';
export const SESSION_BEARERS: readonly SessionBearer[] = ['ethernet', 'wifi', 'bluetooth', 'cellular', 'gadget', 'vpn', '*'];

export type SessionRoamingPolicy = 'default' | 'always' | 'forbidden' | 'national' | 'international';
export const SESSION_ROAMING_POLICIES: readonly SessionRoamingPolicy[] = ['default', 'always', 'forbidden', 'national', 'international'];

/**
 * Everything a session's Updates tell, merged: ConnMan's eleven keys (always there once the
 * first Update arrived), then seed 001's and SessionMarker (netsessiond reports them to
 * sessions that set one of seed 001's keys). Keys a daemon adds are kept, unwrapped.
 */
export interface SessionSettings extends Extra {
  State: SessionState;
  /** the service's name (display only) */
  Name: string;
  /** the service's IPv4 configuration, {} without a service */
  IPv4: IPv4Info;
  IPv6: IPv6Info;
  /** the service's interface, '' without a service */
  Interface: string;
  /** the service's bearer (ethernet, wifi, …), '' without a service */
  Bearer: string;
  /** '' is what ConnMan reports for an invalid value it accepted */
  ConnectionType: SessionConnectionType | '';
  /** the effective list, in the order that counts (netsessiond: the application's) */
  AllowedBearers: string[];
  /** an interface name, or `*` for any */
  AllowedInterface: string;
  ContextIdentifier: string;
  SourceIPRule: boolean;
  /** the SO_MARK value that routes a socket through this session's service (netsessiond) */
  SessionMarker?: number;
  Priority?: boolean;
  AvoidHandover?: boolean;
  StayConnected?: boolean;
  /** minutes, 0 = off */
  PeriodicConnect?: number;
  /** seconds, 0 = off */
  IdleTimeout?: number;
  EmergencyCall?: boolean;
  RoamingPolicy?: SessionRoamingPolicy;
}

/** What an application may set, at CreateSession and with Change. */
export interface SessionConfig {
  /** preference order; unknown names are dropped by netsessiond (ConnMan refuses them) */
  AllowedBearers?: readonly (SessionBearer | (string & {}))[];
  ConnectionType?: SessionConnectionType;
  /** an interface name; `*` or '' = any */
  AllowedInterface?: string;
  SourceIPRule?: boolean;
  ContextIdentifier?: string;
  /** needs a policy that grants it */
  Priority?: boolean;
  AvoidHandover?: boolean;
  StayConnected?: boolean;
  /** minutes, 0 = off */
  PeriodicConnect?: number;
  /** seconds, 0 = off */
  IdleTimeout?: number;
  /** needs a policy that grants it */
  EmergencyCall?: boolean;
  RoamingPolicy?: SessionRoamingPolicy;
}

export type SessionConfigKey = keyof SessionConfig;

/** The D-Bus type of each setting an application may send. */
export const SESSION_CONFIG_SIGNATURES: { readonly [K in SessionConfigKey]-?: 'as' | 's' | 'b' | 'u' } = {
  AllowedBearers: 'as',
  ConnectionType: 's',
  AllowedInterface: 's',
  SourceIPRule: 'b',
  ContextIdentifier: 's',
  Priority: 'b',
  AvoidHandover: 'b',
  StayConnected: 'b',
  PeriodicConnect: 'u',
  IdleTimeout: 'u',
  EmergencyCall: 'b',
  RoamingPolicy: 's',
};

/** ConnMan knows only these at CreateSession; the others are seed 001's (netsessiond). */
export const CONNMAN_CONFIG_KEYS: readonly SessionConfigKey[] = ['AllowedBearers', 'ConnectionType', 'AllowedInterface', 'SourceIPRule', 'ContextIdentifier'];
export const EXTENDED_CONFIG_KEYS: readonly SessionConfigKey[] = ['Priority', 'AvoidHandover', 'StayConnected', 'PeriodicConnect', 'IdleTimeout', 'EmergencyCall', 'RoamingPolicy'];

/** The order ConnMan sends them in (src/session.c:append_notify); ours follow. */
export const SESSION_KEY_ORDER: readonly string[] = [
  'State',
  'Name',
  'IPv4',
  'IPv6',
  'Interface',
  'Bearer',
  'ConnectionType',
  'AllowedBearers',
  'AllowedInterface',
  'ContextIdentifier',
  'SourceIPRule',
  'SessionMarker',
  'Priority',
  'AvoidHandover',
  'StayConnected',
  'PeriodicConnect',
  'IdleTimeout',
  'EmergencyCall',
  'RoamingPolicy',
];

export function isSessionConfigKey(k: string): k is SessionConfigKey {
  return Object.hasOwn(SESSION_CONFIG_SIGNATURES, k);
}

/** What a session knows before its first Update: nothing connected. */
export function initialSettings(): SessionSettings {
  return {
    State: 'disconnected',
    Name: '',
    IPv4: {},
    IPv6: {},
    Interface: '',
    Bearer: '',
    ConnectionType: 'any',
    AllowedBearers: [],
    AllowedInterface: '*',
    ContextIdentifier: '',
    SourceIPRule: false,
  };
}

const U32_MAX = 0xffffffff;

/**
 * One setting as a D-Bus variant; ClientUsageError for an unknown key or a value of the
 * wrong type (checked before anything is sent). Values are not judged beyond their type:
 * the daemon decides (and says why).
 */
export function sessionConfigVariant(key: string, value: unknown): DbusVariant {
  if (!isSessionConfigKey(key)) {
    throw new ClientUsageError(`${JSON.stringify(key)} is not a session setting an application can set (${Object.keys(SESSION_CONFIG_SIGNATURES).join(', ')})`);
  }
  const sig = SESSION_CONFIG_SIGNATURES[key];
  switch (sig) {
    case 'as':
      if (!Array.isArray(value) || !value.every((x) => typeof x === 'string')) throw new ClientUsageError(`${key} must be a list of strings`);
      return variant.as(value as string[]);
    case 's':
      if (typeof value !== 'string') throw new ClientUsageError(`${key} must be a string`);
      return variant.s(value);
    case 'b':
      if (typeof value !== 'boolean') throw new ClientUsageError(`${key} must be true or false`);
      return variant.b(value);
    case 'u':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > U32_MAX) throw new ClientUsageError(`${key} must be an integer 0..${U32_MAX}`);
      return variant.of('u', value);
  }
}

/** A whole configuration as the a{sv} of CreateSession (keys in ConnMan's order). */
export function sessionConfigDict(config: SessionConfig): Record<string, DbusVariant> {
  if (!isRecord(config)) throw new ClientUsageError('session settings must be an object');
  const out: Record<string, DbusVariant> = {};
  for (const [k, v] of Object.entries(config)) {
    if (v === undefined) continue;
    out[k] = sessionConfigVariant(k, v);
  }
  return out;
}

/** Whether a configuration sets one of seed 001's keys (which makes netsessiond report SessionMarker). */
export function setsExtendedKey(config: SessionConfig): boolean {
  return EXTENDED_CONFIG_KEYS.some((k) => config[k] !== undefined);
}

const str = (v: unknown): string => (typeof v === 'string' ? v : String(v ?? ''));

/**
 * An Update's dictionary, unwrapped and typed. Only the keys it carries are in the result;
 * values of an unexpected type are kept as they came (a daemon must not crash a client).
 */
export function parseSessionUpdate(dict: unknown): Partial<SessionSettings> {
  const raw = unwrapDict(dict);
  const out: Partial<SessionSettings> = {};
  for (const [k, v] of Object.entries(raw)) {
    switch (k) {
      case 'State':
      case 'Name':
      case 'Interface':
      case 'Bearer':
      case 'ConnectionType':
      case 'AllowedInterface':
      case 'ContextIdentifier':
      case 'RoamingPolicy':
        (out as Record<string, unknown>)[k] = str(v);
        break;
      case 'IPv4':
      case 'IPv6':
        (out as Record<string, unknown>)[k] = isRecord(v) ? v : {};
        break;
      case 'AllowedBearers':
        out.AllowedBearers = Array.isArray(v) ? v.map(str) : [];
        break;
      case 'SessionMarker':
      case 'PeriodicConnect':
      case 'IdleTimeout':
        (out as Record<string, unknown>)[k] = typeof v === 'bigint' ? Number(v) : v;
        break;
      default:
        out[k] = v;
    }
  }
  return out;
}

/** Keys in ConnMan's order, then ours, then anything else in the order it came. */
export function orderedKeys(keys: Iterable<string>): string[] {
  const all = [...keys];
  const known = SESSION_KEY_ORDER.filter((k) => all.includes(k));
  return [...known, ...all.filter((k) => !SESSION_KEY_ORDER.includes(k))];
}
