// The daemon's sessions: their state, the commands the D-Bus objects run on them, and the
// rules of the game that need the daemon's context (markers, permissions, emergency mode,
// policy changes). The semantics live in src/engine/sessions.ts; this keeps the state.
import type { CommandError } from '../engine/engine.ts';
import { demanding, emergencySession, groupNeedsIdentity, matchPolicy, sessionPath } from '../engine/sessions.ts';
import { MAX_SESSIONS, allocateMarker, markerIndex, routedByOwnRules } from '../engine/session-routing.ts';
import type { Identity, PolicyGroup, Session, SessionRequest, SessionsState } from '../engine/session-types.ts';
import type { EngineState } from '../engine/types.ts';

/** a marker stays unused this long after its session ended (its sockets fail closed meanwhile) */
const MARKER_QUARANTINE_MS = 60_000;

export interface SessionHostHooks {
  engine(): EngineState;
  now(): number;
  /** the sessions changed: reassign, notify, reconcile */
  changed(removed: { session: Session; byDaemon: boolean }[]): void;
}

const err = (name: CommandError['name'], message: string): CommandError => ({ name, message });

export class SessionHost {
  state: SessionsState = { sessions: new Map(), policies: [], nextMarker: 0 };
  private readonly freedAt = new Map<number, number>();
  /** markers in use: kept as sessions come and go (a scan of 10,000 sessions per create adds up) */
  private readonly used = new Set<number>();
  private dirty = new Set<string>();
  /** no marker below this index is free (allocation scans from here) */
  private scanFrom = 0;
  /** session paths by owner (a connection that goes ends all of its sessions) */
  private readonly byOwner = new Map<string, Set<string>>();
  /** sessions that ask for EmergencyCall (emergency() is asked at every create and sync: no scan of every session) */
  private readonly asksEmergency = new Set<string>();
  /** sessions that ask for a connection or have a PeriodicConnect: all that the demand and the clocks look at */
  private readonly asking = new Map<string, Session>();
  /** sessions with kernel state of their own (routedByOwnRules): the session nft table exists for them */
  private readonly withOwnRules = new Set<string>();

  constructor(private readonly hooks: SessionHostHooks) {}

  /**
   * The sessions that ask for a connection (Connect(), a periodic attempt) or have a
   * PeriodicConnect, as a state of their own: sessionDemand, idleSessions, nextPeriodicAt and
   * periodicDue skip every other session, and this keeps them from visiting thousands that
   * only follow (free ride) at each create.
   */
  askingState(): SessionsState {
    return { ...this.state, sessions: this.asking };
  }

  /** Whether any session has kernel state of its own (then the session nft table is needed). */
  anyWithOwnRules(): boolean {
    return this.withOwnRules.size > 0;
  }

  /**
   * Whether a new session must wait for its owner's identity: only while some policy group
   * matches on it. Otherwise a session is made at once, and learns its owner's identity when
   * a policy comes that matches on it (identified): an application's first call is spared a
   * round trip to the bus, and the bus a lookup per application.
   */
  needsIdentity(): boolean {
    return this.state.policies.some(groupNeedsIdentity);
  }

  /** Owners of sessions made without their identity. */
  unidentifiedOwners(): string[] {
    const out: string[] = [];
    for (const [owner, paths] of this.byOwner) {
      for (const p of paths) {
        if (this.state.sessions.get(p)?.identity) continue;
        out.push(owner);
        break;
      }
    }
    return out;
  }

  /** A live session has this marker (one that ended may still be in quarantine: not in use). */
  markerInUse(marker: number): boolean {
    return this.used.has(marker);
  }

  /** Puts a session (new or changed) in the state and in the indexes of the sessions that ask for something. */
  private put(s: Session): void {
    this.state.sessions.set(s.path, s);
    this.track(s);
  }

  private track(s: Session): void {
    if (s.request.emergencyCall) this.asksEmergency.add(s.path);
    else this.asksEmergency.delete(s.path);
    if (demanding(s) || s.request.periodicConnect > 0) this.asking.set(s.path, s);
    else this.asking.delete(s.path);
    if (routedByOwnRules(s)) this.withOwnRules.add(s.path);
    else this.withOwnRules.delete(s.path);
  }

  emergency(): Session | undefined {
    if (this.asksEmergency.size === 0) return undefined;
    // with several, the first in the sessions' order is the one (a scan keeps that order)
    const [only] = this.asksEmergency;
    const one = this.asksEmergency.size === 1 && only !== undefined ? this.state.sessions.get(only) : undefined;
    return emergencySession(one ? [one] : this.state.sessions.values(), this.hooks.engine());
  }

