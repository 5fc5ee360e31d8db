// The daemon's sessions: their state, the commands the D-Bus objects run on them, and the
// rules of the game that need the daemon's context (markers, permissions, emergency mode,
// policy changes). The semantics live in src/engine/sessions.ts; this keeps the state.
import type { CommandError } from '../engine/engine.ts';
import { emergencySession, matchPolicy, sessionPath } from '../engine/sessions.ts';
import { MAX_SESSIONS, allocateMarker } from '../engine/session-routing.ts';
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

  constructor(private readonly hooks: SessionHostHooks) {}

  emergency(): Session | undefined {
    return emergencySession(this.state, this.hooks.engine());
  }

  /** Settings that only a policy can grant. */
  private permission(request: SessionRequest, policy: PolicyGroup | undefined): CommandError | undefined {
    if (request.emergencyCall && policy?.emergencyCall !== true) return err('PermissionDenied', 'EmergencyCall needs a policy that grants it');
    if (request.priority && policy?.priority !== true) return err('PermissionDenied', 'Priority needs a policy that grants it');
    if (request.roamingPolicy === 'always' && policy?.roamingPolicy !== 'always') return err('PermissionDenied', 'RoamingPolicy always needs a policy that grants it');
    return undefined;
  }

  create(owner: string, notifier: string, request: SessionRequest, identity: Identity): Session | CommandError {
    const path = sessionPath(owner, notifier);
    if (this.state.sessions.has(path)) return err('AlreadyExists', `session ${path} exists`);
    if (this.emergency()) return err('Failed', 'Device or resource busy: an emergency call is in progress');
    if (this.state.sessions.size >= MAX_SESSIONS) return err('Failed', `too many sessions (at most ${MAX_SESSIONS})`);
    const policy = matchPolicy(this.state.policies, identity, request.contextIdentifier);
    const denied = this.permission(request, policy);
    if (denied) return denied;
    const now = this.hooks.now();
    const used = new Set<number>();
    for (const s of this.state.sessions.values()) used.add(s.marker);
    const marker = allocateMarker(used, this.freedAt, now, MARKER_QUARANTINE_MS);
    if (marker === undefined) return err('Failed', 'no free session marker');
    this.freedAt.delete(marker);
    const s: Session = { path, owner, notifier, identity, request, policy, marker, active: false, detached: false, idle: false, woken: false, demandSince: now, serviceId: undefined, routeVia: undefined, createdAt: now };
    const sessions = new Map(this.state.sessions);
    sessions.set(path, s);
    this.state = { ...this.state, sessions };
    this.hooks.changed([]);
    return s;
  }

  private update(path: string, f: (s: Session) => Session | CommandError): CommandError | undefined {
    const s = this.state.sessions.get(path);
    if (!s) return err('NotFound', `no session ${path}`);
    const next = f(s);
    if ('name' in next) return next;
    if (next === s) return undefined;
    const sessions = new Map(this.state.sessions);
    sessions.set(path, next);
    this.state = { ...this.state, sessions };
    this.hooks.changed([]);
    return undefined;
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
    let sessions: Map<string, Session> | undefined;
    for (const path of paths) {
      const s = this.state.sessions.get(path);
      if (!s) continue;
      const next = f(s);
      if (next === s) continue;
      sessions ??= new Map(this.state.sessions);
      sessions.set(path, next);
    }
    if (!sessions) return;
    this.state = { ...this.state, sessions };
    this.hooks.changed([]);
  }

  destroy(path: string, byDaemon = false): void {
    const s = this.state.sessions.get(path);
    if (!s) return;
    const sessions = new Map(this.state.sessions);
    sessions.delete(path);
    this.state = { ...this.state, sessions };
    this.freedAt.set(s.marker, this.hooks.now());
    this.hooks.changed([{ session: s, byDaemon }]);
  }

  /** The owner left the bus: its sessions end, without Release (there is nobody to tell). */
  ownerGone(owner: string): void {
    const mine = [...this.state.sessions.values()].filter((s) => s.owner === owner);
    if (mine.length === 0) return;
    const sessions = new Map(this.state.sessions);
    for (const s of mine) {
      sessions.delete(s.path);
      this.freedAt.set(s.marker, this.hooks.now());
    }
    this.state = { ...this.state, sessions };
    // the owner is gone: no Update, no Release
    this.hooks.changed(mine.map((session) => ({ session, byDaemon: false })));
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
        this.freedAt.set(s.marker, this.hooks.now());
        continue;
      }
      sessions.set(path, policy === s.policy ? s : { ...s, policy });
    }
    this.state = { ...this.state, sessions, policies: groups };
    this.hooks.changed(removed);
  }

  /** Shutdown: every session ends with Release. */
  releaseAll(): void {
    const all = [...this.state.sessions.values()];
    this.state = { ...this.state, sessions: new Map() };
    this.hooks.changed(all.map((session) => ({ session, byDaemon: true })));
  }
}
