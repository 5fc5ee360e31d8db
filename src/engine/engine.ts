// The connection manager's semantics: (state, event, now) → state, and commands from the
// D-Bus API with their errors. Pure: the daemon feeds facts (links, leases, routers,
// probe results, time) and carries out what the state asks for (see ./derive.ts).
import { isIPv4, isIPv6 } from 'node:net';
import { canonicalAddress } from '../kernel/netlink/codec.ts';
import { isConnected, orderServices } from './order.ts';
import type {
  DhcpLease,
  EngineConfig,
  EngineState,
  Ipv4Config,
  Ipv6Addr,
  Ipv6Config,
  Ipv6Router,
  OnlineCheck,
  Service,
  ServiceSettings,
  ServiceState,
  Technology,
  TechnologyType,
} from './types.ts';

export type Family = 'ipv4' | 'ipv6';

export interface LinkFact {
  ifindex: number;
  ifname: string;
  mac: string;
  mtu: number;
  carrier: boolean;
}

export type EngineEvent =
  | { kind: 'link'; link: LinkFact }
  | { kind: 'link-removed'; ifindex: number }
  | { kind: 'ipv6-addresses'; ifindex: number; addresses: Ipv6Addr[] }
  | { kind: 'routers'; ifindex: number; routers: Ipv6Router[]; rdnss: string[]; dnssl: string[] }
  | { kind: 'dhcp-lease'; ifindex: number; lease: DhcpLease }
  | { kind: 'dhcp-lost'; ifindex: number }
  | { kind: 'online-started'; id: string; family: Family }
  | { kind: 'online-result'; id: string; family: Family; status: 'online' | 'portal' | 'failed'; portalUrl?: string }
  /** the services sessions want connected now (see sessions.ts sessionDemand) */
  | { kind: 'session-demand'; ids: ReadonlySet<string> }
  | { kind: 'tick' };

/** A ConnMan error: `name` is the suffix after `net.connman.Error.`. */
export interface CommandError {
  name:
    | 'InvalidArguments'
    | 'InvalidProperty'
    | 'InvalidService'
    | 'NotSupported'
    | 'NotConnected'
    | 'NoCarrier'
    | 'AlreadyConnected'
    | 'AlreadyExists'
    | 'InProgress'
    | 'NotFound'
    | 'PermissionDenied'
    | 'AlreadyDisabled'
    | 'AlreadyEnabled'
    | 'OperationAborted'
    | 'OperationTimeout'
    | 'Failed';
  message: string;
}

export type Command =
  | { kind: 'connect'; id: string }
  | { kind: 'disconnect'; id: string }
  | { kind: 'remove'; id: string }
  | { kind: 'move'; id: string; target: string; where: 'before' | 'after' }
  | { kind: 'set-autoconnect'; id: string; value: boolean }
  | { kind: 'set-ipv4'; id: string; config: Ipv4Config }
  | { kind: 'set-ipv6'; id: string; config: Ipv6Config }
  | { kind: 'set-nameservers'; id: string; servers: string[] }
  | { kind: 'set-domains'; id: string; domains: string[] }
  | { kind: 'set-timeservers'; id: string; servers: string[] }
  | { kind: 'clear-error'; id: string }
  | { kind: 'set-offline'; value: boolean }
  | { kind: 'set-powered'; type: TechnologyType; value: boolean };

export type CommandResult = { state: EngineState; error?: CommandError };

const MAX_LIST = 64;

export function serviceIdFor(type: TechnologyType, mac: string): string {
  return `${type}_${mac.replace(/:/g, '').toLowerCase()}_cable`;
}

export function defaultSettings(table: number): ServiceSettings {
  return {
    autoConnect: true,
    favorite: true,
    ipv4: { method: 'dhcp' },
    ipv6: { method: 'auto', privacy: 'disabled' },
    nameservers: [],
    domains: [],
    timeservers: [],
    order: 0,
    table,
    userDisconnected: false,
    immutable: false,
  };
}

const freshCheck = (): OnlineCheck => ({ status: 'unknown', failures: 0, running: false });

