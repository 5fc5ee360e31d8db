// D-Bus fuzzing of netsessiond: a seeded generator of calls to every method of our objects
// (Manager, Technology, Service, Session, and what a bus object is asked besides: Introspect,
// Properties, Peer), with valid and invalid signatures, wrong variant types, unknown and
// read-only keys, huge strings and arrays, odd object paths, duplicate notifiers, other
// clients' sessions and sessions of clients that left. FUZZ_CALLS calls (default 100,000)
// go pipelined, 64 in flight, from 8 connections (one never answers Update, one has no
// notifier object; every 12,500 calls one connection leaves in the middle of its calls and a
// new one takes its place).
//
// Every reply must be a method return or one of the errors this call may get (a model of
// the API: e.g. a wrong signature is UnknownMethod, a bad setting InvalidArguments, another
// client's session PermissionDenied); anything else, a call without an answer, or the
// daemon gone, fails. The daemon must answer Manager.GetProperties promptly throughout.
// Afterwards the kernel must hold exactly what the sessions that survive need (and nothing
// once they end), no agent may stay registered for a client that left, the services'
// settings must be untouched and the daemon's log free of errors.
//
// Replay: FUZZ_SEED=<the printed seed> (and FUZZ_CALLS); call #i is generated from (seed, i)
// alone (only the unique bus names in its paths differ from run to run), so a mismatch
// report names the call to look at.
//
// Left out on purpose: calls that would change the network for real (Service.Disconnect of a
// live service, Technology Powered=false, OfflineMode=true, AutoConnect=false, valid IP
// configurations, MoveBefore/MoveAfter between services); SessionMode is set back at the end.
// Object paths the wire refuses (a trailing slash, an empty element) go as strings, and once
// per churn as a real object path on a connection about to leave. A dict key "constructor"
// is not sent: dbus-next (the client) cannot marshal it.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import dbus, { type MessageBus } from 'dbus-next';
import { splitSignature } from '../../src/api/bus/object-tree.ts';
import { labDown, labUp } from '../../src/lab/lab.ts';
import type { LabInfo } from '../../src/lab/topology.ts';
import { unwrap, waitFor } from '../helpers/connman.ts';
import {
  childPids,
  closeBus,
  diffSnapshots,
  fdCount,
  fileSize,
  isAlive,
  kernelSnapshot,
  logProblems,
  openBus,
  rssKiB,
  servicesSettled,
  sessionObjects,
  sessionPathOf,
  stableSnapshot,
  uniqueName,
} from '../helpers/faults.ts';
import { isRoot } from '../helpers/netns.ts';
import { Random } from '../helpers/random.ts';

const skip = !isRoot() && 'needs root (network namespaces)';
const NAME = `fz${process.pid % 1000}`;
const SEED = Number(process.env.FUZZ_SEED ?? (Date.now() % 2 ** 31));
const CALLS = Number(process.env.FUZZ_CALLS ?? 100_000);
const IN_FLIGHT = 64;
const SLOTS = 8;
/** slot 6 never answers Update; slot 7 has no notifier objects at all */
const SILENT_SLOT = 6;
const BARE_SLOT = 7;
const CHURN_EVERY = 12_500;
const PROBE_EVERY = 5_000;
/** Manager.GetProperties must answer within this, even with 64 calls queued before it */
const PROBE_BOUND_MS = 5_000;
/** longer than the lab bus's reply_timeout (25 s): the bus says NoReply first */
const CALL_TIMEOUT_MS = 30_000;
const HUGE_P = 0.002;

const V = dbus.Variant;
type Variant = InstanceType<typeof V>;
const RET = 'return';
const C = (n: string): string => `net.connman.Error.${n}`;
const D = (n: string): string => `org.freedesktop.DBus.Error.${n}`;
const IA = C('InvalidArguments');
const UNKNOWN_METHOD = D('UnknownMethod');
const UNKNOWN_OBJECT = D('UnknownObject');
const CONNMAN_ERRORS = [
  'InvalidArguments', 'InvalidProperty', 'InvalidService', 'NoCarrier', 'NotSupported', 'NotConnected', 'AlreadyConnected', 'InProgress', 'NotFound',
  'PermissionDenied', 'AlreadyDisabled', 'AlreadyEnabled', 'AlreadyExists', 'NotRegistered', 'NotUnique', 'OperationAborted', 'OperationTimeout', 'Failed',
].map(C);
/** whatever the call: only these (or a method return) are well-formed answers of a healthy daemon */
const ALLOWED = new Set([RET, ...CONNMAN_ERRORS, UNKNOWN_METHOD, UNKNOWN_OBJECT, D('InvalidArgs'), D('UnknownInterface'), D('UnknownProperty')]);

const MANAGER = 'net.connman.Manager';
const SESSION = 'net.connman.Session';
const SERVICE = 'net.connman.Service';
const TECHNOLOGY = 'net.connman.Technology';
const KNOWN_KEYS = ['AllowedBearers', 'ConnectionType', 'AllowedInterface', 'SourceIPRule', 'ContextIdentifier', 'Priority', 'AvoidHandover', 'StayConnected', 'PeriodicConnect', 'IdleTimeout', 'EmergencyCall', 'RoamingPolicy'];
const READ_ONLY_KEYS = ['State', 'Name', 'Bearer', 'Interface', 'IPv4', 'IPv6', 'SessionMarker'];
const NOTIFIERS = [...Array.from({ length: 24 }, (_, k) => `/n${k}`), '/app/x', '/a/b/c/d', `/long_${'x'.repeat(240)}`];
/** notifiers CreateSession must refuse: '/' (ConnMan aborts on it) and paths over 255 characters */
const BAD_NOTIFIERS = ['/', `/${'y'.repeat(300)}`, `/${'z/'.repeat(200)}z`];
const SIGS = ['', 's', 'sv', 'o', 'a{sv}o', 'a{sv}', 'ss', 'sb', 'ouu', 'as', 'u', 'v', 'ay', 'a{sv}oo', '(sv)', 'a{ss}o', 'av', 'oa{sv}', 'sa{sv}o', 'aa{sv}', 'a{sv}s', 'i', 'b'];
const VARIANT_SIGS = ['s', 'b', 'u', 'i', 'y', 'n', 'q', 'd', 'o', 'g', 'as', 'ai', 'ab', 'ay', 'a{sv}', 'a{ss}', 'v', '(si)', 'a(sv)', 'aas'];
const FLAT_SIGS = ['s', 'b', 'u', 'i', 'y', 'o', 'as'];
const STRINGS = [
  '', 'ethernet', 'wifi', '*', 'eth0', 'eth1', 'eth9', 'any', 'local', 'internet', 'default', 'always', 'online', 'x/y', ' ', '\t', 'eth0 ', '☃', '\u{1F600}',
  'a'.repeat(15), 'a'.repeat(16), 'a'.repeat(1024), 'a'.repeat(1025), 'null', '0', '-1', '../../etc/passwd', '%s%s%n', '<node name="x"/>', '"q"', '\u200b', '\ud800', 'Error',
  // object paths where strings go (the wire refuses them as paths): trailing slashes, empty elements
  '/', '/n0/', '//', '/sessions/', '/net/connman/service/', 'relative/path',
];
const PATHS = ['/', '/a', '/sessions', '/sessions/_1_1/x', '/net', '/net/connman', '/net/connman/service', '/net/connman/service/x', '/net/connman/technology/ethernet', '/net/connman/technology/wifi', `/${'p/'.repeat(500)}p`];
const BEARERS = ['ethernet', 'wifi', 'bluetooth', 'cellular', 'gadget', 'vpn', '*', '', 'foo', 'p2p', 'gps', 'Ethernet'];
const ROAMING = ['default', 'always', 'forbidden', 'national', 'international', '', 'roaming', 'ALWAYS'];
const IFNAME = /^[^/\s]{1,15}$/;

