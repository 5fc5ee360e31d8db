// netsessiond's imperative shell. Facts come in (netlink events through the mirror, DHCP
// leases, router advertisements, online-check results, D-Bus calls, timers), the engine
// computes the next state, and this class carries out what that state asks for: the
// kernel through the reconciler, DHCP clients, router solicitations, online checks,
// D-Bus signals, resolv.conf and the state directory. Data flows one way.
import { mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type dbus from 'dbus-next';
import { ConnmanApi } from '../api/connman/connman-api.ts';
import { BusConnection } from '../api/bus/bus-connection.ts';
import { type SessionController, SessionApi } from '../api/connman/session.ts';
import { reassign, sessionDemand } from '../engine/sessions.ts';
import { cgroupPolicyPaths, indexSessionRules, nftCounts, nftRoutes, type SessionRuleIndex, sessionCounterCleanup, sessionNft, sessionRoutingInputs, sessionRuleDelta, routedByOwnRules, sessionRules } from '../engine/session-routing.ts';
import type { NftTableModel } from '../kernel/nft/model.ts';
import { CgroupWatch } from './cgroup-watch.ts';
import type { Identity, Session, SessionsState } from '../engine/session-types.ts';
import { SessionHost } from './session-host.ts';
import { SessionScheduler } from './session-scheduler.ts';
import { CallerGoneError, CallerIdentities, cgroupOfPid } from './policy/identity.ts';
import { PolicyDirectory } from './policy/policy-dir.ts';
import type { Controller } from '../api/connman/controller.ts';
import { DhcpClient, type DhcpLeaseEvent, type Lease } from '../bearers/dhcp/dhcp-client.ts';
import { RouterListener, type RouterEvent } from '../bearers/ipv6/router-listener.ts';
import { RouterTable } from '../bearers/ipv6/router-table.ts';
import { checkOnline } from '../bearers/online/online-check.ts';
import { configureUplink, restoreUplink, type UplinkSnapshot, writeSysctl } from '../bearers/sysctl.ts';
import {
  type Command,
  type CommandError,
  command,
  createState,
  domainsOf,
  dueChecks,
  type EngineEvent,
  ipv4Of,
  ipv6Of,
  nameserversOf,
  nextDeadline,
  reduce,
  wantsConnection,
} from '../engine/engine.ts';
import { desiredNetwork } from '../engine/routing.ts';
import type { DhcpLease, EngineState, Service } from '../engine/types.ts';
import { KernelMirror } from '../kernel/kernel-mirror.ts';
import { AF_INET6, IFA_F_DADFAILED, IFA_F_TENTATIVE, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN, RTPROT_RA } from '../kernel/netlink/constants.ts';
import { familyOf } from '../kernel/netlink/codec.ts';
import { Nft } from '../kernel/nft/nft.ts';
import { ownsRoute, ownsRule } from '../kernel/reconciler/ownership.ts';
import { addressKey } from '../kernel/rtnetlink/address.ts';
import { routeBaseKey } from '../kernel/rtnetlink/route.ts';
import { ruleKey } from '../kernel/rtnetlink/rule.ts';
import { type ReconcileReport, Reconciler } from '../kernel/reconciler/reconciler.ts';
import type { RtEvent } from '../kernel/rtnetlink/events.ts';
import type { Link, Rule } from '../kernel/rtnetlink/types.ts';
import { type DaemonConfig, parseConfig, defaultConfig } from './config.ts';
import type { Logger } from './log.ts';
import { parseProvisioning } from './provisioning.ts';
import { leasesToGoOnWith, routersToHold } from './carry-over.ts';
import { StateStore } from './state-store.ts';
import { warmUp } from './warm-up.ts';

export interface DaemonOptions {
  configPath?: string;
  stateDir: string;
  /** D-Bus address; default: the system bus ($DBUS_SYSTEM_BUS_ADDRESS or its standard socket) */
  busAddress?: string;
  busName: string;
  log: Logger;
  /** interface names to manage only (flag --allow) */
  allow?: string[];
  /** more interface name prefixes never to manage (flag --deny) */
  deny?: string[];
  /**
   * The bus connection ended while running (the bus daemon stopped or dropped us). Every
   * session's owner is gone with it; netsessiond (main.ts) exits for its supervisor to start it
   * again on the new bus, going on with the leases and routes of this run as after a crash.
   */
  onBusLost?: (e: Error) => void;
  /** run the CreateSession paths on throwaway inputs once started (warm-up.ts); default true */
  warmUp?: boolean;
}

/** link kinds that can be uplinks; bridges, tunnels, dummies and the like are not */
const UPLINK_KINDS = new Set([undefined, 'veth', 'vlan', 'bond', 'macvlan']);
const RECONCILE_RETRY_MS = 1000;
/**
 * how long an IPv6 router of the last run is held at start without an advertisement: a router
 * answers a solicitation within 0.5 s (RFC 4861 §6.2.6) and we send four in 7 s
 */
const HELD_ROUTER_S = 10;

/** Monotonic milliseconds on the epoch scale: timers and leases do not jump with the wall clock. */
export const clock = (): number => performance.timeOrigin + performance.now();

/** The engine's view of a DHCP client's lease: its expiry moved from the wall clock to ours. */
function engineLease(l: Lease): DhcpLease {
  return {
    address: l.address,
    prefixLen: l.prefixLen,
    ...(l.router ? { router: l.router } : {}),
    dns: l.dns,
    ...(l.domain ? { domain: l.domain } : {}),
    searchDomains: l.searchDomains,
    ntp: l.ntp,
    ...(l.mtu ? { mtu: l.mtu } : {}),
    leaseSeconds: l.leaseSeconds,
    expiresAt: clock() + (l.expiresAt - Date.now()),
    serverId: l.serverId,
  };
}

/** The sessions' rules of a full pass, what they were made from, and their keys. */
interface SessionRulesMade {
  readonly sessions: SessionsState;
  /** sessionRoutingInputs of the engine state */
  readonly inputs: string;
  readonly emergency: number | undefined;
  readonly rules: Rule[];
  readonly keys: string[];
}

export class Netsessiond {
  private state: EngineState;
  private readonly log: Logger;
  private readonly cfg: DaemonConfig;
  private mirror!: KernelMirror;
  private reconciler!: Reconciler;
  private api: ConnmanApi | undefined;
  private bus: BusConnection | undefined;
  private routerListener: RouterListener | undefined;
  private routers = RouterTable.empty;
  private readonly raInfo = new Map<number, { rdnss: string[]; dnssl: string[] }>();
  private readonly dhcp = new Map<number, DhcpClient>();
  private readonly uplinks = new Map<number, UplinkSnapshot>();
  private readonly connectWaiters = new Set<{ check: () => boolean }>();
  private readonly sessions: SessionHost;
  /** the services the sessions were last assigned against (all are assigned again when they change) */
  private assignedFor: EngineState['services'] | undefined;
  private readonly scheduler: SessionScheduler;
  private sessionApi: SessionApi | undefined;
  private identities: CallerIdentities | undefined;
  private policyDir: PolicyDirectory | undefined;
  private readonly pendingRemoved: { session: Session; byDaemon: boolean }[] = [];
  /** markers of ended sessions whose nft counters are still to be removed */
  private endedMarkers: number[] = [];
  /** for reading and pruning the session counters (the reconciler owns the table's shape) */
  private readonly counterNft = new Nft();
  private readonly unpublished: { session: Session; byDaemon: boolean }[] = [];
  private sessionsTimer: NodeJS.Immediate | undefined;
  /** the warm-up's next slice (warm-up.ts), while it runs */
  private warming: NodeJS.Immediate | undefined;
  private flushQueued = false;
  private readonly ipv6Profiles = new Map<number, 'auto' | 'manual' | 'off'>();
  private readonly solicited = new Map<number, NodeJS.Timeout>();
  private readonly linkRequests = new Set<number>();
  private readonly store: StateStore;
  private timer: NodeJS.Timeout | undefined;
  private reconciling = false;
  private reconcileAgain = false;
  /** the next pass must plan everything (not only sessions' own rules) */
  private fullPending = true;
  /** sessions' marker rules as the kernel holds them, per session (from the last full pass on) */
  private sessionIndex: SessionRuleIndex | undefined;
  /** what the index was made for: a fast pass is right only while these stay */
  private indexedFor: { services: EngineState['services']; emergency: number | undefined } | undefined;
  /**
   * The services whose state (addresses, routes, rules) the kernel holds: set by a full pass
   * without errors, forgotten when a pass fails or one of ours is taken away behind our back.
   */
  private kernelFor: EngineState['services'] | undefined;
  /** how many times the kernel was seen to differ from what we want (kernelDiverged) */
  private divergences = 0;
  /** every session was told after the last full pass (so a sessions pass need tell only its own) */
  private toldAll = false;
  /** sessions created, changed or ended since the last pass (paths; the ended ones themselves) */
  private readonly sessionDelta = { changed: new Set<string>(), removed: [] as Session[] };
  /** keys of the rules and routes the last reconcile wanted: a deletion of one is put right */
  private desiredRules = new Set<string>();
  /** what desiredRules was made of (it is 2 keys per session: made again only when they change) */
  private desiredRulesFor: { made: SessionRulesMade; network: string } | undefined;
  /** the sessions' rules of the last full pass, and what they were made from */
  private sessionRulesMade: SessionRulesMade | undefined;
  /** what the last full pass without errors or conflicts put in the kernel */
  private applied: { network: string; sessionRules: readonly Rule[] } | undefined;
  private desiredRoutes = new Set<string>();
  /** keys of the addresses the last plan wants (rtnetlink/address.ts addressKey) */
  private desiredAddresses = new Set<string>();
  /** the session nft table last applied */
  private nftRouting: NftTableModel | undefined;
  private reconcileRetry: NodeJS.Timeout | undefined;
  private loop: Promise<void> = Promise.resolve();
  private resolvWritten: string | undefined;
  private stopping = false;
  private started = false;
  /** links whose IPv6 router is one of the last run's, held until an advertisement confirms it */
  private readonly unconfirmedRouters = new Set<number>();
  /** leases of the last run gone on with, by service id, until the service's DHCP client takes them over */
  private readonly heldLeases = new Map<string, Lease>();
  /** which cgroups of cgroup policies exist (our nft table names only those) */
  private readonly cgroups = new CgroupWatch({ onChange: () => this.scheduleReconcile(), warn: (m) => this.log.warn(m) });

  private constructor(private readonly opts: DaemonOptions) {
    this.log = opts.log;
    this.cfg = opts.configPath ? parseConfig(readFileSync(opts.configPath, 'utf8')) : defaultConfig();
    for (const w of this.cfg.warnings) this.log.warn(`config: ${w}`);
    if (opts.allow?.length) this.cfg.engine.interfaceAllowlist = opts.allow;
    if (opts.deny?.length) this.cfg.engine.interfaceBlacklist.push(...opts.deny);
    this.cfg.engine.provisioning = this.loadProvisioning();
    this.store = new StateStore(opts.stateDir, this.log.child('store'));
    const g = this.store.loadGlobal();
    this.state = createState(this.cfg.engine, { offlineMode: g.offlineMode, powered: g.powered, services: this.store.loadServices() });
    this.sessions = new SessionHost({
      engine: () => this.state,
      now: clock,
      changed: (removed) => this.sessionsChanged(removed),
    });
    this.scheduler = new SessionScheduler({
      host: this.sessions,
      engine: () => this.state,
      now: clock,
      readCounters: () => this.readSessionCounters(),
      log: this.log.child('sessions'),
    });
  }

  /** Packets per SessionMarker, sent and received, from our nft table's counter sets. */
  private async readSessionCounters(): Promise<Map<number, number>> {
    const out = new Map<number, number>();
    const t = await this.counterNft.observe(this.cfg.ownership.nftTable.family, this.cfg.ownership.nftTable.name);
    for (const set of ['session_tx', 'session_rx']) {
      for (const el of t?.elements.get(set)?.values() ?? []) {
        if (typeof el.key === 'number' && el.counter) out.set(el.key, (out.get(el.key) ?? 0) + el.counter.packets);
      }
    }
    return out;
  }

  private loadProvisioning(): DaemonConfig['engine']['provisioning'] {
    const dir = this.cfg.provisioningDir;
    if (!dir) return [];
    const out: DaemonConfig['engine']['provisioning'] = [];
    let files: string[] = [];
    try {
      files = readdirSync(dir).filter((f) => f.endsWith('.config'));
    } catch (e) {
      this.log.warn(`provisioning directory ${dir}: ${(e as Error).message}`);
      return [];
    }
    for (const f of files.sort()) {
      try {
        const r = parseProvisioning(readFileSync(join(dir, f), 'utf8'), f);
        for (const w of r.warnings) this.log.warn(`provisioning: ${w}`);
        out.push(...r.services);
      } catch (e) {
        this.log.warn(`provisioning: ${f}: ${(e as Error).message}`);
      }
    }
    return out;
  }

  static async start(opts: DaemonOptions): Promise<Netsessiond> {
    const d = new Netsessiond(opts);
    try {
      await d.init();
    } catch (e) {
      await d.stop().catch(() => undefined);
      throw e;
    }
    return d;
  }

  private async init(): Promise<void> {
    const klog = this.log.child('kernel');
    this.mirror = KernelMirror.open({ onWarning: (w) => klog.warn(w) });
    await this.mirror.ready;
    this.reconciler = new Reconciler(this.mirror, new Nft({ cgroup2Mount: this.cgroups.view.nftNeedsMount }), this.cfg.ownership);
    try {
      this.routerListener = RouterListener.open({
        onRouter: (ev) => this.onRouter(ev),
        onError: (e) => this.log.child('ra').warn(e.message),
        now: clock,
      });
    } catch (e) {
      this.log.warn(`IPv6 router advertisements cannot be received (${(e as Error).message}): IPv6 default routes will be missing`);
    }
    this.mirror.onEvent((ev) => this.onKernelEvent(ev));
    // coldplug: every link the kernel has now
    for (const l of this.mirror.state.links.values()) this.feedLink(l);
    for (const l of this.mirror.state.links.values()) this.feedIpv6Addresses(l.index);
    this.goOnWithLeases(this.store.loadLeases());
    this.goOnWithRouters();

    const controller: Controller = {
      state: () => this.state,
      now: clock,
      execute: (cmd) => this.execute(cmd),
      waitConnected: (id, timeoutMs) => this.waitConnected(id, timeoutMs),
    };
    const address = this.opts.busAddress ?? process.env.DBUS_SYSTEM_BUS_ADDRESS ?? 'unix:path=/run/dbus/system_bus_socket';
    const bus = await BusConnection.connect(address);
    this.bus = bus;
    this.bus.on('error', (e: unknown) => this.log.error(`D-Bus connection: ${e instanceof Error ? e.message : String(e)}`));
    this.bus.on('close', (e) => {
      if (!this.stopping) this.opts.onBusLost?.(e);
    });
    this.api = new ConnmanApi(this.bus, controller, {
      busName: this.opts.busName,
      onInternalError: (e) => this.log.error(`D-Bus handler failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`),
      // a session a call created or changed goes on at once, right behind the call's reply
      afterReply: () => this.flushSessionsSoon(),
    });
    const sessionCtl: SessionController = {
      sessions: () => this.sessions.state,
      engine: () => this.state,
      now: clock,
      emergency: () => this.sessions.emergency(),
      identify: (sender) => this.identify(sender),
      knownIdentity: (sender) => this.identities?.known(sender),
      needsIdentity: () => this.sessions.needsIdentity(),
      create: (owner, notifier, request, identity) => this.sessions.create(owner, notifier, request, identity),
      destroy: (path) => this.sessions.destroy(path),
      connect: (path) => this.sessions.connect(path),
      disconnect: (path) => this.sessions.disconnect(path),
      change: (path, request) => this.sessions.change(path, request),
    };
    this.identities = new CallerIdentities(this.bus);
    const plog = this.log.child('policy');
    this.policyDir = new PolicyDirectory({
      dir: this.cfg.sessionPolicyDir,
      onChange: (groups) => {
        plog.info(`${groups.length} policy group(s) in force`);
        this.sessions.setPolicies(groups);
        // sessions made while no policy asked who their owners are: now one may
        if (this.sessions.needsIdentity()) for (const owner of this.sessions.unidentifiedOwners()) this.learnIdentity(owner);
      },
      log: (level, msg) => plog[level](msg),
    });
    this.sessions.state = { ...this.sessions.state, policies: this.policyDir.start() };
    this.sessionApi = new SessionApi(this.bus, this.api.tree, sessionCtl);
    this.api.addManagerMethods(this.sessionApi.managerMethods());
    await this.watchOwners();
    await this.api.claimName();
    this.started = true;
    this.afterChange(undefined);
    this.log.info(`started: ${this.state.services.size} service(s), bus name ${this.opts.busName}, state in ${this.opts.stateDir}`);
    if (this.opts.warmUp !== false) this.warmUp();
  }

  /** Runs warm-up.ts a slice per turn, calls and kernel events going first. */
  private warmUp(): void {
    const steps = warmUp({ engine: () => this.state, now: clock, layout: this.sessionLayout() });
    let slices = 0;
    let cpuUs = 0;
    const next = (): void => {
      this.warming = undefined;
      if (this.stopping) return;
      try {
        const cpu0 = process.cpuUsage();
        const done = steps.next().done;
        const { user, system } = process.cpuUsage(cpu0);
        cpuUs += user + system;
        if (!done) {
          slices++;
          this.warming = setImmediate(next);
          return;
        }
      } catch (e) {
        // it only runs our own code on inputs of its own: a throw is a bug to see, not to stop for
        this.log.warn(`warm-up failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
        return;
      }
      this.log.debug(`warm-up: ${slices} slices, ${(cpuUs / 1000).toFixed(0)} ms CPU`);
    };
    this.warming = setImmediate(next);
  }

  // ---- facts in ----------------------------------------------------------------------

  private dispatch(ev: EngineEvent): void {
    if (this.stopping) return;
    const prev = this.state;
    this.state = reduce(this.state, ev, clock());
    if (this.state !== prev) this.transitioned(prev);
  }

  private execute(cmd: Command): CommandError | undefined {
    if (this.stopping) return { name: 'OperationAborted', message: 'netsessiond is stopping' };
    const prev = this.state;
    const r = command(this.state, cmd, clock());
    if (r.error) return r.error;
    this.state = r.state;
    if (this.state !== prev) this.transitioned(prev);
    return undefined;
  }

  /**
   * Resolves when the service is connected (undefined), has failed or gone (the error), or
   * the time is up (OperationTimeout): Service.Connect answers only then, as ConnMan's does.
   */
  private waitConnected(id: string, timeoutMs: number): Promise<CommandError | undefined> {
    return new Promise((resolve) => {
      const w = {
        check: (): boolean => {
          const s = this.state.services.get(id);
          let r: CommandError | undefined | 'wait' = 'wait';
          if (!s) r = { name: 'OperationAborted', message: 'the service is gone' };
          else if (s.state === 'ready' || s.state === 'online') r = undefined;
          else if (s.state === 'failure') r = { name: 'Failed', message: s.error ?? 'connection failed' };
          else if (!wantsConnection(this.state, s)) r = { name: 'OperationAborted', message: 'the connection attempt was cancelled' };
          if (r === 'wait') return false;
          clearTimeout(timer);
          resolve(r);
          return true;
        },
      };
      const timer = setTimeout(() => {
        this.connectWaiters.delete(w);
        resolve({ name: 'OperationTimeout', message: `not connected within ${Math.round(timeoutMs / 1000)} s` });
      }, timeoutMs);
      if (!w.check()) this.connectWaiters.add(w);
    });
  }

  private transitioned(prev: EngineState): void {
    for (const w of [...this.connectWaiters]) if (w.check()) this.connectWaiters.delete(w);
    for (const s of this.state.services.values()) {
      const p = prev.services.get(s.id);
      if (p?.state !== s.state) this.log.info(`${s.id} (${s.ifname}): ${p?.state ?? 'new'} → ${s.state}${s.error ? ` (${s.error})` : ''}`);
    }
    this.api?.publish(prev, this.state);
    this.afterChange(prev);
  }

  /** Who is calling: from the bus's credentials, never from the caller's words. */
  private identify(sender: string): Promise<Identity> {
    if (!this.identities) return Promise.reject(new Error('not connected to the bus'));
    return this.identities.get(sender);
  }

  /**
   * Sessions made while no policy needed their owner's identity learn it (the caller cache keeps
   * one lookup per owner in flight; identified and unidentifiable leave identified sessions be).
   */
  private learnIdentity(owner: string): void {
    this.identify(owner).then(
      (id) => this.sessions.identified(owner, id),
      (e: unknown) => {
        // an owner that left takes its sessions with it
        if (e instanceof CallerGoneError) return;
        this.log.warn(`sessions of ${owner} end: ${(e as Error).message}`);
        this.sessions.unidentifiable(owner);
      },
    );
  }

  /** Sessions end with their owner's connection to the bus. */
  private async watchOwners(): Promise<void> {
    const bus = this.bus!;
    bus.on('message', (m: dbus.Message) => {
      if (m.member !== 'NameOwnerChanged' || m.interface !== 'org.freedesktop.DBus' || m.sender !== 'org.freedesktop.DBus') return;
      const [name, , newOwner] = (m.body ?? []) as [string, string, string];
      // the one watcher of connections that end: the caller cache, sessions, agents
      if (typeof name === 'string' && name.startsWith(':') && newOwner === '') {
        this.identities?.forget(name);
        this.sessionApi?.ownerGone(name);
        this.api?.ownerGone(name);
        this.sessions.ownerGone(name);
      }
    });
    await bus.addMatch("type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',member='NameOwnerChanged'");
  }

  private sessionsChanged(removed: { session: Session; byDaemon: boolean }[]): void {
    if (!this.started) return;
    // an ended session's object goes at once (as ConnMan's); its last words wait for the kernel
    for (const r of removed) this.sessionApi?.unexport(r.session.path);
    this.pendingRemoved.push(...removed);
    if (this.stopping) {
      // shutdown: tell everyone now, while the bus is still there
      this.syncSessions(this.pendingRemoved.splice(0));
      return;
    }
    // after the method's reply (ConnMan answers CreateSession before the first Update): the
    // dispatcher flushes right behind it; changes no call made wait for the next turn
    if (this.sessionsTimer) return;
    this.sessionsTimer = setImmediate(() => this.flushSessions());
  }

  /**
   * A microtask away: replies to calls read in the same batch all go first, and one sync serves
   * them all. The dispatcher keeps the bus socket corked for two microtask hops after a batch
   * (BusConnection.hold), so the Updates this tells at once leave in the same write as the replies.
   */
  private flushSessionsSoon(): void {
    if (!this.sessionsTimer || this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => {
      this.flushQueued = false;
      this.flushSessions();
    });
  }

  private flushSessions(): void {
    if (!this.sessionsTimer) return;
    clearImmediate(this.sessionsTimer);
    this.sessionsTimer = undefined;
    this.syncSessions(this.pendingRemoved.splice(0));
    this.tellRuleless();
    // sessions alone changed: their own rules may be all the kernel needs
    this.scheduleReconcile(false);
  }

  /**
   * Sessions created or changed by a call that have no kernel state of their own (a ConnMan
   * client's) are told now, when the kernel already holds their services as they are: there is
   * nothing to wait for.
   */
  private tellRuleless(): void {
    if (this.kernelFor !== this.state.services || this.sessionDelta.changed.size === 0) return;
    const st = this.sessions.state;
    const ruleless: string[] = [];
    for (const p of this.sessionDelta.changed) {
      const s = st.sessions.get(p);
      if (s && !routedByOwnRules(s)) ruleless.push(p);
    }
    if (ruleless.length > 0) this.sessionApi?.publish([], ruleless);
  }

  /** Sessions follow services; services follow what active sessions ask for. */
  private syncSessions(removed: { session: Session; byDaemon: boolean }[] = []): void {
    // every session when the services changed, otherwise only those created or changed since
    const full = this.assignedFor !== this.state.services;
    const dirty = this.sessions.takeDirty();
    for (const p of dirty) this.sessionDelta.changed.add(p);
    for (const r of removed) this.sessionDelta.removed.push(r.session);
    if (full) this.fullPending = true;
    this.sessions.assign(reassign(this.sessions.state, this.state, full ? undefined : dirty));
    this.assignedFor = this.state.services;
    const demand = sessionDemand(this.sessions.askingState(), this.state);
    let same = true;
    for (const s of this.state.services.values()) if (s.sessionRequested !== demand.has(s.id)) same = false;
    if (!same) {
      // the engine transition comes back here through afterChange
      this.dispatch({ kind: 'session-demand', ids: demand });
      this.sessions.assign(reassign(this.sessions.state, this.state));
      this.assignedFor = this.state.services;
      this.fullPending = true;
    }
    this.unpublished.push(...removed);
    for (const r of removed) this.endedMarkers.push(r.session.marker);
    this.scheduler.arm();
    // applications hear of a change only once the kernel routes it: publish at the end of the reconcile
    if (this.stopping) this.sessionApi?.publish(this.unpublished.splice(0));
  }

  private feedLink(l: Link): void {
    if (l.mtu === 0 || l.type !== 1 || !UPLINK_KINDS.has(l.kind) || isWireless(l.name)) return;
    this.dispatch({ kind: 'link', link: { ifindex: l.index, ifname: l.name, mac: l.mac ?? '', mtu: l.mtu, carrier: l.lowerUp } });
  }

  private feedIpv6Addresses(ifindex: number): void {
    if (!this.serviceAt(ifindex)) return;
    const addresses = this.mirror.state
      .addressesOf(ifindex, AF_INET6)
      .filter((a) => a.scope === RT_SCOPE_UNIVERSE && (a.flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED)) === 0 && a.protocol !== this.cfg.ownership.protocol)
      .map((a) => ({ address: a.address, prefixLen: a.prefixLen }))
      .sort((a, b) => (a.address < b.address ? -1 : 1));
    this.dispatch({ kind: 'ipv6-addresses', ifindex, addresses });
  }

  private serviceAt(ifindex: number): Service | undefined {
    for (const s of this.state.services.values()) if (s.ifindex === ifindex) return s;
    return undefined;
  }

  private onKernelEvent(ev: RtEvent): void {
    switch (ev.kind) {
      case 'link':
        if (ev.op === 'del') this.dispatch({ kind: 'link-removed', ifindex: ev.link.index });
        else this.feedLink(ev.link);
        return;
      case 'address':
        if (ev.address.family === AF_INET6) this.feedIpv6Addresses(ev.address.index);
        // one of ours taken away behind our back: put it back (our own removals echo back: nothing to do)
        if (ev.address.protocol === this.cfg.ownership.protocol && this.desiredAddresses.has(addressKey(ev.address)) === (ev.op === 'del')) this.kernelDiverged();
        return;
      case 'route':
        if (ev.op === 'new' && ev.route.protocol === RTPROT_RA && ev.route.dstLen === 0 && ev.route.oif !== undefined && this.serviceAt(ev.route.oif)) this.dropKernelRaDefaults(ev.route.oif);
        // one of ours that should be there went (our own deletions echo back: nothing to do)
        // and one of ours that should not be there came (ours echo back while they are wanted)
        if (ownsRoute(this.cfg.ownership, ev.route) && this.desiredRoutes.has(routeBaseKey(ev.route)) === (ev.op === 'del')) this.kernelDiverged();
        if (ev.op === 'new' && ev.route.table >= this.cfg.ownership.tables.min && ev.route.table <= this.cfg.ownership.tables.max && !ownsRoute(this.cfg.ownership, ev.route)) this.kernelDiverged();
        return;
      case 'rule':
        // one of ours taken away behind our back: put it back. Our own changes come back as
        // events too: reconciling again for them would only delay what waits for the kernel.
        // A rule of ours that is not wanted (made by someone else with our tag): taken away.
        if (ownsRule(this.cfg.ownership, ev.rule) && this.desiredRules.has(ruleKey(ev.rule)) === (ev.op === 'del')) this.kernelDiverged();
        return;
    }
  }

  /** Someone else changed what we hold: nobody is told anything until a full pass has put it right. */
  private kernelDiverged(): void {
    this.divergences++;
    this.kernelFor = undefined;
    this.scheduleReconcile();
  }

  /**
   * At start, before any reconcile: the IPv6 default router of each service that is to be
   * connected, as our route in the service's table names it (the daemon restarted without a
   * clean stop), is held for HELD_ROUTER_S while solicitations ask for a fresh advertisement,
   * so that the route does not leave the table meanwhile. An advertisement replaces it (its
   * lifetime, its preference, or lifetime 0: gone); silence lets it expire.
   */
  private goOnWithRouters(): void {
    const now = clock();
    for (const { service: s, routers } of routersToHold(this.state, this.mirror.state.routes.values(), this.cfg.ownership.protocol)) {
      for (const router of routers) this.routers = this.routers.observe({ ifindex: s.ifindex, router, lifetime: HELD_ROUTER_S, preference: 'medium', receivedAt: now });
      this.unconfirmedRouters.add(s.ifindex);
      this.log.info(`${s.ifname}: going on with IPv6 router ${routers.join(', ')} of the last run for ${HELD_ROUTER_S} s while solicitations ask for it`);
      this.feedRouters(s.ifindex, now);
    }
  }

  private onRouter(ev: RouterEvent): void {
    const now = clock();
    this.unconfirmedRouters.delete(ev.ifindex);
    this.routers = this.routers.expire(now).observe({ ifindex: ev.ifindex, router: ev.router, lifetime: ev.lifetime, preference: ev.preference, receivedAt: now });
    const live = (l: number): boolean => l > 0;
    this.raInfo.set(ev.ifindex, {
      rdnss: ev.rdnss.filter((r) => live(r.lifetime)).map((r) => r.address),
      dnssl: ev.dnssl.filter((d) => live(d.lifetime)).map((d) => d.domain),
    });
    this.feedRouters(ev.ifindex, now);
  }

  private feedRouters(ifindex: number, now: number): void {
    const prefRank = { high: 2, medium: 1, low: 0 } as const;
    this.routers = this.routers.expire(now);
    const routers = this.routers.defaultRouters(ifindex, now).map((r) => ({ address: r.router, expiresAt: r.expiresAt, preference: prefRank[r.preference] }));
    const info = this.raInfo.get(ifindex) ?? { rdnss: [], dnssl: [] };
    this.dispatch({ kind: 'routers', ifindex, routers, rdnss: info.rdnss, dnssl: info.dnssl });
  }

  // ---- effects out ---------------------------------------------------------------------

  private afterChange(prev: EngineState | undefined): void {
    if (!this.started || this.stopping) return;
    this.syncUplinks();
    this.syncDhcp();
    this.syncSessions();
    this.persist(prev);
    this.scheduleReconcile();
    this.armTimer();
  }

  /** Sysctls, link up/down and a router solicitation for every managed interface. */
  private syncUplinks(): void {
    for (const s of this.state.services.values()) {
      if (!this.uplinks.has(s.ifindex)) {
        try {
          this.uplinks.set(s.ifindex, configureUplink(s.ifname, { ipv6: s.settings.ipv6.method !== 'off' }));
        } catch (e) {
          this.log.warn(`${s.ifname}: sysctls not set: ${(e as Error).message}`);
          this.uplinks.set(s.ifindex, { ifname: s.ifname, previous: [], applied: [] });
        }
      }
      this.applyIpv6Profile(s);
      const tech = this.state.technologies.get(s.type);
      const wantUp = (tech?.powered ?? true) && !this.state.offlineMode;
      const link = this.mirror.state.links.get(s.ifindex);
      if (link && link.up !== wantUp && !this.linkRequests.has(s.ifindex)) {
        this.linkRequests.add(s.ifindex);
        this.mirror.rtnl
          .applyOne({ op: 'set', link: { index: s.ifindex, up: wantUp } })
          .catch((e: unknown) => this.log.warn(`${s.ifname}: cannot set link ${wantUp ? 'up' : 'down'}: ${(e as Error).message}`))
          .finally(() => this.linkRequests.delete(s.ifindex));
      }
      if (wantsConnection(this.state, s) && s.settings.ipv6.method === 'auto' && this.needsRouter(s)) this.solicit(s);
      this.dropKernelRaDefaults(s.ifindex);
    }
    for (const [ifindex, snap] of this.uplinks) {
      if (this.serviceAt(ifindex)) continue;
      this.uplinks.delete(ifindex);
      this.ipv6Profiles.delete(ifindex);
      if (this.mirror.state.links.has(ifindex)) restoreUplink(snap, {}, true);
    }
  }

  /**
   * IPv6 on an uplink follows its service: SLAAC while connected with method auto, a
   * manual address only (no SLAAC, no RAs) with method manual, and IPv6 switched off
   * (which takes every IPv6 address off the interface, as ConnMan does) when the service
   * is off, disconnected or unplugged.
   */
  private applyIpv6Profile(s: Service): void {
    const profile = !wantsConnection(this.state, s) ? 'off' : s.settings.ipv6.method;
    if (this.ipv6Profiles.get(s.ifindex) === profile) return;
    const writes: [string, number][] =
      profile === 'off'
        ? [['disable_ipv6', 1]]
        : profile === 'manual'
          ? [['autoconf', 0], ['accept_ra', 0], ['disable_ipv6', 0]]
          : [['accept_ra_defrtr', 0], ['autoconf', 1], ['accept_ra', 1], ['disable_ipv6', 0]];
    try {
      for (const [key, value] of writes) writeSysctl('ipv6', s.ifname, key, value);
      this.ipv6Profiles.set(s.ifindex, profile);
      // a fresh IPv6 start: ask the routers at once
      if (profile === 'auto') {
        clearTimeout(this.solicited.get(s.ifindex));
        this.solicited.delete(s.ifindex);
      }
    } catch (e) {
      this.log.warn(`${s.ifname}: IPv6 ${profile}: ${(e as Error).message}`);
      this.ipv6Profiles.set(s.ifindex, profile);
    }
  }

  /**
   * Default routes the kernel learnt from RAs on a managed interface before its
   * accept_ra_defrtr was turned off (or in a race with it): they would send everybody's
   * IPv6 out of whichever uplink answered first. The router goes into the service's own
   * table instead; these go.
   */
  private dropKernelRaDefaults(ifindex: number): void {
    for (const r of this.mirror.state.routes.values()) {
      if (r.family !== AF_INET6 || r.table !== RT_TABLE_MAIN || r.protocol !== RTPROT_RA || r.dstLen !== 0 || r.oif !== ifindex) continue;
      void this.mirror.rtnl.applyOne({ op: 'delete', route: r }).catch((e: unknown) => this.log.debug(`RA default route on ${ifindex}: ${(e as Error).message}`));
    }
  }

  /** No router, or only one held from the last run: solicitations are to ask for one. */
  private needsRouter(s: Service): boolean {
    return s.routers.length === 0 || this.unconfirmedRouters.has(s.ifindex);
  }

  /** Router solicitations until a router answers: at once, then after 1, 2, 4 … 16 s. */
  private solicit(s: Service, attempt = 0): void {
    if (!this.routerListener || (attempt === 0 && this.solicited.has(s.ifindex))) return;
    const r = this.routerListener.solicit(s.ifindex, s.mac);
    if (!r.ok && r.code !== 'EADDRNOTAVAIL') this.log.debug(`${s.ifname}: router solicitation: ${r.code}`);
    const delay = Math.min(1000 * 2 ** attempt, 16000);
    this.solicited.set(
      s.ifindex,
      setTimeout(() => {
        const cur = this.serviceAt(s.ifindex);
        if (cur && wantsConnection(this.state, cur) && this.needsRouter(cur) && attempt < 8) this.solicit(cur, attempt + 1);
        else this.solicited.delete(s.ifindex);
      }, delay),
    );
  }

  private syncDhcp(): void {
    const want = new Map<number, Service>();
    for (const s of this.state.services.values()) if (wantsConnection(this.state, s) && s.settings.ipv4.method === 'dhcp') want.set(s.ifindex, s);
    for (const [ifindex, client] of this.dhcp) {
      const s = want.get(ifindex);
      if (s && client.ifname === s.ifname) continue;
      this.dhcp.delete(ifindex);
      const still = this.serviceAt(ifindex);
      client.stop({ release: still?.carrier === true });
    }
    for (const [ifindex, s] of want) {
      if (this.dhcp.has(ifindex)) continue;
      const dlog = this.log.child(`dhcp/${s.ifname}`);
      const held = this.heldLeases.get(s.id);
      this.heldLeases.delete(s.id);
      const client = new DhcpClient({ ifname: s.ifname, ifindex, mac: s.mac, log: (level, m) => dlog[level](m), ...(held ? { lease: held } : {}) });
      const id = s.id;
      client.on('lease', (l: DhcpLeaseEvent) => {
        dlog.info(`${l.kind} ${l.address}/${l.prefixLen} router ${l.router ?? '-'} for ${l.leaseSeconds} s`);
        const { kind: _kind, ifname: _ifname, previousAddress: _previous, ...lease } = l;
        if (!this.stopping) this.store.saveLease(id, lease);
        this.dispatch({ kind: 'dhcp-lease', ifindex, lease: engineLease(lease) });
      });
      client.on('lost', (e: { reason: string }) => {
        dlog.info(`lease lost (${e.reason})`);
        // its address leaves the link now: nothing for a next run to go on with
        this.store.forgetLease(id);
        this.dispatch({ kind: 'dhcp-lost', ifindex });
      });
      this.dhcp.set(ifindex, client);
      client.start();
    }
    // a held lease no client took at once belongs to a service that no longer wants it
    this.heldLeases.clear();
  }

  /**
   * At start, before any reconcile: a service that is to be connected and whose lease of the
   * last run is unexpired (by the wall clock) and still on its link, put there by us, goes on
   * with it: the daemon restarted without a clean stop, and the address must not leave the link
   * while the server confirms the lease. Any other lease file is void (the address was removed
   * by a clean stop, or went with a carrier loss or a reboot) and goes.
   */
  private goOnWithLeases(kept: Map<string, Lease>): void {
    const wall = Date.now();
    const r = leasesToGoOnWith(kept, this.state, this.mirror.state.addresses.values(), this.cfg.ownership.protocol, wall);
    for (const id of r.void) this.store.forgetLease(id);
    for (const { service: s, lease } of r.goOn) {
      this.log.child(`dhcp/${s.ifname}`).info(`going on with ${lease.address}/${lease.prefixLen} of the last run (expires in ${Math.round((lease.expiresAt - wall) / 1000)} s) while the server confirms it`);
      this.heldLeases.set(s.id, lease);
      this.dispatch({ kind: 'dhcp-lease', ifindex: s.ifindex, lease: engineLease(lease) });
    }
  }

  /** Starts the online checks that are due; called once the kernel holds the service's addresses and routes. */
  private startDueChecks(): void {
    if (this.stopping) return;
    const now = clock();
    const due = dueChecks(this.state, now);
    for (const { id, family } of due) {
      const s = this.state.services.get(id);
      if (!s) continue;
      const local = family === 'ipv4' ? ipv4Of(s)?.address : ipv6Of(s, now)?.addresses[0]?.address;
      const url = family === 'ipv4' ? this.cfg.engine.onlineCheck.ipv4Url : this.cfg.engine.onlineCheck.ipv6Url;
      if (!local) continue;
      this.dispatch({ kind: 'online-started', id, family });
      const olog = this.log.child(`online/${s.ifname}`);
      void checkOnline({ url, localAddress: local, timeoutMs: this.cfg.onlineCheckTimeoutMs, nameservers: nameserversOf(s, now) }).then((r) => {
        olog.debug(`${family} ${url} from ${local}: ${r.result}${r.status ? ` (HTTP ${r.status})` : ''}${r.error ? ` (${r.error})` : ''} in ${r.ms} ms`);
        this.dispatch({ kind: 'online-result', id, family, status: r.result, ...(r.portalUrl ? { portalUrl: r.portalUrl } : {}) });
      });
    }
  }

  private persist(prev: EngineState | undefined): void {
    const st = this.state;
    if (!prev || prev.offlineMode !== st.offlineMode || prev.technologies !== st.technologies) {
      const powered: Record<string, boolean> = {};
      for (const [t, tech] of st.technologies) powered[t] = tech.powered;
      this.store.saveGlobal({ offlineMode: st.offlineMode, powered });
    }
    for (const s of st.services.values()) {
      if (prev?.services.get(s.id)?.settings === s.settings) continue;
      this.store.saveService(s.id, s.settings);
    }
  }

  private armTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const now = clock();
    const at = nextDeadline(this.state, now);
    if (at === undefined) return;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        // routers that expired must leave the engine's view too
        for (const s of this.state.services.values()) if (s.routers.some((r) => r.expiresAt <= clock())) this.feedRouters(s.ifindex, clock());
        this.dispatch({ kind: 'tick' });
        // a check that fell due changes nothing by itself: the reconcile pass starts it
        this.scheduleReconcile();
        this.armTimer();
      },
      Math.max(0, Math.min(at - now + 5, 2 ** 31 - 1)),
    );
  }

  /** Brings the kernel to what the state needs; coalesces bursts, retries failures. */
  private scheduleReconcile(full = true): void {
    if (full) this.fullPending = true;
    if (this.reconciling) {
      this.reconcileAgain = true;
      return;
    }
    this.reconciling = true;
    this.loop = new Promise((resolve) => queueMicrotask(() => void this.reconcileLoop().finally(resolve)));
  }

  private async reconcileLoop(): Promise<void> {
    try {
      do {
        this.reconcileAgain = false;
        if (this.stopping) return;
        if (!this.fullPending && (await this.sessionsPass())) continue;
        this.fullPending = false;
        const services = this.state.services;
        const divergences = this.divergences;
        this.sessionDelta.changed.clear();
        this.sessionDelta.removed.length = 0;
        const now = clock();
        // a link-local DNS server (RDNSS) is only usable with its interface named
        const dnsOf = (s: Service) => ({ nameservers: nameserversOf(s, now).map((n) => (/^fe80:/i.test(n) ? `${n}%${s.ifname}` : n)), search: domainsOf(s) });
        const net = desiredNetwork(this.state, this.cfg.layout, now, dnsOf);
        const made = this.makeSessionRules();
        const rules = [...net.rules, ...made.rules];
        const network = JSON.stringify([net.addresses, net.routes, net.rules]);
        if (this.desiredRulesFor?.made !== made || this.desiredRulesFor.network !== network) {
          this.desiredRules = new Set([...net.rules.map(ruleKey), ...made.keys]);
          this.desiredRulesFor = { made, network };
        }
        this.desiredRoutes = new Set(net.routes.map(routeBaseKey));
        this.desiredAddresses = new Set(net.addresses.map((a) => addressKey({ family: familyOf(a.address), index: a.ifindex, address: a.address, prefixLen: a.prefixLen })));
        const nft = await this.desiredNft(now);
        // a table that only counts goes in after the sessions are told (it costs an nft run)
        const later = !nftRoutes(nft) && !nftRoutes(this.nftRouting);
        // the very same as the last clean pass, and nothing of it taken away since: no plan over every object
        const same = this.kernelFor !== undefined && this.applied?.network === network && this.applied.sessionRules === made.rules;
        const report = same
          ? await this.reconcileNftOnly(later ? 'keep' : nft)
          : await this.reconciler.reconcile({
              addresses: net.addresses.map((a) => ({ index: a.ifindex, address: a.address, prefixLen: a.prefixLen, ...(a.broadcast ? { broadcast: a.broadcast } : {}) })),
              routes: net.routes,
              rules,
              nft: later ? 'keep' : nft,
            });
        if (!later) this.nftRouting = nft;
        // a divergence seen while the pass ran (its own changes' echo can show one: deleting a
        // primary IPv4 address takes the secondaries of its prefix with it) is not put right by it
        const clean = report.errors.length === 0 && report.conflicts.length === 0 && this.divergences === divergences;
        this.kernelFor = clean ? services : undefined;
        this.applied = clean ? { network, sessionRules: made.rules } : undefined;
        for (const e of report.errors) this.log.warn(`kernel: ${e.message}`);
        for (const c of report.conflicts) this.log.warn(`kernel: route ${c.desired.dst}/${c.desired.dstLen} table ${c.desired.table} metric ${c.desired.priority} is taken by a foreign route (proto ${c.foreign.protocol}): left alone`);
        if (!report.unchanged) this.log.debug(`kernel: ${JSON.stringify({ addresses: report.addresses, routes: report.routes, rules: report.rules })}`);
        // what failed is planned again, in full
        if (report.errors.length > 0) this.sessionIndex = undefined;
        if (report.errors.length > 0 && !this.reconcileRetry && !this.stopping) {
          this.reconcileRetry = setTimeout(() => {
            this.reconcileRetry = undefined;
            this.scheduleReconcile();
          }, RECONCILE_RETRY_MS);
        }
        this.writeResolv(net.dns);
        // probes go out only now: bound to addresses and routed by tables that exist
        if (!this.reconcileAgain) this.startDueChecks();
        // and sessions learn of changes only now that the kernel routes them
        this.toldAll = false;
        if (!this.reconcileAgain) {
          this.sessionApi?.publish(this.unpublished.splice(0));
          this.toldAll = true;
        }
        if (!this.reconcileAgain) this.pruneCounters();
        if (later) {
          try {
            await this.reconciler.reconcileNft(nft);
            this.nftRouting = nft;
          } catch (e) {
            this.log.warn(`kernel: session counters: ${(e as Error).message}`);
            if (!this.reconcileRetry && !this.stopping) {
              this.reconcileRetry = setTimeout(() => {
                this.reconcileRetry = undefined;
                this.scheduleReconcile();
              }, RECONCILE_RETRY_MS);
            }
          }
        }
      } while (this.reconcileAgain && !this.stopping);
    } catch (e) {
      this.log.error(`reconcile failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    } finally {
      this.reconciling = false;
    }
  }

  /**
   * The sessions' rules, made again only when the sessions, the emergency, or what of the
   * services they are made from (sessionRoutingInputs) changed: a router advertisement or an
   * online check changes a service's record, not its sessions' rules (20,000 with 10,000
   * sessions). Also (re)makes the index a sessions pass works from.
   */
  private makeSessionRules(): SessionRulesMade {
    const inputs = sessionRoutingInputs(this.state);
    const emergency = this.sessions.emergency()?.marker;
    let made = this.sessionRulesMade;
    if (!made || !this.sessionIndex || made.sessions !== this.sessions.state || made.inputs !== inputs || made.emergency !== emergency) {
      const layout = this.sessionLayout();
      this.sessionIndex = indexSessionRules(this.sessions.state, this.state, layout);
      const rules = sessionRules(this.sessions.state, this.state, layout, this.sessionIndex);
      made = { sessions: this.sessions.state, inputs, emergency, rules, keys: rules.map(ruleKey) };
      this.sessionRulesMade = made;
    }
    this.indexedFor = { services: this.state.services, emergency };
    return made;
  }

  /** A full pass that found nothing to plan: only the nft table may have to change. */
  private async reconcileNftOnly(nft: NftTableModel | undefined | 'keep'): Promise<ReconcileReport> {
    const done = nft === 'keep' ? 'none' : await this.reconciler.reconcileNft(nft);
    return { addresses: { added: 0, deleted: 0 }, routes: { added: 0, replaced: 0, deleted: 0 }, rules: { added: 0, deleted: 0 }, nft: done, conflicts: [], errors: [], unchanged: done === 'none' };
  }

  private sessionLayout(): { protocol: number; base: number } {
    return { protocol: this.cfg.ownership.protocol, base: this.cfg.ownership.rulePriorities.min };
  }

  /**
   * A pass for sessions that came, changed or went while nothing else did: only their own
   * marker rules change, and the block rules of a block they open or close (no plan over
   * every rule and route, no nft). False when more changes (a session with a policy of uid,
   * gid or cgroup, the first or last session, an emergency): then a full pass follows.
   */
  private async sessionsPass(): Promise<boolean> {
    const index = this.sessionIndex;
    const st = this.sessions.state;
    if (!index || this.indexedFor?.services !== this.state.services || st.sessions.size === 0 || index.byMarker.size === 0) return false;
    if (this.sessions.emergency()?.marker !== this.indexedFor.emergency) return false;
    // the first session with kernel state of its own needs the nft table, the last one's end removes it
    if (this.sessions.anyWithOwnRules() !== (this.nftRouting !== undefined)) return false;
    const changed: Session[] = [];
    for (const p of this.sessionDelta.changed) {
      const s = st.sessions.get(p);
      if (s) changed.push(s);
    }
    const delta = sessionRuleDelta(index, this.state, this.sessionLayout(), changed, this.sessionDelta.removed);
    if (!delta) return false;
    const told = [...this.sessionDelta.changed];
    // the index now holds other sessions than the rules made from it
    this.sessionRulesMade = undefined;
    this.sessionDelta.changed.clear();
    this.sessionDelta.removed.length = 0;
    for (const r of delta.dels) this.desiredRules.delete(ruleKey(r));
    for (const r of delta.adds) this.desiredRules.add(ruleKey(r));
    const report = await this.reconciler.applyRules(delta.adds, delta.dels);
    if (report.errors.length > 0) {
      for (const e of report.errors) this.log.warn(`kernel: ${e.message}`);
      // the kernel is not what the index says: the next pass plans it all
      this.sessionIndex = undefined;
      this.fullPending = true;
      this.reconcileAgain = true;
      return true;
    }
    if (report.rules.added + report.rules.deleted > 0) this.log.debug(`kernel: ${JSON.stringify({ rules: report.rules })}`);
    if (!this.reconcileAgain) {
      // only these sessions can have news, unless a full pass did not get to tell everyone
      this.sessionApi?.publish(this.unpublished.splice(0), this.toldAll ? told : undefined);
      this.toldAll = true;
      this.pruneCounters();
    } else this.toldAll = false; // these sessions are told by a later pass, which must tell all
    return true;
  }

  private async desiredNft(now: number): Promise<ReturnType<typeof sessionNft>> {
    // first the cgroups (a lookup may take a process); then the rest, all of one state
    const cgroups = await this.cgroups.existing(cgroupPolicyPaths(this.sessions.state));
    const own = cgroups.length > 0 ? cgroupOfPid(process.pid) : undefined;
    const services = [...this.state.services.values()];
    const emergency = this.sessions.emergency();
    return sessionNft(this.sessions.state, {
      cgroups,
      ...(own !== undefined ? { ownCgroup: own } : {}),
      family: this.cfg.ownership.nftTable.family,
      name: this.cfg.ownership.nftTable.name,
      ...(emergency ? { emergencyMarker: emergency.marker } : {}),
      uplinks: services.map((s) => s.ifname),
      sources: services
        .filter((s) => wantsConnection(this.state, s))
        .map((s) => {
          const v4 = ipv4Of(s)?.address;
          const v6 = ipv6Of(s, now)?.addresses[0]?.address;
          return { ifname: s.ifname, ...(v4 ? { ipv4: v4 } : {}), ...(v6 ? { ipv6: v6 } : {}) };
        }),
    });
  }

  /** Ended sessions' counters go (off the path of any reply or Update); a missing table has none. */
  private pruneCounters(): void {
    const { family, name } = this.cfg.ownership.nftTable;
    const script = sessionCounterCleanup(family, name, this.endedMarkers.splice(0));
    // a table that counts nothing has no counters to remove: no nft run per ended session
    if (!script || this.sessions.state.sessions.size === 0 || !nftCounts(this.nftRouting)) return;
    this.counterNft.apply(script).catch((e: unknown) => this.log.debug(`session counters not pruned: ${(e as Error).message}`));
  }

  private writeResolv(dns: { nameservers: string[]; search: string[] }): void {
    const lines = ['# written by netsessiond: the default service\'s DNS'];
    if (dns.search.length > 0) lines.push(`search ${dns.search.slice(0, 6).join(' ')}`);
    for (const n of dns.nameservers.slice(0, 3)) lines.push(`nameserver ${n}`);
    const text = `${lines.join('\n')}\n`;
    if (text === this.resolvWritten) return;
    const file = this.cfg.resolvConf;
    try {
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(`${file}.tmp`, text);
      renameSync(`${file}.tmp`, file);
      this.resolvWritten = text;
    } catch (e) {
      this.log.error(`cannot write ${file}: ${(e as Error).message}`);
    }
  }

  // ---- shutdown -----------------------------------------------------------------------

  /** Stops cleanly: releases leases, removes every kernel object of ours, leaves the bus. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.warming) clearImmediate(this.warming);
    // every session learns that the daemon ended it (Release), while the bus is still there
    if (this.started) this.sessions.releaseAll();
    if (this.timer) clearTimeout(this.timer);
    this.scheduler.close();
    if (this.reconcileRetry) clearTimeout(this.reconcileRetry);
    for (const t of this.solicited.values()) clearTimeout(t);
    for (const [ifindex, c] of this.dhcp) {
      const s = this.serviceAt(ifindex);
      c.stop({ release: s?.carrier ?? false });
    }
    this.dhcp.clear();
    this.policyDir?.close();
    this.cgroups.close();
    this.routerListener?.close();
    // a reconcile under way must end before the last one, which removes everything, starts
    await this.loop;
    if (this.mirror) {
      try {
        await this.reconciler?.reconcile({ routes: [], rules: [], addresses: [] });
      } catch (e) {
        this.log.error(`cleanup of kernel state failed: ${(e as Error).message}`);
      }
      for (const [ifindex, snap] of this.uplinks) if (this.mirror.state.links.has(ifindex)) restoreUplink(snap, {}, true);
      this.mirror.close();
    }
    this.api?.close();
    if (this.bus) {
      try {
        await this.bus.releaseName(this.opts.busName);
      } catch {
        /* the bus may be gone already */
      }
      this.bus.disconnect();
    }
    this.log.info('stopped');
  }

  /** For tests and the CLI: the engine's current state. */
  snapshot(): EngineState {
    return this.state;
  }
}

function isWireless(ifname: string): boolean {
  try {
    readdirSync(`/sys/class/net/${ifname}/wireless`);
    return true;
  } catch {
    return false;
  }
}