export function createState(
  config: EngineConfig,
  persisted: { offlineMode?: boolean; powered?: Partial<Record<TechnologyType, boolean>>; services?: Map<string, ServiceSettings> } = {},
): EngineState {
  return {
    config,
    offlineMode: persisted.offlineMode ?? false,
    technologies: new Map<TechnologyType, Technology>(),
    poweredAtStart: persisted.powered ?? {},
    services: new Map(),
    saved: new Map(persisted.services ?? []),
  };
}

/** Whether an interface is for us to manage, by the configured allow and deny lists. */
export function manages(config: EngineConfig, ifname: string): boolean {
  if (config.interfaceAllowlist.length > 0 && !config.interfaceAllowlist.includes(ifname)) return false;
  return !config.interfaceBlacklist.some((p) => p !== '' && ifname.startsWith(p));
}

function allocateTable(state: EngineState): number {
  const used = new Set<number>();
  for (const s of state.services.values()) used.add(s.settings.table);
  for (const s of state.saved.values()) used.add(s.table);
  for (let t = state.config.tables.min; t <= state.config.tables.max; t++) if (!used.has(t)) return t;
  throw new RangeError('no free routing table for a new service');
}

function withService(state: EngineState, s: Service): EngineState {
  const services = new Map(state.services);
  services.set(s.id, s);
  return { ...state, services };
}

function byIfindex(state: EngineState, ifindex: number): Service | undefined {
  for (const s of state.services.values()) if (s.ifindex === ifindex) return s;
  return undefined;
}

// ---- what a service has ---------------------------------------------------------

/** Whether the service is meant to be connected right now. */
export function wantsConnection(state: EngineState, s: Service): boolean {
  const tech = state.technologies.get(s.type);
  return (
    s.carrier &&
    (tech?.powered ?? true) &&
    !state.offlineMode &&
    !s.settings.userDisconnected &&
    (s.settings.autoConnect || s.connectRequested || s.sessionRequested)
  );
}

/** The IPv4 address the service has (DHCP lease or manual), if any. */
export function ipv4Of(s: Service): { address: string; prefixLen: number; gateway?: string; method: 'dhcp' | 'manual' } | undefined {
  const c = s.settings.ipv4;
  if (c.method === 'manual' && c.address && c.netmask) {
    return { address: c.address, prefixLen: netmaskToPrefix(c.netmask), ...(c.gateway ? { gateway: c.gateway } : {}), method: 'manual' };
  }
  if (c.method === 'dhcp' && s.lease) {
    return { address: s.lease.address, prefixLen: s.lease.prefixLen, ...(s.lease.router ? { gateway: s.lease.router } : {}), method: 'dhcp' };
  }
  return undefined;
}

/** IPv6 addresses and default router of the service, if it has any. */
export function ipv6Of(s: Service, now: number): { addresses: Ipv6Addr[]; router?: string; method: 'auto' | 'manual' } | undefined {
  const c = s.settings.ipv6;
  if (c.method === 'off') return undefined;
  if (c.method === 'manual') {
    if (!c.address) return undefined;
    return { addresses: [{ address: c.address, prefixLen: c.prefixLength ?? 64 }], ...(c.gateway ? { router: c.gateway } : {}), method: 'manual' };
  }
  const routers = s.routers.filter((r) => r.expiresAt > now).sort((a, b) => b.preference - a.preference);
  if (s.ipv6Addresses.length === 0) return undefined;
  return { addresses: s.ipv6Addresses, ...(routers[0] ? { router: routers[0].address } : {}), method: 'auto' };
}

export function nameserversOf(s: Service, now: number): string[] {
  if (s.settings.nameservers.length > 0) return s.settings.nameservers;
  const out: string[] = [];
  if (ipv4Of(s)?.method === 'dhcp') out.push(...(s.lease?.dns ?? []));
  if (ipv6Of(s, now)) out.push(...s.rdnss);
  return [...new Set(out)];
}

export function domainsOf(s: Service): string[] {
  if (s.settings.domains.length > 0) return s.settings.domains;
  const out = [...(s.lease?.searchDomains ?? [])];
  if (s.lease?.domain && !out.includes(s.lease.domain)) out.unshift(s.lease.domain);
  for (const d of s.dnssl) if (!out.includes(d)) out.push(d);
  return out;
}