// ---- values -----------------------------------------------------------------------------

/** the call being generated may carry one huge string or array (HUGE_P of the calls) */
let hugeBudget = 0;
let hugeMade = 0;
function huge(r: Random): boolean {
  if (hugeBudget === 0 || !r.chance(0.3)) return false;
  hugeBudget--;
  hugeMade++;
  return true;
}

function randString(r: Random): string {
  if (huge(r)) return 'h'.repeat(r.int(65_536, 4_000_000));
  if (r.chance(0.5)) return r.pick(STRINGS);
  const ranges: [number, number][] = [[0x20, 0x7e], [0x01, 0x1f], [0xa0, 0x2ff], [0x3000, 0x9fff], [0x1f300, 0x1f6ff]];
  let s = '';
  for (let k = r.int(0, 40); k > 0; k--) {
    const [lo, hi] = r.pick(ranges);
    s += String.fromCodePoint(r.int(lo, hi));
  }
  return s;
}

function randPath(r: Random): string {
  return r.chance(0.05) ? `/${Array.from({ length: r.int(100, 5000) }, () => 'q').join('/')}` : r.pick(PATHS);
}

function randValue(r: Random, sig: string, depth: number): unknown {
  switch (sig[0]) {
    case 's':
      return randString(r);
    case 'o':
      return randPath(r);
    case 'g':
      return r.pick(['', 's', 'a{sv}', '(ii)', 'v', 'aaaai']);
    case 'b':
      return r.chance(0.5);
    case 'y':
      return r.int(0, 255);
    case 'n':
      return r.int(-32768, 32767);
    case 'q':
      return r.int(0, 65535);
    case 'i':
      return r.int(-(2 ** 31), 2 ** 31 - 1);
    case 'u':
      return r.chance(0.5) ? r.pick([0, 1, 59, 60, 10080, 10081, 604800, 604801, 2 ** 32 - 1]) : r.int(0, 2 ** 32 - 1);
    case 'd':
      return r.pick([0, -0, 1.5, 1e308, -1e-308, 60]);
    case 'v':
      return randVariant(r, depth);
    case '(':
      return splitSignature(sig.slice(1, -1)).map((s) => randValue(r, s, depth + 1));
    case 'a': {
      const n = huge(r) ? r.int(1000, 20_000) : r.int(0, depth > 2 ? 2 : 6);
      if (sig === 'ay') return Buffer.from(Array.from({ length: n }, () => r.int(0, 255)));
      if (sig.startsWith('a{')) {
        const d: Record<string, unknown> = {};
        for (let k = 0; k < n; k++) d[r.chance(0.3) ? r.pick(KNOWN_KEYS) : randString(r).slice(0, 100)] = randValue(r, sig.slice(3, -1), depth + 1);
        return d;
      }
      return Array.from({ length: n }, () => randValue(r, sig.slice(1), depth + 1));
    }
    default:
      throw new Error(`generator: no values for ${sig}`);
  }
}

function randVariant(r: Random, depth = 0, not?: string): Variant {
  for (;;) {
    const sig = r.pick(depth > 2 ? FLAT_SIGS : VARIANT_SIGS);
    if (sig !== not) return new V(sig, randValue(r, sig, depth + 1));
  }
}

/** A random body of a signature (what a confused or hostile client sends). */
const bodyOf = (r: Random, sig: string): unknown[] => splitSignature(sig).map((s) => randValue(r, s, 0));

// ---- session settings -----------------------------------------------------------------

type Verdict = 'ok' | 'grant' | 'bad';
const worst = (a: Verdict, b: Verdict): Verdict => (a === 'bad' || b === 'bad' ? 'bad' : a === 'grant' || b === 'grant' ? 'grant' : 'ok');

/** A value for one session setting, and whether the daemon must take it ('ok'), refuse it for want of a policy ('grant') or refuse it ('bad'). */
function setting(r: Random, key: string, creating: boolean): [Variant, Verdict] {
  const types: Record<string, string> = {
    AllowedBearers: 'as', ConnectionType: 's', AllowedInterface: 's', SourceIPRule: 'b', ContextIdentifier: 's', Priority: 'b', AvoidHandover: 'b',
    StayConnected: 'b', PeriodicConnect: 'u', IdleTimeout: 'u', EmergencyCall: 'b', RoamingPolicy: 's',
  };
  const type = Object.hasOwn(types, key) ? types[key] : undefined;
  if (!type) return [randVariant(r), 'bad']; // read-only or unknown
  if (r.chance(0.2)) return [randVariant(r, 0, type), 'bad'];
  const longStr = (s: string): Verdict => (s.length > 1024 ? 'bad' : 'ok');
  switch (key) {
    case 'AllowedBearers': {
      const n = huge(r) ? r.int(33, 20_000) : r.chance(0.05) ? r.int(33, 64) : r.int(0, 6);
      return [new V('as', Array.from({ length: n }, () => r.pick(BEARERS))), n > 32 ? 'bad' : 'ok'];
    }
    case 'ConnectionType': {
      const s = r.chance(0.7) ? r.pick(['any', 'local', 'internet']) : randString(r);
      return [new V('s', s), creating ? longStr(s) : ['any', 'local', 'internet'].includes(s) ? 'ok' : 'bad'];
    }
    case 'AllowedInterface': {
      const s = r.chance(0.7) ? r.pick(['', '*', 'eth0', 'eth1', 'eth2', 'eth9', 'lo', 'abcdefghijklmno', 'abcdefghijklmnop', 'eth0/1', 'eth 0', '☃']) : randString(r);
      return [new V('s', s), s === '' || s === '*' || IFNAME.test(s) ? 'ok' : 'bad'];
    }
    case 'ContextIdentifier': {
      const s = randString(r);
      return [new V('s', s), longStr(s)];
    }
    case 'Priority':
    case 'EmergencyCall': {
      const b = r.chance(0.3);
      return [new V('b', b), b ? 'grant' : 'ok'];
    }
    case 'SourceIPRule':
    case 'AvoidHandover':
    case 'StayConnected':
      return [new V('b', r.chance(0.5)), 'ok'];
    case 'PeriodicConnect': {
      const n = r.pick([0, 1, 5, 60, 10080, 10081, 2 ** 32 - 1]);
      return [new V('u', n), n <= 10080 ? 'ok' : 'bad'];
    }
    case 'IdleTimeout': {
      const n = r.pick([0, 1, 30, 604800, 604801, 2 ** 32 - 1]);
      return [new V('u', n), n <= 604800 ? 'ok' : 'bad'];
    }
    default: {
      const s = r.chance(0.8) ? r.pick(ROAMING) : randString(r);
      return [new V('s', s), s === 'always' ? 'grant' : ['default', 'forbidden', 'national', 'international'].includes(s) ? 'ok' : 'bad'];
    }
  }
}

