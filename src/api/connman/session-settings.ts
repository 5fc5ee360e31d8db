// Session settings on D-Bus: parsing CreateSession/Change values into a SessionRequest, and
// the Update dictionaries (ConnMan's eleven keys in ConnMan's order, then ours for sessions
// that use them). Pure.
import dbus from 'dbus-next';
import { ipv4Of, ipv6Of, prefixToNetmask } from '../../engine/engine.ts';
import { DEFAULT_REQUEST, effectiveBearers, effectiveInterface, effectiveType, grantedEmergency, sanitizeBearers, sessionState } from '../../engine/sessions.ts';
import type { ConnectionType, RoamingPolicy, Session, SessionRequest } from '../../engine/session-types.ts';
import { ROAMING_POLICIES } from '../../engine/session-types.ts';
import type { Service } from '../../engine/types.ts';
import { ApiError } from '../bus/errors.ts';
import { type Dict, plainDict } from './properties.ts';

const { Variant } = dbus;
type V = InstanceType<typeof Variant>;

const IFNAME = /^[^/\s]{1,15}$/;
const CONNECTION_TYPES: readonly ConnectionType[] = ['any', 'local', 'internet'];
const MAX_BEARERS = 32;
const MAX_STRING = 1024;

/** seed 001's settings: setting one of them makes the session an "extended" one */
const EXTENDED_KEYS = new Set(['Priority', 'AvoidHandover', 'StayConnected', 'PeriodicConnect', 'IdleTimeout', 'EmergencyCall', 'RoamingPolicy']);
const READ_ONLY = new Set(['State', 'Name', 'Bearer', 'Interface', 'IPv4', 'IPv6', 'SessionMarker']);

function isVariant(v: unknown): v is V {
  return typeof v === 'object' && v !== null && 'signature' in v && 'value' in v;
}

function typed<T>(key: string, v: unknown, sig: string): T {
  if (!isVariant(v) || v.signature !== sig) throw new ApiError('InvalidArguments', `${key} must be of type ${sig}`);
  return v.value as T;
}

function str(key: string, v: unknown): string {
  const s = typed<string>(key, v, 's');
  if (s.length > MAX_STRING) throw new ApiError('InvalidArguments', `${key} is too long`);
  return s;
}

function uint(key: string, v: unknown, max: number): number {
  const n = typed<number>(key, v, 'u');
  if (!Number.isInteger(n) || n < 0 || n > max) throw new ApiError('InvalidArguments', `${key} out of range`);
  return n;
}

/**
 * Applies one setting to a request. `creating`: an invalid ConnectionType is ignored (the
 * default stays) instead of refused. Unknown keys, read-only keys and wrong types are
 * InvalidArguments; nothing is half-applied because a new request object is returned.
 */
export function applySetting(req: SessionRequest, key: string, value: unknown, creating: boolean): SessionRequest {
  const r: SessionRequest = { ...req };
  if (EXTENDED_KEYS.has(key)) r.extended = true;
  switch (key) {
    case 'AllowedBearers': {
      const list = typed<unknown[]>(key, value, 'as');
      if (list.length > MAX_BEARERS) throw new ApiError('InvalidArguments', 'AllowedBearers is too long');
      r.allowedBearers = sanitizeBearers(list.map(String));
      return r;
    }
    case 'ConnectionType': {
      const t = str(key, value);
      if ((CONNECTION_TYPES as readonly string[]).includes(t)) r.connectionType = t as ConnectionType;
      else if (!creating) throw new ApiError('InvalidArguments', `ConnectionType must be any, local or internet, not ${JSON.stringify(t.slice(0, 40))}`);
      return r;
    }
    case 'AllowedInterface': {
      const i = str(key, value);
      if (i === '' || i === '*') r.allowedInterface = undefined;
      else if (IFNAME.test(i)) r.allowedInterface = i;
      else throw new ApiError('InvalidArguments', 'AllowedInterface must be an interface name, * or empty');
      return r;
    }
    case 'SourceIPRule':
      r.sourceIpRule = typed<boolean>(key, value, 'b');
      return r;
    case 'ContextIdentifier':
      r.contextIdentifier = str(key, value);
      return r;
    case 'Priority':
      r.priority = typed<boolean>(key, value, 'b');
      return r;
    case 'AvoidHandover':
      r.avoidHandover = typed<boolean>(key, value, 'b');
      return r;
    case 'StayConnected':
      r.stayConnected = typed<boolean>(key, value, 'b');
      return r;
    case 'PeriodicConnect': {
      const m = uint(key, value, 7 * 24 * 60);
      // seed 001: the smallest period is one minute; 0 switches it off
      r.periodicConnect = m;
      return r;
    }
    case 'IdleTimeout':
      r.idleTimeout = uint(key, value, 7 * 24 * 3600);
      return r;
    case 'EmergencyCall':
      r.emergencyCall = typed<boolean>(key, value, 'b');
      return r;
    case 'RoamingPolicy': {
      const p = str(key, value);
      if (!(ROAMING_POLICIES as readonly string[]).includes(p)) throw new ApiError('InvalidArguments', `RoamingPolicy must be one of ${ROAMING_POLICIES.join(', ')}`);
      r.roamingPolicy = p as RoamingPolicy;
      return r;
    }
    default:
      if (READ_ONLY.has(key)) throw new ApiError('InvalidArguments', `${key} is read-only`);
      throw new ApiError('InvalidArguments', `unknown setting ${JSON.stringify(key.slice(0, 60))}`);
  }
}