export function netmaskToPrefix(mask: string): number {
  const n = mask.split('.').reduce((acc, o) => (acc << 8) | (Number(o) & 255), 0) >>> 0;
  let len = 0;
  while (len < 32 && n & (0x80000000 >>> len)) len++;
  return len;
}

export function prefixToNetmask(len: number): string {
  const n = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return [24, 16, 8, 0].map((sh) => (n >>> sh) & 255).join('.');
}

// ---- derived state ---------------------------------------------------------------

/**
 * Recomputes what follows from the facts: the service's state and error, when its
 * current connection attempt began, and when each online check is due. Level-triggered:
 * the same facts always give the same result.
 */
function derive(state: EngineState, s: Service, now: number): Service {
  const want = wantsConnection(state, s);
  let next: Service = s;
  if (!want) {
    const quiet = (c: OnlineCheck): boolean => c.status === 'unknown' && c.nextAt === undefined && !c.running && c.failures === 0;
    if (s.state === 'idle' && s.configuringSince === undefined && !s.lease && !s.error && quiet(s.online.ipv4) && quiet(s.online.ipv6) && (s.carrier || !s.connectRequested)) return s;
    const idle: Service = { ...s, state: 'idle', online: { ipv4: freshCheck(), ipv6: freshCheck() } };
    delete idle.configuringSince;
    delete idle.lease;
    if (!s.carrier) idle.connectRequested = false;
    delete idle.error;
    return idle;
  }
  if (s.configuringSince === undefined) next = { ...next, configuringSince: now };
  const v4 = ipv4Of(next);
  const v6 = ipv6Of(next, now);
  const online = { ipv4: scheduleCheck(state, next.online.ipv4, v4 !== undefined && v4.gateway !== undefined, now), ipv6: scheduleCheck(state, next.online.ipv6, v6?.router !== undefined, now) };
  next = { ...next, online };
  let st: ServiceState;
  let error: string | undefined;
  if (v4 || v6?.router) {
    st = online.ipv4.status === 'online' || online.ipv6.status === 'online' ? 'online' : 'ready';
  } else if (next.settings.ipv4.method === 'dhcp' && now - (next.configuringSince ?? now) >= state.config.dhcpFailureTimeout * 1000) {
    st = 'failure';
    error = 'dhcp-failed';
  } else st = 'configuration';
  if (st === next.state && error === next.error) return next;
  const out: Service = { ...next, state: st };
  if (error) out.error = error;
  else delete out.error;
  return out;
}

/** Online check of one family: none without a route to the internet; at once when one appears. */
function scheduleCheck(state: EngineState, c: OnlineCheck, routable: boolean, now: number): OnlineCheck {
  if (!routable || !state.config.onlineCheck.enabled) return c.status === 'unknown' && c.nextAt === undefined && !c.running ? c : freshCheck();
  if (c.nextAt === undefined && !c.running && c.status === 'unknown') return { ...c, nextAt: now };
  return c;
}

function rederiveAll(state: EngineState, now: number): EngineState {
  let changed = false;
  const services = new Map(state.services);
  for (const [id, s] of state.services) {
    const d = derive(state, s, now);
    if (d !== s) {
      services.set(id, d);
      changed = true;
    }
  }
  return changed ? { ...state, services } : state;
}

// ---- events ----------------------------------------------------------------------

