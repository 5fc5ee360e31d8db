// Session semantics (seed 004 + 001, with the decisions of the sessions issue): the
// effective configuration (policy ∘ request), which service a session uses, its state,
// which services sessions want connected, and emergency mode. Pure.
import { wantsConnection } from './engine.ts';
import { orderServices } from './order.ts';
import type { Bearer, BearerEntry, ConnectionType, Identity, PolicyGroup, Session, SessionRequest, SessionState, SessionsState } from './session-types.ts';
import { BEARERS } from './session-types.ts';
import type { EngineState, Service, TechnologyType } from './types.ts';

export const DEFAULT_REQUEST: SessionRequest = {
  allowedBearers: undefined,
  connectionType: 'any',
  allowedInterface: undefined,
  sourceIpRule: false,
  contextIdentifier: '',
  priority: false,
  avoidHandover: false,
  stayConnected: false,
  periodicConnect: 0,
  idleTimeout: 0,
  emergencyCall: false,
  roamingPolicy: 'default',
  extended: false,
};

export function emptySessions(firstMarker: number): SessionsState {
  return { sessions: new Map(), policies: [], nextMarker: firstMarker };
}

/** ConnMan's session path: /sessions/ + owner with ':' and '.' as '_' + notifier path. */
export function sessionPath(owner: string, notifier: string): string {
  return `/sessions/${owner.replace(/[:.]/g, '_')}${notifier}`;
}

/** Keeps known bearer names and `*`, in order, without duplicates; unknown names are dropped (seed 004). */
export function sanitizeBearers(names: readonly string[]): BearerEntry[] {
  const out: BearerEntry[] = [];
  for (const n of names) {
    const b = n === '*' ? '*' : (BEARERS as readonly string[]).includes(n) ? (n as Bearer) : undefined;
    if (b && !out.includes(b)) out.push(b);
  }
  return out;
}

// ---- policy ----------------------------------------------------------------------------

/**
 * The policy group that applies to an identity: SELinux type first, then uid, then gid,
 * then the deepest matching cgroup (ConnMan's order, plus ours). A group that also names a
 * ContextIdentifier applies only to sessions with that identifier, and beats the same
 * identity's group without one. An identity not known yet matches only groups that match on
 * the ContextIdentifier alone.
 */
export function matchPolicy(groups: readonly PolicyGroup[], id: Identity | undefined, contextIdentifier: string): PolicyGroup | undefined {
  const selinuxType = id?.selinux?.split(':')[2];
  const rank = (g: PolicyGroup): number => {
    const m = g.match;
    if (m.contextIdentifier !== undefined && m.contextIdentifier !== contextIdentifier) return -1;
    const ctx = m.contextIdentifier !== undefined ? 0.5 : 0;
    if (groupNeedsIdentity(g) && !id) return -1;
    if (m.selinux !== undefined) return m.selinux === selinuxType ? 400 + ctx : -1;
    if (m.uid !== undefined) return m.uid === id?.uid ? 300 + ctx : -1;
    if (m.gid !== undefined) return id?.gids.includes(m.gid) ? 200 + ctx : -1;
    if (m.cgroup !== undefined) {
      const cg = id?.cgroup ?? '';
      const inside = cg === m.cgroup || cg.startsWith(m.cgroup.endsWith('/') ? m.cgroup : `${m.cgroup}/`);
      return inside ? 100 + m.cgroup.length / 1e4 + ctx : -1;
    }
    // a group that matches on the ContextIdentifier alone
    return m.contextIdentifier !== undefined ? 50 + ctx : -1;
  };
  let best: PolicyGroup | undefined;
  let bestRank = -1;
  for (const g of groups) {
    const r = rank(g);
    if (r > bestRank) {
      best = g;
      bestRank = r;
    }
  }
  return best;
}

/** A group that matches on who the caller is (SELinux type, uid, gid, cgroup). */
export function groupNeedsIdentity(g: PolicyGroup): boolean {
  const m = g.match;
  return m.selinux !== undefined || m.uid !== undefined || m.gid !== undefined || m.cgroup !== undefined;
}

// ---- effective configuration ------------------------------------------------------------

/** The application's bearers in its own order, narrowed to what the policy allows. */
export function effectiveBearers(s: Session): BearerEntry[] {
  const wanted = s.request.allowedBearers ?? ['*'];
  const allowed = s.policy?.allowedBearers;
  if (!allowed || allowed.includes('*')) return wanted;
  const out: BearerEntry[] = [];
  for (const b of wanted) {
    if (b === '*') out.push('*');
    else if (allowed.includes(b)) out.push(b);
  }
  return out;
}

/** Whether a bearer is allowed at all by the policy (a `*` in the request is narrowed by it). */
function policyAllows(s: Session, bearer: TechnologyType): boolean {
  const allowed = s.policy?.allowedBearers;
  return !allowed || allowed.includes('*') || allowed.includes(bearer);
}