export function parseCreateSettings(dict: unknown): SessionRequest {
  let r: SessionRequest = { ...DEFAULT_REQUEST };
  for (const [k, v] of Object.entries(plainDict(dict, 'settings'))) r = applySetting(r, k, v, true);
  return r;
}

// ---- Update dictionaries -------------------------------------------------------------------

function ipv4Dict(svc: Service | undefined): Dict {
  const v4 = svc ? ipv4Of(svc) : undefined;
  if (!v4) return {};
  const d: Dict = { Method: new Variant('s', v4.method), Address: new Variant('s', v4.address), Netmask: new Variant('s', prefixToNetmask(v4.prefixLen)) };
  if (v4.gateway) d.Gateway = new Variant('s', v4.gateway);
  return d;
}

function ipv6Dict(svc: Service | undefined, now: number): Dict {
  const v6 = svc ? ipv6Of(svc, now) : undefined;
  const a = v6?.addresses[0];
  if (!v6 || !a) return {};
  const d: Dict = { Method: new Variant('s', v6.method), Address: new Variant('s', a.address), PrefixLength: new Variant('y', a.prefixLen) };
  if (v6.router) d.Gateway = new Variant('s', v6.router);
  d.Privacy = new Variant('s', svc?.settings.ipv6.privacy ?? 'disabled');
  return d;
}

/**
 * Everything a session's Update can carry, in ConnMan's order: State, Name, IPv4, IPv6,
 * Interface, Bearer, ConnectionType, AllowedBearers, AllowedInterface, ContextIdentifier,
 * SourceIPRule; then, for sessions that set a seed-001 key, ours.
 */
export function sessionSettings(s: Session, svc: Service | undefined, now: number, emergency: boolean, part: Dict = servicePart(svc, now)): Dict {
  const d: Dict = {
    State: new Variant('s', sessionState(s, svc)),
    Name: part.Name as V,
    IPv4: part.IPv4 as V,
    IPv6: part.IPv6 as V,
    Interface: part.Interface as V,
    Bearer: part.Bearer as V,
    ConnectionType: new Variant('s', effectiveType(s)),
    AllowedBearers: new Variant('as', effectiveBearers(s)),
    AllowedInterface: new Variant('s', effectiveInterface(s) ?? '*'),
    ContextIdentifier: new Variant('s', s.request.contextIdentifier),
    SourceIPRule: new Variant('b', s.request.sourceIpRule),
  };
  if (s.request.extended) {
    d.SessionMarker = new Variant('u', s.marker);
    d.Priority = new Variant('b', s.request.priority && s.policy?.priority === true);
    d.AvoidHandover = new Variant('b', s.request.avoidHandover);
    d.StayConnected = new Variant('b', s.request.stayConnected);
    d.PeriodicConnect = new Variant('u', s.request.periodicConnect);
    d.IdleTimeout = new Variant('u', s.request.idleTimeout);
    // every extended session learns of an emergency; the emergency session's own flag is its grant
    d.EmergencyCall = new Variant('b', emergency || grantedEmergency(s));
    d.RoamingPolicy = new Variant('s', s.request.roamingPolicy);
  }
  return d;
}

/** What a session's settings take from its service (SERVICE_GROUP): the same for every session on it. */
export function servicePart(svc: Service | undefined, now: number): Dict {
  const connected = svc !== undefined;
  return {
    Name: new Variant('s', connected ? svc.name : ''),
    IPv4: new Variant('a{sv}', connected ? ipv4Dict(svc) : {}),
    IPv6: new Variant('a{sv}', connected ? ipv6Dict(svc, now) : {}),
    Interface: new Variant('s', connected ? svc.ifname : ''),
    Bearer: new Variant('s', connected ? svc.type : ''),
  };
}

/** The service group travels together whenever the service changes (ConnMan). */
export const SERVICE_GROUP = ['Name', 'IPv4', 'IPv6', 'Interface', 'Bearer'] as const;