  /** Settings that only a policy can grant. */
  private permission(request: SessionRequest, policy: PolicyGroup | undefined): CommandError | undefined {
    if (request.emergencyCall && policy?.emergencyCall !== true) return err('PermissionDenied', 'EmergencyCall needs a policy that grants it');
    if (request.priority && policy?.priority !== true) return err('PermissionDenied', 'Priority needs a policy that grants it');
    if (request.roamingPolicy === 'always' && policy?.roamingPolicy !== 'always') return err('PermissionDenied', 'RoamingPolicy always needs a policy that grants it');
    return undefined;
  }

  create(owner: string, notifier: string, request: SessionRequest, identity: Identity | undefined): Session | CommandError {
    const path = sessionPath(owner, notifier);
    if (this.state.sessions.has(path)) return err('AlreadyExists', `session ${path} exists`);
    if (this.emergency()) return err('Failed', 'Device or resource busy: an emergency call is in progress');
    if (this.state.sessions.size >= MAX_SESSIONS) return err('Failed', `too many sessions (at most ${MAX_SESSIONS})`);
    const policy = matchPolicy(this.state.policies, identity, request.contextIdentifier);
    const denied = this.permission(request, policy);
    if (denied) return denied;
    const now = this.hooks.now();
    let marker = allocateMarker(this.used, this.freedAt, now, MARKER_QUARANTINE_MS, this.scanFrom);
    // markers below the hint may have left their quarantine meanwhile
    if (marker === undefined && this.scanFrom > 0) marker = allocateMarker(this.used, this.freedAt, now, MARKER_QUARANTINE_MS);
    if (marker === undefined) return err('Failed', 'no free session marker');
    this.scanFrom = markerIndex(marker) + 1;
    this.freedAt.delete(marker);
    this.used.add(marker);
    const s: Session = { path, owner, notifier, identity, request, policy, marker, active: false, detached: false, idle: false, woken: false, demandSince: now, serviceId: undefined, routeVia: undefined, createdAt: now };
    this.put(s);
    this.state = { ...this.state };
    this.dirty.add(path);
    const own = this.byOwner.get(owner);
    if (own) own.add(path);
    else this.byOwner.set(owner, new Set([path]));
    this.hooks.changed([]);
    return s;
  }

  private update(path: string, f: (s: Session) => Session | CommandError): CommandError | undefined {
    const s = this.state.sessions.get(path);
    if (!s) return err('NotFound', `no session ${path}`);
    const next = f(s);
    if ('name' in next) return next;
    if (next === s) return undefined;
    this.put(next);
    this.dirty.add(path);
    this.state = { ...this.state };
    this.hooks.changed([]);
    return undefined;
  }

  /** Sessions created or changed since the last takeDirty(): they need a service assigned. */
  takeDirty(): Set<string> {
    const d = this.dirty;
    this.dirty = new Set();
    return d;
  }

  /** New service assignments (src/engine/sessions.ts reassign). */
  assign(updated: readonly Session[]): void {
    if (updated.length === 0) return;
    for (const s of updated) if (this.state.sessions.has(s.path)) this.put(s);
    this.state = { ...this.state };
  }

  private free(s: Session): void {
    this.asksEmergency.delete(s.path);
    this.asking.delete(s.path);
    this.withOwnRules.delete(s.path);
    this.used.delete(s.marker);
    this.scanFrom = Math.min(this.scanFrom, markerIndex(s.marker));
    this.freedAt.set(s.marker, this.hooks.now());
    const own = this.byOwner.get(s.owner);
    own?.delete(s.path);
    if (own?.size === 0) this.byOwner.delete(s.owner);
  }

  /** Other sessions may not connect, disconnect or end while an emergency call is on. */
  private blockedByEmergency(path: string): CommandError | undefined {
    const e = this.emergency();
    return e && e.path !== path ? err('Failed', 'Device or resource busy: an emergency call is in progress') : undefined;
  }

  connect(path: string): CommandError | undefined {
    // Connect() also wakes a session that went idle
    return this.blockedByEmergency(path) ?? this.update(path, (s) => (s.active && !s.detached && !s.idle ? s : { ...s, active: true, detached: false, idle: false, demandSince: this.hooks.now() }));
  }

  disconnect(path: string): CommandError | undefined {
    // ConnMan: the session reports disconnected even if its service stays up, until Connect()
    return this.blockedByEmergency(path) ?? this.update(path, (s) => (!s.active && s.detached ? s : { ...s, active: false, detached: true, idle: false, woken: false }));
  }

  change(path: string, request: SessionRequest): CommandError | undefined {
    return this.update(path, (s) => {
      const policy = request.contextIdentifier !== s.request.contextIdentifier ? matchPolicy(this.state.policies, s.identity, request.contextIdentifier) : s.policy;
      const denied = this.permission(request, policy);
      if (denied) return denied;
      return { ...s, request, policy };
    });
  }