function settingKey(r: Random): string {
  const x = r.next();
  return x < 0.8 ? r.pick(KNOWN_KEYS) : x < 0.88 ? r.pick(READ_ONLY_KEYS) : x < 0.92 ? r.pick(['__proto__', 'toString', 'hasOwnProperty', 'allowedbearers', 'AllowedBearers ']) : randString(r);
}

function settingsDict(r: Random): [Record<string, Variant>, Verdict] {
  // a later duplicate key replaces an earlier one on the wire too (a dict): only the last counts
  const entries = new Map<string, [Variant, Verdict]>();
  const n = huge(r) ? r.int(1000, 10_000) : r.int(0, 5);
  for (let k = 0; k < n; k++) {
    const key = settingKey(r);
    entries.set(key, setting(r, key, true));
  }
  let verdict: Verdict = 'ok';
  for (const [, v] of entries.values()) verdict = worst(verdict, v);
  // fromEntries: a key named __proto__ is an own key like any other
  return [Object.fromEntries([...entries].map(([k, [v]]) => [k, v])), verdict];
}

// ---- the calls --------------------------------------------------------------------------

interface Ctx {
  /** unique names of the fuzzing connections, per slot (current) */
  names: string[];
  /** the anchor client: its sessions live through the whole run */
  anchorOwner: string;
  anchors: string[];
  /** unique names of connections that left */
  gone: string[];
  services: string[];
  /** each service's *.Configuration lists as they were: writing them back changes nothing */
  configs: Map<string, Record<string, string[]>>;
}

interface Call {
  slot: number;
  path: string;
  iface?: string;
  member: string;
  signature: string;
  body: unknown[];
  /** the answers this call may get */
  expect: readonly string[];
  label: string;
  noReply?: boolean;
}

const ownPath = (ctx: Ctx, slot: number, r: Random): string => sessionPathOf(ctx.names[slot]!, r.pick(NOTIFIERS));

function foreignSession(ctx: Ctx, slot: number, r: Random): { path: string; exists: 'maybe' | 'yes' | 'no' } {
  const x = r.next();
  if (x < 0.3) return { path: sessionPathOf(ctx.anchorOwner, r.pick(ctx.anchors)), exists: 'yes' };
  if (x < 0.45 && ctx.gone.length > 0) return { path: sessionPathOf(r.pick(ctx.gone), r.pick(NOTIFIERS)), exists: 'no' };
  let other = r.int(0, SLOTS - 2);
  if (other >= slot) other++;
  return { path: ownPath(ctx, other, r), exists: 'maybe' };
}

function managerCall(r: Random, _ctx: Ctx, slot: number): Omit<Call, 'slot'> {
  const base = { path: '/', iface: MANAGER };
  const x = r.next();
  if (x < 0.35) {
    const member = r.pick(['GetProperties', 'GetServices', 'GetTechnologies', 'GetPeers', 'GetTetheringClients']);
    return { ...base, member, signature: '', body: [], expect: [RET], label: `Manager.${member}` };
  }
  if (x < 0.65) {
    const name = r.chance(0.7) ? r.pick(['SessionMode', 'OfflineMode']) : r.chance(0.5) ? r.pick(['State', 'Powered', 'sessionmode', '']) : randString(r);
    let value: Variant;
    let expect: string[];
    if (name === 'SessionMode' || name === 'OfflineMode') {
      // OfflineMode=true would take the uplinks down: only its no-op value is sent
      value = r.chance(0.5) ? new V('b', name === 'SessionMode' ? r.chance(0.5) : false) : randVariant(r, 0, 'b');
      expect = value.signature === 'b' ? [RET] : [IA];
    } else {
      value = randVariant(r);
      expect = [C('InvalidProperty')];
    }
    return { ...base, member: 'SetProperty', signature: 'sv', body: [name, value], expect, label: 'Manager.SetProperty' };
  }
  if (x < 0.8) {
    if (r.chance(0.5)) {
      const path = r.chance(0.2) ? '/' : r.chance(0.5) ? `/fz/agent${slot}` : randPath(r);
      return { ...base, member: 'RegisterAgent', signature: 'o', body: [path], expect: path === '/' ? [IA] : [RET, C('AlreadyExists')], label: 'Manager.RegisterAgent' };
    }
    const path = r.chance(0.5) ? `/fz/agent${r.int(0, SLOTS - 1)}` : randPath(r);
    return { ...base, member: 'UnregisterAgent', signature: 'o', body: [path], expect: [RET, C('NotRegistered'), C('PermissionDenied')], label: 'Manager.UnregisterAgent' };
  }
  if (x < 0.88) {
    if (r.chance(0.5)) return { ...base, member: 'RegisterCounter', signature: 'ouu', body: [randPath(r), r.int(0, 2 ** 32 - 1), r.int(0, 100)], expect: [C('NotSupported')], label: 'Manager.RegisterCounter' };
    return { ...base, member: 'UnregisterCounter', signature: 'o', body: [randPath(r)], expect: [C('NotSupported')], label: 'Manager.UnregisterCounter' };
  }
  // methods ConnMan has and we do not, and made-up ones
  const member = r.pick(['RequestPrivateNetwork', 'ReleasePrivateNetwork', 'ConnectProvider', 'RemoveProvider', 'RegisterPeerService', 'Frobnicate', `M${'m'.repeat(r.int(0, 200))}`]);
  const signature = r.pick(SIGS);
  return { ...base, member, signature, body: bodyOf(r, signature), expect: [UNKNOWN_METHOD], label: 'Manager.<unknown>' };
}