export function reduce(state: EngineState, ev: EngineEvent, now: number): EngineState {
  switch (ev.kind) {
    case 'link':
      return onLink(state, ev.link, now);
    case 'link-removed': {
      const s = byIfindex(state, ev.ifindex);
      if (!s) return state;
      const services = new Map(state.services);
      services.delete(s.id);
      const saved = new Map(state.saved);
      saved.set(s.id, s.settings);
      return { ...state, services, saved };
    }
    case 'ipv6-addresses':
      return update(state, ev.ifindex, now, (s) => (sameAddrs(s.ipv6Addresses, ev.addresses) ? s : resetChecks({ ...s, ipv6Addresses: ev.addresses }, 'ipv6')));
    case 'routers':
      return update(state, ev.ifindex, now, (s) => {
        const gwChanged = s.routers[0]?.address !== ev.routers[0]?.address;
        const next = { ...s, routers: ev.routers, rdnss: ev.rdnss, dnssl: ev.dnssl };
        return gwChanged ? resetChecks(next, 'ipv6') : next;
      });
    case 'dhcp-lease':
      return update(state, ev.ifindex, now, (s) => {
        const changed = s.lease?.address !== ev.lease.address || s.lease?.router !== ev.lease.router;
        const next = { ...s, lease: ev.lease };
        return changed ? resetChecks(next, 'ipv4') : next;
      });
    case 'dhcp-lost':
      return update(state, ev.ifindex, now, (s) => {
        if (!s.lease) return s;
        const next = resetChecks({ ...s }, 'ipv4');
        delete next.lease;
        // a lost lease starts a new attempt: the failure timeout counts from now
        next.configuringSince = now;
        return next;
      });
    case 'online-started':
      return updateById(state, ev.id, now, (s) => ({ ...s, online: { ...s.online, [ev.family]: { ...s.online[ev.family], running: true, nextAt: undefined } } }));
    case 'online-result':
      return updateById(state, ev.id, now, (s) => {
        const c = s.online[ev.family];
        if (!c.running) return s; // a result for a check that was reset meanwhile
        const failures = ev.status === 'failed' ? c.failures + 1 : 0;
        const delay = ev.status === 'failed' ? retryDelay(state.config, failures) : state.config.onlineCheck.recheckInterval;
        const check: OnlineCheck = { status: ev.status, failures, nextAt: now + delay * 1000, running: false };
        if (ev.portalUrl) check.portalUrl = ev.portalUrl;
        return { ...s, online: { ...s.online, [ev.family]: check } };
      });
    case 'session-demand': {
      let st = state;
      for (const s of state.services.values()) {
        const want = ev.ids.has(s.id);
        if (s.sessionRequested !== want) st = withService(st, derive(st, { ...s, sessionRequested: want }, now));
      }
      return st;
    }
    case 'tick':
      return rederiveAll(state, now);
  }
}

/**
 * Seconds until the next check after `failures` failed ones, as ConnMan counts them: the
 * interval n grows by one per failure from OnlineCheckInitialInterval up to
 * OnlineCheckMaxInterval, and the wait is n² seconds (1, 4, 9, … 144 with the defaults).
 */
export function retryDelay(config: EngineConfig, failures: number): number {
  const oc = config.onlineCheck;
  const n = Math.min(oc.initialInterval + Math.max(0, failures - 1), oc.maxInterval);
  return n * n;
}

function resetChecks(s: Service, family: Family): Service {
  return { ...s, online: { ...s.online, [family]: freshCheck() } };
}

function sameAddrs(a: Ipv6Addr[], b: Ipv6Addr[]): boolean {
  return a.length === b.length && a.every((x, i) => x.address === b[i]?.address && x.prefixLen === b[i]?.prefixLen);
}

function update(state: EngineState, ifindex: number, now: number, f: (s: Service) => Service): EngineState {
  const s = byIfindex(state, ifindex);
  if (!s) return state;
  const next = f(s);
  return next === s ? state : withService(state, derive(state, next, now));
}

function updateById(state: EngineState, id: string, now: number, f: (s: Service) => Service): EngineState {
  const s = state.services.get(id);
  if (!s) return state;
  const next = f(s);
  return next === s ? state : withService(state, derive(state, next, now));
}