  /** IdleTimeout passed without traffic: these sessions stop asking for their service. */
  goIdle(paths: readonly string[]): void {
    this.updateMany(paths, (s) => (s.idle ? s : { ...s, idle: true, woken: false }));
  }

  /** A PeriodicConnect attempt: these sessions ask for a connection again. */
  wake(paths: readonly string[]): void {
    const now = this.hooks.now();
    this.updateMany(paths, (s) => (s.detached ? s : { ...s, idle: false, woken: !s.active, demandSince: now }));
  }

  private updateMany(paths: readonly string[], f: (s: Session) => Session): void {
    let changed = false;
    for (const path of paths) {
      const s = this.state.sessions.get(path);
      if (!s) continue;
      const next = f(s);
      if (next === s) continue;
      this.put(next);
      this.dirty.add(path);
      changed = true;
    }
    if (!changed) return;
    this.state = { ...this.state };
    this.hooks.changed([]);
  }

  destroy(path: string, byDaemon = false): void {
    const s = this.state.sessions.get(path);
    if (!s) return;
    this.state.sessions.delete(path);
    this.state = { ...this.state };
    this.free(s);
    this.hooks.changed([{ session: s, byDaemon }]);
  }

  /** The owner left the bus: its sessions end, without Release (there is nobody to tell). */
  ownerGone(owner: string): void {
    const mine: Session[] = [];
    for (const path of this.byOwner.get(owner) ?? []) {
      const s = this.state.sessions.get(path);
      if (s) mine.push(s);
    }
    this.byOwner.delete(owner);
    if (mine.length === 0) return;
    for (const s of mine) {
      this.state.sessions.delete(s.path);
      this.free(s);
    }
    this.state = { ...this.state };
    // the owner is gone: no Update, no Release
    this.hooks.changed(mine.map((session) => ({ session, byDaemon: false })));
  }

  /** Takes a session out (the caller tells the hooks): ended by the daemon, so its owner gets Release. */
  private endByDaemon(s: Session): { session: Session; byDaemon: boolean } {
    this.state.sessions.delete(s.path);
    this.free(s);
    return { session: s, byDaemon: true };
  }

  /**
   * The bus told who an owner is, after its sessions were made without waiting: they are
   * matched again with it, as when the policies change (a policy that came meanwhile applies).
   */
  identified(owner: string, identity: Identity): void {
    const removed: { session: Session; byDaemon: boolean }[] = [];
    let changed = false;
    for (const path of [...(this.byOwner.get(owner) ?? [])]) {
      const s = this.state.sessions.get(path);
      if (!s || s.identity) continue;
      const policy = matchPolicy(this.state.policies, identity, s.request.contextIdentifier);
      if (this.permission(s.request, policy)) {
        removed.push(this.endByDaemon(s));
        continue;
      }
      this.put({ ...s, identity, policy });
      if (policy !== s.policy) {
        this.dirty.add(path);
        changed = true;
      }
    }
    if (removed.length === 0 && !changed) return;
    this.state = { ...this.state };
    this.hooks.changed(removed);
  }

  /**
   * The bus would not say who an owner is while a policy matches on identity: its sessions made
   * without one end (with Release), since they might be ones the policy restricts.
   */
  unidentifiable(owner: string): void {
    const removed: { session: Session; byDaemon: boolean }[] = [];
    for (const path of [...(this.byOwner.get(owner) ?? [])]) {
      const s = this.state.sessions.get(path);
      if (!s || s.identity) continue;
      removed.push(this.endByDaemon(s));
    }
    if (removed.length === 0) return;
    this.state = { ...this.state };
    this.hooks.changed(removed);
  }

  /**
   * New policies: every session is matched again. A session whose request the new policy no
   * longer permits (an emergency or priority grant taken away) is ended by the daemon, with Release.
   */
  setPolicies(groups: PolicyGroup[]): void {
    const sessions = new Map<string, Session>();
    const removed: { session: Session; byDaemon: boolean }[] = [];
    for (const [path, s] of this.state.sessions) {
      const policy = matchPolicy(groups, s.identity, s.request.contextIdentifier);
      if (this.permission(s.request, policy)) {
        removed.push({ session: s, byDaemon: true });
        this.free(s);
        continue;
      }
      if (policy !== s.policy) this.dirty.add(path);
      const kept = policy === s.policy ? s : { ...s, policy };
      sessions.set(path, kept);
      this.track(kept);
    }
    this.state = { ...this.state, sessions, policies: groups };
    this.hooks.changed(removed);
  }

  /** Shutdown: every session ends with Release. */
  releaseAll(): void {
    const all = [...this.state.sessions.values()];
    for (const s of all) this.free(s);
    this.state = { ...this.state, sessions: new Map() };
    this.hooks.changed(all.map((session) => ({ session, byDaemon: true })));
  }
}