function createCall(r: Random, _ctx: Ctx, _slot: number): Omit<Call, 'slot'> {
  const [settings, verdict] = settingsDict(r);
  const badNotifier = r.chance(0.05);
  const notifier = badNotifier ? r.pick(BAD_NOTIFIERS) : r.pick(NOTIFIERS);
  const expect = badNotifier || verdict === 'bad' ? [IA] : verdict === 'grant' ? [C('PermissionDenied'), C('AlreadyExists')] : [RET, C('AlreadyExists')];
  return { path: '/', iface: MANAGER, member: 'CreateSession', signature: 'a{sv}o', body: [settings, notifier], expect, label: 'Manager.CreateSession' };
}

function destroySessionCall(r: Random, ctx: Ctx, slot: number): Omit<Call, 'slot'> {
  const base = { path: '/', iface: MANAGER, member: 'DestroySession', signature: 'o', label: 'Manager.DestroySession' };
  const x = r.next();
  if (x < 0.6) return { ...base, body: [ownPath(ctx, slot, r)], expect: [RET, IA] };
  if (x < 0.85) {
    const f = foreignSession(ctx, slot, r);
    return { ...base, body: [f.path], expect: f.exists === 'yes' ? [C('PermissionDenied')] : f.exists === 'no' ? [IA] : [C('PermissionDenied'), IA] };
  }
  return { ...base, body: [randPath(r)], expect: [IA] };
}

function sessionCall(r: Random, ctx: Ctx, slot: number, foreign: boolean): Omit<Call, 'slot'> {
  const f = foreign ? foreignSession(ctx, slot, r) : { path: ownPath(ctx, slot, r), exists: 'maybe' as const };
  const member = r.pick(['Change', 'Change', 'Change', 'Connect', 'Disconnect', 'Destroy']);
  const gone = f.exists === 'no' ? [UNKNOWN_OBJECT] : f.exists === 'maybe' ? [UNKNOWN_OBJECT, C('NotFound')] : [];
  const base = { path: f.path, iface: SESSION, member, label: `Session.${member}${foreign ? ' (foreign)' : ''}` };
  if (f.exists === 'no') {
    const signature = member === 'Change' ? 'sv' : '';
    return { ...base, signature, body: bodyOf(r, signature), expect: [UNKNOWN_OBJECT] };
  }
  if (member !== 'Change') return { ...base, signature: '', body: [], expect: foreign ? [C('PermissionDenied'), ...gone] : [RET, ...gone] };
  const key = settingKey(r);
  const [value, verdict] = setting(r, key, false);
  const expect = foreign ? [C('PermissionDenied')] : verdict === 'bad' ? [IA] : verdict === 'grant' ? [C('PermissionDenied')] : [RET];
  return { ...base, signature: 'sv', body: [key, value], expect: [...expect, ...gone] };
}

function ipConfig(r: Random, v6: boolean): Record<string, Variant> {
  // every one of these is refused by the parser: the service's configuration never changes
  const methods = v6 ? ['auto', 'manual', 'off'] : ['dhcp', 'auto', 'manual', 'off'];
  switch (r.int(0, 4)) {
    case 0:
      return { Method: new V('s', r.pick(['', 'DHCP', 'fixed', 'static', '6to4', randString(r)].filter((m) => !methods.includes(m)))) };
    case 1:
      return {};
    case 2:
      return { Method: new V('s', r.pick(methods)), [r.pick(['Bogus', 'address', 'Netmask ', '__proto__', randString(r)].filter((k) => !['Method', 'Address', 'Netmask', 'Gateway', 'PrefixLength', 'Privacy'].includes(k)))]: randVariant(r) };
    case 3:
      return { Method: randVariant(r, 0, 's') };
    default:
      return v6 ? { Method: new V('s', r.pick(['auto', 'manual'])), Privacy: new V('s', r.pick(['on', 'off', 'preferred ', randString(r)].filter((p) => !['disabled', 'enabled', 'preferred', 'prefered'].includes(p)))) } : { Method: new V('s', 'manual'), Address: randVariant(r, 0, 's') };
  }
}

function serviceCall(r: Random, ctx: Ctx): Omit<Call, 'slot'> {
  if (r.chance(0.05)) {
    // a service that does not exist: every method, Disconnect too
    const member = r.pick(['GetProperties', 'SetProperty', 'Connect', 'Disconnect', 'Remove', 'MoveBefore']);
    const signature = { SetProperty: 'sv', MoveBefore: 'o' }[member as 'SetProperty'] ?? '';
    return { path: '/net/connman/service/ethernet_000000000000_cable', iface: SERVICE, member, signature, body: bodyOf(r, signature), expect: [UNKNOWN_OBJECT], label: 'Service.<missing>' };
  }
  const path = r.pick(ctx.services);
  const base = { path, iface: SERVICE };
  const x = r.next();
  if (x < 0.1) return { ...base, member: 'GetProperties', signature: '', body: [], expect: [RET], label: 'Service.GetProperties' };
  if (x < 0.6) {
    const name = r.pick(['AutoConnect', 'IPv4.Configuration', 'IPv6.Configuration', 'Nameservers.Configuration', 'Timeservers.Configuration', 'Domains.Configuration', 'Proxy.Configuration', 'mDNS.Configuration', 'State', 'Name', 'IPv4', '', 'autoconnect']);
    const label = 'Service.SetProperty';
    const send = (value: Variant, expect: string[]) => ({ ...base, member: 'SetProperty', signature: 'sv', body: [name, value], expect, label });
    switch (name) {
      case 'AutoConnect':
        // false is a real change (persisted): only true, which every lab service has
        return r.chance(0.5) ? send(new V('b', true), [RET]) : send(randVariant(r, 0, 'b'), [IA]);
      case 'IPv4.Configuration':
      case 'IPv6.Configuration':
        return r.chance(0.2) ? send(randVariant(r, 0, 'a{sv}'), [IA]) : send(new V('a{sv}', ipConfig(r, name === 'IPv6.Configuration')), [IA]);
      case 'Nameservers.Configuration':
      case 'Timeservers.Configuration':
      case 'Domains.Configuration': {
        const y = r.next();
        if (y < 0.3) return send(new V('as', ctx.configs.get(path)?.[name] ?? []), [RET]);
        if (y < 0.5) return send(randVariant(r, 0, 'as'), [IA]);
        if (y < 0.6) return send(new V('as', Array.from({ length: huge(r) ? r.int(1000, 20_000) : 65 }, (_, k) => `h${k}.example`)), [IA]);
        const list = Array.from({ length: r.int(0, 3) }, () => r.pick(['192.0.2.1', '2001:db8::1', 'ntp.example', 'example.org']));
        list.splice(r.int(0, list.length), 0, r.pick(['bad host!', 'x y', '-', '..', 'a'.repeat(300), '\u00e9t\u00e9!']));
        return send(new V('as', list), [IA]);
      }
      case 'Proxy.Configuration':
      case 'mDNS.Configuration':
        return send(randVariant(r), [C('NotSupported')]);
      default:
        return send(randVariant(r), [C('InvalidProperty')]);
    }
  }
  if (x < 0.7) {
    const name = r.chance(0.4) ? 'Error' : r.chance(0.5) ? r.pick(['State', 'AutoConnect', 'error', '']) : randString(r);
    return { ...base, member: 'ClearProperty', signature: 's', body: [name], expect: name === 'Error' ? [RET] : [C('InvalidProperty')], label: 'Service.ClearProperty' };
  }
  if (x < 0.78) return { ...base, member: 'Connect', signature: '', body: [], expect: [C('AlreadyConnected')], label: 'Service.Connect' };
  if (x < 0.83) return { ...base, member: 'Remove', signature: '', body: [], expect: [C('NotSupported')], label: 'Service.Remove' };
  if (x < 0.87) return { ...base, member: 'ResetCounters', signature: '', body: [], expect: [RET], label: 'Service.ResetCounters' };
  // reorder relative to itself, a missing service, or something that is not a service
  const member = r.pick(['MoveBefore', 'MoveAfter']);
  const y = r.next();
  const target = y < 0.35 ? path : y < 0.7 ? `/net/connman/service/${r.pick(['nope', 'ethernet_000000000000_cable', 'x'.repeat(300)])}` : r.pick(['/', '/net/connman/technology/ethernet', '/sessions/x', randPath(r)]);
  const expect = target.startsWith('/net/connman/service/') ? [C('InvalidService'), C('NotSupported')] : [IA];
  return { ...base, member, signature: 'o', body: [target], expect, label: `Service.${member}` };
}