function onLink(state: EngineState, l: LinkFact, now: number): EngineState {
  if (!manages(state.config, l.ifname) || !l.mac || l.mac === '00:00:00:00:00:00') return state;
  let st = state;
  if (!st.technologies.has('ethernet')) {
    const technologies = new Map(st.technologies);
    technologies.set('ethernet', { type: 'ethernet', powered: st.poweredAtStart.ethernet ?? true });
    st = { ...st, technologies };
  }
  const id = serviceIdFor('ethernet', l.mac);
  const existing = st.services.get(id) ?? byIfindex(st, l.ifindex);
  if (existing) {
    if (existing.ifname === l.ifname && existing.carrier === l.carrier && existing.mtu === l.mtu && existing.ifindex === l.ifindex) return st;
    const carrierLost = existing.carrier && !l.carrier;
    const next: Service = { ...existing, ifname: l.ifname, ifindex: l.ifindex, mtu: l.mtu, carrier: l.carrier };
    if (carrierLost) {
      // the cable is out: everything learnt on it is void
      delete next.lease;
      next.routers = [];
      next.rdnss = [];
      next.dnssl = [];
      next.connectRequested = false;
      delete next.configuringSince;
    }
    return withService(st, derive(st, next, now));
  }
  const saved = st.saved.get(id);
  const settings = applyProvisioning(st.config, saved ?? defaultSettings(allocateTable(st)), l.mac);
  const s: Service = {
    id,
    type: 'ethernet',
    name: 'Wired',
    ifindex: l.ifindex,
    ifname: l.ifname,
    mac: l.mac,
    mtu: l.mtu,
    carrier: l.carrier,
    state: 'idle',
    settings,
    connectRequested: false,
    sessionRequested: false,
    ipv6Addresses: [],
    routers: [],
    rdnss: [],
    dnssl: [],
    online: { ipv4: freshCheck(), ipv6: freshCheck() },
  };
  if (saved) {
    const rest = new Map(st.saved);
    rest.delete(id);
    st = { ...st, saved: rest };
  }
  return withService(st, derive(st, s, now));
}

/** A provisioning file that matches the device decides its IP settings; they become immutable. */
export function applyProvisioning(config: EngineConfig, settings: ServiceSettings, mac: string): ServiceSettings {
  const mine = mac.toLowerCase();
  const p = config.provisioning.find((x) => x.type === 'ethernet' && x.mac === mine) ?? config.provisioning.find((x) => x.type === 'ethernet' && x.mac === undefined);
  if (!p) return settings.immutable ? { ...settings, immutable: false } : settings;
  return {
    ...settings,
    ...(p.ipv4 ? { ipv4: p.ipv4 } : {}),
    ...(p.ipv6 ? { ipv6: p.ipv6 } : {}),
    ...(p.nameservers ? { nameservers: p.nameservers } : {}),
    ...(p.domains ? { domains: p.domains } : {}),
    ...(p.timeservers ? { timeservers: p.timeservers } : {}),
    immutable: true,
  };
}

// ---- commands --------------------------------------------------------------------

const err = (state: EngineState, name: CommandError['name'], message: string): CommandResult => ({ state, error: { name, message } });