/** The policy can only narrow: `local` or `internet` from the policy wins over the request. */
export function effectiveType(s: Session): ConnectionType {
  const p = s.policy?.connectionType;
  if (p === undefined || p === 'any') return s.request.connectionType;
  return p;
}

export function effectiveInterface(s: Session): string | undefined {
  return s.policy?.allowedInterface ?? s.request.allowedInterface;
}

/** Settings that need a policy's permission. */
export function grantedEmergency(s: Session): boolean {
  return s.request.emergencyCall && s.policy?.emergencyCall === true;
}

// ---- which service ------------------------------------------------------------------------

/**
 * Where a service stands in the session's preference: the index of the first AllowedBearers
 * entry it matches, or -1. Interface and policy must allow it too.
 */
export function preference(s: Session, svc: Service): number {
  const iface = effectiveInterface(s);
  if (iface !== undefined && iface !== svc.ifname) return -1;
  if (!policyAllows(s, svc.type)) return -1;
  const bearers = effectiveBearers(s);
  for (let i = 0; i < bearers.length; i++) if (bearers[i] === '*' || bearers[i] === svc.type) return i;
  return -1;
}

/** A service a session can use now: connected, and online if the session wants internet. */
export function attachable(s: Session, svc: Service): boolean {
  if (svc.state === 'online') return true;
  return svc.state === 'ready' && effectiveType(s) !== 'internet';
}

/** The session's service: the best attachable match (bearer order, then service order); AvoidHandover keeps the current one while it is usable. */
export function chooseService(engine: EngineState, s: Session, ordered: readonly Service[]): Service | undefined {
  if (s.detached) return undefined;
  if (s.request.avoidHandover && s.serviceId) {
    const cur = engine.services.get(s.serviceId);
    if (cur && attachable(s, cur) && preference(s, cur) >= 0) return cur;
  }
  let best: Service | undefined;
  let bestPref = Infinity;
  for (const svc of ordered) {
    if (!attachable(s, svc)) continue;
    const p = preference(s, svc);
    if (p >= 0 && p < bestPref) {
      best = svc;
      bestPref = p;
    }
  }
  return best;
}

export function sessionState(s: Session, svc: Service | undefined): SessionState {
  if (!svc) return 'disconnected';
  const type = effectiveType(s);
  if (type === 'local') return 'connected';
  if (svc.state === 'online') return 'online';
  return type === 'internet' ? 'disconnected' : 'connected';
}

/**
 * The sessions whose service (or routeVia) changes, as new session objects: all sessions, or
 * only those in `only` (the services did not change since the others were assigned).
 */
export function reassign(sessions: SessionsState, engine: EngineState, only?: Iterable<string>): Session[] {
  const ordered = orderServices(engine.services.values(), engine.config.preferredTechnologies);
  const out: Session[] = [];
  const visit = (s: Session): void => {
    const svc = chooseService(engine, s, ordered);
    let via = svc?.id;
    if (!via && s.routeVia && !s.detached) {
      const last = engine.services.get(s.routeVia);
      if (last && preference(s, last) >= 0) via = s.routeVia;
    }
    if (svc?.id !== s.serviceId || via !== s.routeVia) out.push({ ...s, serviceId: svc?.id, routeVia: via });
  };
  if (only) {
    for (const path of only) {
      const s = sessions.sessions.get(path);
      if (s) visit(s);
    }
  } else for (const s of sessions.sessions.values()) visit(s);
  return out;
}

/** Assigns every session its service. Returns the same object when nothing changed. */
export function assignServices(sessions: SessionsState, engine: EngineState): SessionsState {
  const changed = reassign(sessions, engine);
  if (changed.length === 0) return sessions;
  const map = new Map(sessions.sessions);
  for (const s of changed) map.set(s.path, s);
  return { ...sessions, sessions: map };
}

/** Whether a session asks for a connection now: Connect() or a periodic attempt, and not gone idle. */
export function demanding(s: Session): boolean {
  return (s.active || s.woken) && !s.idle && !s.detached;
}

/**
 * Services sessions want connected: for each demanding session that has no usable service,
 * the best matching service that could come up (carrier, not switched off by the user).
 * One per session, so two sessions pinned to two interfaces both get theirs.
 */