function technologyCall(r: Random): Omit<Call, 'slot'> {
  if (r.chance(0.1)) return { path: '/net/connman/technology/wifi', iface: TECHNOLOGY, member: 'GetProperties', signature: '', body: [], expect: [UNKNOWN_OBJECT], label: 'Technology.<missing>' };
  const base = { path: '/net/connman/technology/ethernet', iface: TECHNOLOGY };
  const x = r.next();
  if (x < 0.2) return { ...base, member: 'GetProperties', signature: '', body: [], expect: [RET], label: 'Technology.GetProperties' };
  if (x < 0.3) return { ...base, member: 'Scan', signature: '', body: [], expect: [C('NotSupported')], label: 'Technology.Scan' };
  const name = r.pick(['Powered', 'Powered', 'Tethering', 'TetheringIdentifier', 'TetheringPassphrase', 'TetheringFreq', 'Connected', 'Name', randString(r)]);
  let value: Variant;
  let expect: string[];
  if (name === 'Powered') {
    // Powered=false would take ethernet down: only its no-op value
    value = r.chance(0.5) ? new V('b', true) : randVariant(r, 0, 'b');
    expect = value.signature === 'b' ? [C('AlreadyEnabled')] : [IA];
  } else if (name.startsWith('Tethering')) {
    value = randVariant(r);
    expect = [C('NotSupported')];
  } else {
    value = randVariant(r);
    expect = [C('InvalidProperty')];
  }
  return { ...base, member: 'SetProperty', signature: 'sv', body: [name, value], expect, label: 'Technology.SetProperty' };
}

/** [path kind, interface, member, in-signature] of every method we have */
function ourMethods(ctx: Ctx, slot: number, r: Random): [string, string, string, string][] {
  const svc = r.pick(ctx.services);
  const sess = ownPath(ctx, slot, r);
  return [
    ['/', MANAGER, 'GetProperties', ''], ['/', MANAGER, 'SetProperty', 'sv'], ['/', MANAGER, 'CreateSession', 'a{sv}o'], ['/', MANAGER, 'DestroySession', 'o'],
    ['/', MANAGER, 'GetServices', ''], ['/', MANAGER, 'RegisterAgent', 'o'], ['/', MANAGER, 'UnregisterAgent', 'o'], ['/', MANAGER, 'RegisterCounter', 'ouu'],
    [svc, SERVICE, 'SetProperty', 'sv'], [svc, SERVICE, 'ClearProperty', 's'], [svc, SERVICE, 'Connect', ''], [svc, SERVICE, 'Disconnect', ''],
    [svc, SERVICE, 'MoveBefore', 'o'], [svc, SERVICE, 'MoveAfter', 'o'], [svc, SERVICE, 'Remove', ''],
    ['/net/connman/technology/ethernet', TECHNOLOGY, 'SetProperty', 'sv'], ['/net/connman/technology/ethernet', TECHNOLOGY, 'Scan', ''],
    [sess, SESSION, 'Change', 'sv'], [sess, SESSION, 'Connect', ''], [sess, SESSION, 'Disconnect', ''], [sess, SESSION, 'Destroy', ''],
  ];
}

function wrongSignatureCall(r: Random, ctx: Ctx, slot: number): Omit<Call, 'slot'> {
  const [path, iface, member, sig] = r.pick(ourMethods(ctx, slot, r));
  let signature = r.pick(SIGS);
  while (signature === sig) signature = r.pick(SIGS);
  // a session may or may not exist: then it is UnknownObject before the signature is looked at
  const expect = iface === SESSION ? [UNKNOWN_METHOD, UNKNOWN_OBJECT] : [UNKNOWN_METHOD];
  return { path, iface, member, signature, body: bodyOf(r, signature), expect, label: 'wrong signature' };
}