export function command(state: EngineState, cmd: Command, now: number): CommandResult {
  if (cmd.kind === 'set-offline') {
    if (state.offlineMode === cmd.value) return { state };
    return { state: rederiveAll({ ...state, offlineMode: cmd.value }, now) };
  }
  if (cmd.kind === 'set-powered') {
    const tech = state.technologies.get(cmd.type);
    if (!tech) return err(state, 'NotSupported', `no ${cmd.type} technology`);
    if (tech.powered === cmd.value) return err(state, cmd.value ? 'AlreadyEnabled' : 'AlreadyDisabled', `${cmd.type} is already ${cmd.value ? 'on' : 'off'}`);
    const technologies = new Map(state.technologies);
    technologies.set(cmd.type, { ...tech, powered: cmd.value });
    return { state: rederiveAll({ ...state, technologies }, now) };
  }
  const s = state.services.get(cmd.id);
  if (!s) return err(state, 'NotFound', `no service ${cmd.id}`);
  const set = (next: Service): CommandResult => ({ state: withService(state, derive(state, next, now)) });
  const settings = (patch: Partial<ServiceSettings>): CommandResult => set({ ...s, settings: { ...s.settings, ...patch } });
  switch (cmd.kind) {
    case 'connect':
      if (!s.carrier) return err(state, 'NoCarrier', 'no carrier: the cable is not plugged in');
      if (isConnected(s) || s.state === 'configuration' || s.state === 'association') {
        if (!s.settings.userDisconnected) return err(state, isConnected(s) ? 'AlreadyConnected' : 'InProgress', `service is ${s.state}`);
      }
      return set({ ...s, connectRequested: true, settings: { ...s.settings, userDisconnected: false } });
    case 'disconnect': {
      if (s.state === 'idle' || (s.state === 'failure' && s.settings.userDisconnected)) return err(state, 'NotConnected', 'service is not connected');
      const next: Service = { ...s, connectRequested: false, settings: { ...s.settings, userDisconnected: true } };
      delete next.error;
      if (next.state === 'failure') next.state = 'idle';
      return set(next);
    }
    case 'remove':
      // ConnMan: ethernet services cannot be removed
      return err(state, 'NotSupported', 'an ethernet service cannot be removed');
    case 'move': {
      // ConnMan: the moved service must be a favorite (NotSupported); the target must exist, be one and not be itself (InvalidService)
      if (!s.settings.favorite) return err(state, 'NotSupported', 'only favorite services can be reordered');
      const t = state.services.get(cmd.target);
      if (!t || t.id === s.id || !t.settings.favorite) return err(state, 'InvalidService', `not a service to move relative to: ${cmd.target}`);
      return moveService(state, s, t, cmd.where, now);
    }
    case 'set-autoconnect': {
      if (!s.settings.favorite) return err(state, 'InvalidService', 'AutoConnect is only for favorite services');
      // AutoConnect governs future automatic connections: a service that is up stays up
      const keep = !cmd.value && wantsConnection(state, s);
      return set({ ...s, connectRequested: s.connectRequested || keep, settings: { ...s.settings, autoConnect: cmd.value } });
    }
    case 'clear-error': {
      if (s.state !== 'failure') return { state };
      const next: Service = { ...s, state: 'idle', configuringSince: now };
      delete next.error;
      return set(next);
    }
  }
  if (s.settings.immutable) return err(state, 'PermissionDenied', 'service is provisioned by a configuration file');
  switch (cmd.kind) {
    case 'set-ipv4': {
      const bad = checkIpv4(cmd.config);
      if (bad) return err(state, 'InvalidArguments', bad);
      const next = resetChecks({ ...s, settings: { ...s.settings, ipv4: cmd.config } }, 'ipv4');
      if (cmd.config.method !== 'dhcp') delete next.lease;
      next.configuringSince = now;
      return set(next);
    }
    case 'set-ipv6': {
      const bad = checkIpv6(cmd.config);
      if (bad) return err(state, 'InvalidArguments', bad);
      return set(resetChecks({ ...s, settings: { ...s.settings, ipv6: cmd.config } }, 'ipv6'));
    }
    case 'set-nameservers': {
      const bad = checkList(cmd.servers, (x) => isIPv4(x) || isIPv6(x), 'nameserver');
      if (bad) return err(state, 'InvalidArguments', bad);
      return settings({ nameservers: cmd.servers.map(canonicalAddress) });
    }
    case 'set-timeservers': {
      const bad = checkList(cmd.servers, isHostOrAddress, 'timeserver');
      if (bad) return err(state, 'InvalidArguments', bad);
      return settings({ timeservers: cmd.servers });
    }
    case 'set-domains': {
      const bad = checkList(cmd.domains, isDomain, 'domain');
      if (bad) return err(state, 'InvalidArguments', bad);
      return settings({ domains: cmd.domains.map((d) => d.toLowerCase()) });
    }
  }
}

function moveService(state: EngineState, s: Service, t: Service, where: 'before' | 'after', now: number): CommandResult {
  // keep one strict ranking of the favorites the user ordered: move s next to t in it
  const ranked = orderServices([...state.services.values()].filter((x) => x.settings.favorite), state.config.preferredTechnologies).filter((x) => x.id !== s.id);
  const at = ranked.findIndex((x) => x.id === t.id);
  ranked.splice(where === 'before' ? at : at + 1, 0, s);
  const services = new Map(state.services);
  ranked.forEach((x, i) => {
    const order = ranked.length - i;
    const cur = services.get(x.id)!;
    if (cur.settings.order !== order) services.set(x.id, { ...cur, settings: { ...cur.settings, order } });
  });
  return { state: rederiveAll({ ...state, services }, now) };
}