export function sessionDemand(sessions: SessionsState, engine: EngineState): Set<string> {
  const out = new Set<string>();
  const ordered = orderServices(engine.services.values(), engine.config.preferredTechnologies);
  for (const s of sessions.sessions.values()) {
    if (!demanding(s)) continue;
    const cur = s.serviceId ? engine.services.get(s.serviceId) : undefined;
    if (cur && attachable(s, cur)) {
      // keep what it uses up, as long as sessions use it
      if (cur.sessionRequested) out.add(cur.id);
      continue;
    }
    let best: Service | undefined;
    let bestPref = Infinity;
    for (const svc of ordered) {
      if (!svc.carrier || svc.settings.userDisconnected) continue;
      const tech = engine.technologies.get(svc.type);
      if (tech && !tech.powered) continue;
      const p = preference(s, svc);
      if (p >= 0 && p < bestPref) {
        best = svc;
        bestPref = p;
      }
    }
    if (best) out.add(best.id);
  }
  return out;
}

/** The emergency session, while it is connected: its traffic alone may leave. `sessions`: all, or at least every one that asks for EmergencyCall. */
export function emergencySession(sessions: Iterable<Session>, engine: EngineState): Session | undefined {
  for (const s of sessions) {
    if (!grantedEmergency(s) || !s.active || !s.serviceId) continue;
    const svc = engine.services.get(s.serviceId);
    if (svc && attachable(s, svc) && wantsConnection(engine, svc)) return s;
  }
  return undefined;
}

// ---- IdleTimeout, StayConnected, PeriodicConnect ---------------------------------------------

/** how long a connection made by a periodic attempt stays up without traffic, for a session without IdleTimeout */
export const PERIODIC_WINDOW_S = 60;

/** Seconds without traffic after which the session lets its service go; 0 = never. */
export function idleAfter(s: Session): number {
  if (s.request.stayConnected) return 0;
  if (s.request.idleTimeout > 0) return s.request.idleTimeout;
  return s.woken ? PERIODIC_WINDOW_S : 0;
}

export interface IdleVerdict {
  /** sessions that go idle now */
  idle: string[];
  /** when the next group falls due, if traffic stays away */
  nextCheckAt: number | undefined;
  /** the shortest timeout under watch (ms): how often traffic is worth sampling */
  shortestMs: number | undefined;
}

/**
 * Which sessions go idle. Only a service that is up for sessions alone (not AutoConnect, not
 * connected by the user) can go: once every session that asks for it has been without traffic
 * for the longest IdleTimeout among them (seed 001), they all stop asking, and it goes offline.
 * A session with StayConnected, or without IdleTimeout, holds it up. `lastTraffic` is when a
 * session's marker last saw packets (sampled counters); idle time never counts from before
 * the session began to ask.
 */
export function idleSessions(sessions: SessionsState, engine: EngineState, lastTraffic: ReadonlyMap<number, number>, now: number): IdleVerdict {
  const groups = new Map<string, Session[]>();
  for (const s of sessions.sessions.values()) {
    if (!demanding(s) || !s.serviceId) continue;
    const svc = engine.services.get(s.serviceId);
    if (!svc?.sessionRequested || svc.settings.autoConnect || svc.connectRequested || !attachable(s, svc)) continue;
    const g = groups.get(svc.id);
    if (g) g.push(s);
    else groups.set(svc.id, [s]);
  }
  const out: IdleVerdict = { idle: [], nextCheckAt: undefined, shortestMs: undefined };
  for (const users of groups.values()) {
    const timeouts = users.map(idleAfter);
    if (timeouts.includes(0)) continue;
    const ms = Math.max(...timeouts) * 1000;
    const last = Math.max(...users.map((s) => Math.max(s.demandSince, lastTraffic.get(s.marker) ?? 0)));
    if (now >= last + ms) out.idle.push(...users.map((s) => s.path));
    else {
      out.nextCheckAt = Math.min(out.nextCheckAt ?? Infinity, last + ms);
      out.shortestMs = Math.min(out.shortestMs ?? Infinity, ms);
    }
  }
  return out;
}

const periodMs = (s: Session): number => s.request.periodicConnect * 60_000;

/**
 * PeriodicConnect attempts fall on multiples of their period on the clock, so attempts of
 * sessions coincide (10 and 5 minutes meet every 10 minutes): one wake-up serves them all.
 * Due in (from, to]: sessions with a period boundary in between that have no service now
 * (one that has a service got its chance already) and were not disconnected by their owner.
 */
export function periodicDue(sessions: SessionsState, from: number, to: number): string[] {
  const out: string[] = [];
  for (const s of sessions.sessions.values()) {
    const p = periodMs(s);
    if (p <= 0 || s.detached || s.serviceId) continue;
    if (Math.floor(to / p) > Math.floor(from / p)) out.push(s.path);
  }
  return out;
}

/** The next PeriodicConnect boundary after `now`, if any session has a period. */
export function nextPeriodicAt(sessions: SessionsState, now: number): number | undefined {
  let next: number | undefined;
  for (const s of sessions.sessions.values()) {
    const p = periodMs(s);
    if (p <= 0 || s.detached) continue;
    const at = (Math.floor(now / p) + 1) * p;
    if (next === undefined || at < next) next = at;
  }
  return next;
}