function oddCall(r: Random, ctx: Ctx, slot: number): Omit<Call, 'slot'> {
  switch (r.int(0, 8)) {
    case 0: // Session methods where there is no session
      return { path: r.pick(['/', ...ctx.services]), iface: SESSION, member: r.pick(['Connect', 'Destroy']), signature: '', body: [], expect: [UNKNOWN_METHOD], label: 'odd: Session iface on Manager/Service' };
    case 1: // our interfaces on paths that are no objects (intermediate nodes, very long paths, trailing parts)
      return {
        path: r.pick(['/sessions', '/net', '/net/connman/service', '/net/connman/technology', `/${Array.from({ length: r.int(10, 3000) }, () => 'l').join('/')}`, `${r.pick(ctx.services)}/x`, '/x']),
        iface: r.pick([MANAGER, SESSION, SERVICE, TECHNOLOGY, 'net.connman.Foo']),
        member: r.pick(['GetProperties', 'Connect', 'Destroy']),
        signature: '',
        body: [],
        expect: [UNKNOWN_OBJECT],
        label: 'odd: no object',
      };
    case 2: // no interface named: the first that has the member
      if (r.chance(0.5)) return { path: '/', member: r.pick(['GetProperties', 'GetServices', 'GetTechnologies']), signature: '', body: [], expect: [RET], label: 'odd: no interface' };
      return { path: r.pick(['/', ...ctx.services]), member: r.pick(['Frob', 'Release', 'Update']), signature: '', body: [], expect: [UNKNOWN_METHOD], label: 'odd: no interface' };
    case 3:
      return { path: r.pick(['/', '/sessions', '/net/connman', ...ctx.services, randPath(r), sessionPathOf(ctx.names[slot]!, '/n0')]), iface: 'org.freedesktop.DBus.Introspectable', member: 'Introspect', signature: '', body: [], expect: [RET], label: 'Introspect' };
    case 4: {
      const ours = r.chance(0.5);
      const member = r.pick(['Get', 'GetAll', 'Set']);
      const signature = { Get: 'ss', GetAll: 's', Set: 'ssv' }[member]!;
      return { path: ours ? r.pick(['/', ...ctx.services]) : '/zzz', iface: 'org.freedesktop.DBus.Properties', member, signature, body: bodyOf(r, signature), expect: ours ? [UNKNOWN_METHOD] : [UNKNOWN_OBJECT], label: 'Properties' };
    }
    case 5: {
      // every object has Peer (libdbus answers it on any path, so ConnMan does)
      return { path: r.chance(0.5) ? '/' : '/zzz', iface: 'org.freedesktop.DBus.Peer', member: 'Ping', signature: '', body: [], expect: [RET], label: 'Peer.Ping' };
    }
    case 6: // the application's interface, called on the daemon
      return { path: r.pick(['/', '/n0']), iface: 'net.connman.Notification', member: r.pick(['Update', 'Release']), signature: 'a{sv}', body: [{}], expect: [UNKNOWN_METHOD, UNKNOWN_OBJECT], label: 'odd: Notification on the daemon' };
    case 7: {
      // fire and forget: the daemon must not answer, nor mind
      const c = r.chance(0.5) ? createCall(r, ctx, slot) : managerCall(r, ctx, slot);
      return { ...c, noReply: true, label: `no reply: ${c.label}` };
    }
    default: {
      const iface = r.pick([MANAGER, SERVICE, 'net.connman.Clock', 'org.example.X']);
      return { path: '/', iface, member: r.pick(['Frob', 'Update', 'GetProperties2']), signature: '', body: [], expect: [UNKNOWN_METHOD], label: 'odd: unknown member/interface' };
    }
  }
}

/** Call #i, from (seed, i) alone. */
function generate(i: number, ctx: Ctx): Call {
  const r = new Random(mix(SEED, i));
  hugeBudget = r.chance(HUGE_P) ? 1 : 0;
  const slot = r.int(0, SLOTS - 1);
  const x = r.next();
  const c =
    x < 0.14 ? managerCall(r, ctx, slot)
    : x < 0.34 ? createCall(r, ctx, slot)
    : x < 0.4 ? destroySessionCall(r, ctx, slot)
    : x < 0.6 ? sessionCall(r, ctx, slot, false)
    : x < 0.67 ? sessionCall(r, ctx, slot, true)
    : x < 0.79 ? serviceCall(r, ctx)
    : x < 0.83 ? technologyCall(r)
    : x < 0.91 ? wrongSignatureCall(r, ctx, slot)
    : oddCall(r, ctx, slot);
  return { slot, ...c };
}