function checkList(xs: string[], ok: (x: string) => boolean, what: string): string | undefined {
  if (xs.length > MAX_LIST) return `too many ${what}s (at most ${MAX_LIST})`;
  const bad = xs.find((x) => !ok(x));
  return bad === undefined ? undefined : `not a valid ${what}: ${JSON.stringify(bad.slice(0, 80))}`;
}

const isDomain = (d: string): boolean => d.length <= 253 && /^(?=.{1,253}$)([A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*\.?$/.test(d);
const isHostOrAddress = (x: string): boolean => isIPv4(x) || isIPv6(x) || isDomain(x);

function isNetmask(m: string): boolean {
  if (!isIPv4(m)) return false;
  return prefixToNetmask(netmaskToPrefix(m)) === m;
}

export function checkIpv4(c: Ipv4Config): string | undefined {
  if (c.method !== 'manual') return undefined;
  if (!c.address || !isIPv4(c.address)) return 'IPv4 manual configuration needs a valid Address';
  if (!c.netmask || !isNetmask(c.netmask)) return 'IPv4 manual configuration needs a valid Netmask';
  const len = netmaskToPrefix(c.netmask);
  if (len === 0 || len > 32) return 'IPv4 Netmask out of range';
  if (c.gateway !== undefined && !isIPv4(c.gateway)) return 'IPv4 Gateway is not an IPv4 address';
  const first = Number(c.address.split('.')[0]);
  if (first === 0 || first === 127 || first >= 224) return 'IPv4 Address must be a unicast host address';
  return undefined;
}

export function checkIpv6(c: Ipv6Config): string | undefined {
  if (c.method !== 'manual') return undefined;
  if (!c.address || !isIPv6(c.address)) return 'IPv6 manual configuration needs a valid Address';
  if (c.prefixLength !== undefined && (!Number.isInteger(c.prefixLength) || c.prefixLength < 1 || c.prefixLength > 128)) return 'IPv6 PrefixLength out of range';
  if (c.gateway !== undefined && !isIPv6(c.gateway)) return 'IPv6 Gateway is not an IPv6 address';
  return undefined;
}

// ---- views ------------------------------------------------------------------------

/** ConnMan's global State: online if any service is online, ready if any is ready, else idle (offline in offline mode). */
export function managerState(state: EngineState): 'offline' | 'idle' | 'ready' | 'online' {
  let best: 'idle' | 'ready' | 'online' = 'idle';
  for (const s of state.services.values()) {
    if (s.state === 'online') return 'online';
    if (s.state === 'ready') best = 'ready';
  }
  if (state.offlineMode && best === 'idle') return 'offline';
  return best;
}

/** The earliest time at which the state changes by itself (a check falls due, DHCP gives up, a router expires). */
export function nextDeadline(state: EngineState, now: number): number | undefined {
  let next: number | undefined;
  const consider = (t: number | undefined): void => {
    if (t !== undefined && (next === undefined || t < next)) next = Math.max(t, now);
  };
  for (const s of state.services.values()) {
    if (!wantsConnection(state, s)) continue;
    consider(s.online.ipv4.nextAt);
    consider(s.online.ipv6.nextAt);
    if (s.state === 'configuration' && s.configuringSince !== undefined) consider(s.configuringSince + state.config.dhcpFailureTimeout * 1000);
    for (const r of s.routers) consider(r.expiresAt);
    if (s.lease) consider(s.lease.expiresAt);
  }
  return next;
}

/** Online checks due now: the daemon starts them and reports `online-started`. */
export function dueChecks(state: EngineState, now: number): { id: string; family: Family }[] {
  const out: { id: string; family: Family }[] = [];
  for (const s of state.services.values()) {
    if (!wantsConnection(state, s)) continue;
    for (const family of ['ipv4', 'ipv6'] as const) {
      const c = s.online[family];
      if (!c.running && c.nextAt !== undefined && c.nextAt <= now) out.push({ id: s.id, family });
    }
  }
  return out;
}