function mix(a: number, b: number): number {
  let h = (a ^ Math.imul(b + 0x9e3779b9, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** A short description of a body for reports. */
function brief(v: unknown, depth = 0): unknown {
  if (typeof v === 'string') return v.length > 40 ? `${v.slice(0, 40)}…(${v.length})` : v;
  if (Buffer.isBuffer(v)) return `<${v.length} bytes>`;
  if (v instanceof V) return { [v.signature]: brief(v.value, depth + 1) };
  if (Array.isArray(v)) return v.length > 6 ? [...v.slice(0, 6).map((x) => brief(x, depth + 1)), `…(${v.length})`] : v.map((x) => brief(x, depth + 1));
  if (v && typeof v === 'object') {
    const e = Object.entries(v);
    return Object.fromEntries([...e.slice(0, 6).map(([k, x]) => [brief(k), brief(x, depth + 1)]), ...(e.length > 6 ? [['…', e.length]] : [])]);
  }
  return v;
}

// ---- the connections ------------------------------------------------------------------

interface Slot {
  bus: MessageBus;
  name: string;
  /** calls under way: settle them (as abandoned) when the connection is dropped */
  pending: Set<(outcome: Outcome) => void>;
  /** set on the connection being replaced: no new calls on it */
  closed: boolean;
  ready: Promise<void>;
  updates: number;
}

interface Outcome {
  name: string;
  text?: string;
}

async function openSlot(address: string, index: number): Promise<Slot> {
  const bus = await openBus(address);
  const slot: Slot = { bus, name: uniqueName(bus), pending: new Set(), closed: false, ready: Promise.resolve(), updates: 0 };
  if (index !== BARE_SLOT) {
    bus.addMethodHandler((m: dbus.Message) => {
      if (m.interface !== 'net.connman.Notification') return false;
      slot.updates++;
      // the silent one swallows the call: no reply, no error
      if (index !== SILENT_SLOT && !(m.flags & 1)) bus.send(dbus.Message.newMethodReturn(m, '', []));
      return true;
    });
  }
  return slot;
}

function send(slot: Slot, c: Call): Promise<Outcome> {
  const msg = new dbus.Message({ destination: 'net.connman', path: c.path, ...(c.iface ? { interface: c.iface } : {}), member: c.member, signature: c.signature, body: c.body });
  if (c.noReply) {
    msg.flags = 1;
    try {
      slot.bus.send(msg);
      return Promise.resolve({ name: 'sent' });
    } catch (e) {
      return Promise.resolve({ name: 'client', text: (e as Error).message });
    }
  }
  return new Promise((resolve) => {
    const settle = (o: Outcome): void => {
      clearTimeout(timer);
      slot.pending.delete(settle);
      resolve(o);
    };
    const timer = setTimeout(() => settle({ name: 'timeout', text: `no answer within ${CALL_TIMEOUT_MS} ms` }), CALL_TIMEOUT_MS);
    slot.pending.add(settle);
    slot.bus.call(msg).then(
      () => settle({ name: RET }),
      (e: unknown) => {
        const err = e as { type?: string; text?: string; message?: string };
        settle(err.type ? { name: err.type, text: err.text ?? '' } : { name: 'client', text: String(err.message ?? e) });
      },
    );
  });
}

// ---- the test ---------------------------------------------------------------------------

async function call(bus: MessageBus, path: string, iface: string, member: string, signature = '', body: unknown[] = []): Promise<unknown[]> {
  const r = await bus.call(new dbus.Message({ destination: 'net.connman', path, interface: iface, member, signature, body }));
  return r?.body ?? [];
}

/** What must not change: the services' settings (not their state), and the Manager's properties. */
async function settingsView(bus: MessageBus): Promise<string> {
  const [list] = (await call(bus, '/', MANAGER, 'GetServices')) as [[string, Record<string, Variant>][]];
  const keys = ['AutoConnect', 'Favorite', 'IPv4.Configuration', 'IPv6.Configuration', 'Nameservers.Configuration', 'Timeservers.Configuration', 'Domains.Configuration'];
  const services = list.map(([p, props]) => [p, Object.fromEntries(keys.map((k) => [k, unwrap(props[k])]))]).sort();
  const [manager] = (await call(bus, '/', MANAGER, 'GetProperties')) as [Record<string, Variant>];
  return JSON.stringify({ services, OfflineMode: unwrap(manager.OfflineMode), SessionMode: unwrap(manager.SessionMode) });
}

describe('D-Bus fuzzing', { skip }, () => {
  let lab: LabInfo;
  let pid: number;
  before(async () => {
    console.log(`# dbus-fuzz: FUZZ_SEED=${SEED} FUZZ_CALLS=${CALLS}`);
    lab = await labUp({ name: NAME, uplinks: 3, daemon: { logLevel: 'info' } });
    pid = lab.daemon!.pid;
  });
  after(async () => {
    await labDown(NAME);
  });

  test(`${CALLS} generated calls: only well-formed answers, the daemon alive and prompt, the kernel back to what the survivors need`, { timeout: 240_000 }, async (t) => {
    t.diagnostic(`seed ${SEED} (replay: FUZZ_SEED=${SEED} FUZZ_CALLS=${CALLS})`);
    const probe = await openBus(lab.bus.address);
    t.after(() => closeBus(probe));
    const services = await servicesSettled(probe);
    const ns = lab.device.netns;
    const settingsBefore = await settingsView(probe);
    const empty = await stableSnapshot(ns);

    // the anchor client: sessions that live through the fuzzing, owned by nobody who fuzzes
    const anchorUpdates = new Map<string, number>();
    probe.addMethodHandler((m: dbus.Message) => {
      if (m.interface !== 'net.connman.Notification') return false;
      anchorUpdates.set(m.path, (anchorUpdates.get(m.path) ?? 0) + 1);
      if (!(m.flags & 1)) probe.send(dbus.Message.newMethodReturn(m, '', []));
      return true;
    });
    const anchors = ['/anchor0', '/anchor1', '/anchor2'];
    await call(probe, '/', MANAGER, 'CreateSession', 'a{sv}o', [{}, anchors[0]]);
    await call(probe, '/', MANAGER, 'CreateSession', 'a{sv}o', [{ AllowedInterface: new V('s', 'eth1'), AvoidHandover: new V('b', false) }, anchors[1]]);
    await call(probe, '/', MANAGER, 'CreateSession', 'a{sv}o', [{ AllowedBearers: new V('as', ['ethernet']), SourceIPRule: new V('b', true), IdleTimeout: new V('u', 0) }, anchors[2]]);
    await waitFor('the anchors\' first Updates', async () => anchors.every((a) => (anchorUpdates.get(a) ?? 0) > 0), 5000);
    const withAnchors = await stableSnapshot(ns);
    assert.notEqual(diffSnapshots(empty, withAnchors), '', 'the anchor sessions have kernel state');

    const logOffset = fileSize(lab.daemon!.log);
    const rssBefore = rssKiB(pid);
    const fdsBefore = fdCount(pid);
    const childrenBefore = childPids(pid);

    const ctx: Ctx = {
      names: [],
      anchorOwner: uniqueName(probe),
      anchors,
      gone: [],
      services: services.map(([p]) => p),
      configs: new Map(
        services.map(([p, props]) => [
          p,
          Object.fromEntries(['Nameservers.Configuration', 'Timeservers.Configuration', 'Domains.Configuration'].map((k) => [k, (unwrap(props[k]) as string[]) ?? []])),
        ]),
      ),
    };
    // a client that left counts as gone once the bus has said so: the bus tells the daemon in the
    // same breath, so a call sent after this signal reaches the daemon after it (one sent merely
    // after the socket closed may overtake it, and find the sessions still there)
    const leaving = new Set<string>();
    probe.on('message', (m: dbus.Message) => {
      if (m.member !== 'NameOwnerChanged' || m.sender !== 'org.freedesktop.DBus') return;
      const [name, , owner] = (m.body ?? []) as [string, string, string];
      if (owner === '' && leaving.delete(name)) ctx.gone.push(name);
    });
    await probe.call(new dbus.Message({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'AddMatch', signature: 's', body: ["type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged'"] }));
    const slots: Slot[] = [];
    for (let k = 0; k < SLOTS; k++) {
      const s = await openSlot(lab.bus.address, k);
      slots.push(s);
      ctx.names.push(s.name);
    }

    const counts = new Map<string, number>();
    const byLabel = new Map<string, Map<string, number>>();
    const mismatches: string[] = [];
    let mismatchCount = 0;
    let fatal: string | undefined;
    const probeTimes: number[] = [];
    const count = (label: string, outcome: string): void => {
      counts.set(outcome, (counts.get(outcome) ?? 0) + 1);
      const m = byLabel.get(label) ?? new Map<string, number>();
      m.set(outcome, (m.get(outcome) ?? 0) + 1);
      byLabel.set(label, m);
    };
    const monitor = setInterval(() => {
      if (!isAlive(pid)) fatal ??= `the daemon (pid ${pid}) is gone`;
    }, 250);
    t.after(() => clearInterval(monitor));

    const churn = async (k: number): Promise<void> => {
      const old = slots[k]!;
      let open!: () => void;
      const ready = new Promise<void>((resolve) => {
        open = resolve;
      });
      slots[k] = { ...old, closed: true, ready };
      // the client leaves in the middle of its calls: they will never be answered. Its last
      // words: a notifier with a trailing slash, as an object path (invalid on the wire: the
      // bus may drop the connection for it, the daemon must not mind either way)
      for (const settle of [...old.pending]) settle({ name: 'abandoned' });
      old.bus.call(new dbus.Message({ destination: 'net.connman', path: '/', interface: MANAGER, member: 'CreateSession', signature: 'a{sv}o', body: [{}, '/trailing/'] })).catch(() => undefined);
      leaving.add(old.name);
      closeBus(old.bus);
      const fresh = await openSlot(lab.bus.address, k);
      slots[k] = fresh;
      ctx.names[k] = fresh.name;
      open();
    };

    const started = performance.now();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (fatal === undefined) {
        const i = next++;
        if (i >= CALLS) return;
        if (i > 0 && i % CHURN_EVERY === 0) await churn((i / CHURN_EVERY) % SLOTS);
        if (i > 0 && i % PROBE_EVERY === 0) {
          const t0 = performance.now();
          try {
            await Promise.race([call(probe, '/', MANAGER, 'GetProperties'), new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), PROBE_BOUND_MS * 4))]);
          } catch (e) {
            fatal ??= `Manager.GetProperties failed at call ${i}: ${(e as Error).message}`;
          }
          const ms = performance.now() - t0;
          probeTimes.push(ms);
          if (ms > PROBE_BOUND_MS) fatal ??= `Manager.GetProperties took ${Math.round(ms)} ms at call ${i}`;
        }
        let slot = slots[0]!;
        let c: Call;
        for (;;) {
          c = generate(i, ctx);
          slot = slots[c.slot]!;
          if (!slot.closed) break;
          // the connection is being replaced: once it is, generate again (the paths name the new one)
          await slot.ready;
        }
        const o = await send(slot, c);
        if (o.name === 'sent' || o.name === 'abandoned') {
          count(c.label, o.name);
          continue;
        }
        count(c.label, o.name);
        const describeCall = (): string =>
          `#${i} slot ${c.slot} ${c.iface ?? '(no interface)'}.${c.member}(${c.signature}) at ${c.path.slice(0, 80)} body ${JSON.stringify(brief(c.body)).slice(0, 400)} → ${o.name}${o.text ? ` "${o.text.slice(0, 160)}"` : ''}; expected ${c.expect.join(' | ')}`;
        if (o.name === 'timeout' || o.name === D('NoReply') || o.name === D('ServiceUnknown') || o.name === D('NameHasNoOwner') || o.name === D('Disconnected')) {
          fatal ??= `the daemon did not answer: ${describeCall()}`;
          if (mismatches.length < 40) mismatches.push(describeCall());
        } else if (!ALLOWED.has(o.name) || !c.expect.includes(o.name)) {
          mismatchCount++;
          if (mismatches.length < 40) mismatches.push(describeCall());
        }
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
    const elapsed = (performance.now() - started) / 1000;
    clearInterval(monitor);

    // the report
    const total = [...counts.values()].reduce((a, b) => a + b, 0);
    const lines = [`${total} calls in ${elapsed.toFixed(1)} s (${Math.round(total / elapsed)}/s), seed ${SEED}`];
    for (const [name, n] of [...counts].sort((a, b) => b[1] - a[1])) lines.push(`  ${String(n).padStart(7)}  ${name}`);
    lines.push('per method:');
    for (const [label, m] of [...byLabel].sort()) lines.push(`  ${label}: ${[...m].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k.replace(/^net\.connman\.Error\./, 'C.').replace(/^org\.freedesktop\.DBus\.Error\./, 'D.')}=${n}`).join(' ')}`);
    const sorted = [...probeTimes].sort((a, b) => a - b);
    lines.push(`GetProperties probes: ${sorted.length}, median ${Math.round(sorted[sorted.length >> 1] ?? 0)} ms, max ${Math.round(sorted[sorted.length - 1] ?? 0)} ms`);
    lines.push(`Updates received per slot: ${slots.map((s) => s.updates).join(' ')}; calls with a huge string or array (64 KiB … 4 MB, 1,000 … 20,000 elements): ${hugeMade}`);
    lines.push(`clients that left (churn): ${ctx.gone.length} announced by the bus, their sessions' paths used as gone ones`);
    console.log(lines.map((l) => `# ${l}`).join('\n'));

    assert.equal(fatal, undefined, `${fatal}\n${mismatches.join('\n')}`);
    assert.ok(isAlive(pid), 'the daemon is alive');
    assert.equal(mismatchCount, 0, `${mismatchCount} answers not as expected (seed ${SEED}):\n${mismatches.join('\n')}`);
    assert.ok(ctx.gone.length > 0, 'clients left and the bus said so: calls on their sessions were made');
    assert.equal(total, CALLS);

    // the anchors survived, untouched by the others
    const alive = await sessionObjects(probe);
    for (const a of anchors) assert.ok(alive.includes(sessionPathOf(uniqueName(probe), a)), `anchor ${a} survived`);

    // the fuzzers' sessions end: half by DestroySession, half with their connection
    for (let k = 0; k < SLOTS / 2; k++) {
      const s = slots[k]!;
      const mine = (await sessionObjects(probe)).filter((p) => p.startsWith(sessionPathOf(s.name, '/')));
      await Promise.all(mine.map((p) => call(s.bus, '/', MANAGER, 'DestroySession', 'o', [p])));
    }
    for (const s of slots) closeBus(s.bus);
    const survivors = (): Promise<string[]> => sessionObjects(probe);
    await waitFor('only the anchors left', async () => (await survivors()).length === anchors.length, 10_000, 100).catch(async (e) => {
      throw new Error(`${(e as Error).message}: ${JSON.stringify((await survivors()).slice(0, 10))}`);
    });
    await waitFor('the kernel holds what the anchors need', async () => diffSnapshots(withAnchors, kernelSnapshot(ns)) === '', 15_000, 200).catch((e) => {
      throw new Error(`${(e as Error).message}: ${diffSnapshots(withAnchors, kernelSnapshot(ns))}`);
    });

    // nothing of a client that left stays registered: a new one can register an agent
    const late = await openBus(lab.bus.address);
    t.after(() => closeBus(late));
    await call(late, '/', MANAGER, 'RegisterAgent', 'o', ['/fz/late']).catch((e: unknown) => {
      throw new Error(`RegisterAgent after every fuzzing client left: ${(e as { type?: string }).type} (an agent of a client that left is still registered)`);
    });
    await call(late, '/', MANAGER, 'UnregisterAgent', 'o', ['/fz/late']);

    // the one setting the fuzzing may change for real: back to what it was
    await call(probe, '/', MANAGER, 'SetProperty', 'sv', ['SessionMode', new V('b', false)]);
    assert.equal(await settingsView(probe), settingsBefore, 'services\' settings and Manager properties unchanged');

    // the anchors go: the kernel is as it was before any session
    for (const a of anchors) await call(probe, '/', MANAGER, 'DestroySession', 'o', [sessionPathOf(uniqueName(probe), a)]);
    await waitFor('the kernel as before any session', async () => diffSnapshots(empty, kernelSnapshot(ns)) === '', 15_000, 200).catch((e) => {
      throw new Error(`${(e as Error).message}: ${diffSnapshots(empty, kernelSnapshot(ns))}`);
    });
    assert.deepEqual(await sessionObjects(probe), []);

    const problems = logProblems(lab.daemon!.log, logOffset);
    assert.deepEqual(problems.slice(0, 10), [], 'the daemon logged errors');
    assert.deepEqual(childPids(pid), childrenBefore, 'no processes left behind');
    const fds = fdCount(pid);
    const rss = rssKiB(pid);
    console.log(`# daemon: RSS ${rssBefore} → ${rss} KiB, fds ${fdsBefore} → ${fds}`);
    assert.ok(fds <= fdsBefore + 8, `descriptors: ${fdsBefore} before, ${fds} after`);
    assert.ok(isAlive(pid), 'the daemon is alive');
  });
});
