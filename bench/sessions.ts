// Benchmark of sessions (Manager.CreateSession, net.connman.Notification.Update, session
// routing), side by side with ConnMan 1.41, measured in the same run on the same machine, one
// daemon at a time, each in fresh labs built by labUp() (3 uplinks; ConnMan is started in
// them by peers/connman.ts). The client is the same for both daemons (lib/session-client.ts:
// dbus-next MessageBus connections that serve the notifier objects).
//
// Lab A, paired (every daemon in a lab of its own, all at once; one call to each in turn, in a
// random order each round, so the noise of the moment on a small VM falls on both alike:
// measured one daemon after the other, the same p50 ratio moved by ±0.3 from run to run):
//   0. Manager.GetProperties round trips, timed the same way: the floor of bus + client
//   1. CreateSession → its reply, and → the first Update on the notifier: p50/p99 over
//      BENCH_CREATE_ROUNDS sequential sessions (settings {}, one connection, after 5 warm-up
//      sessions that are not counted)
//   1b. the same as an application's first call: a new connection for each CreateSession (the
//      daemon has not heard of the caller: ConnMan asks the bus who it is, netsessiond only
//      when a policy matches on identity)
//   2p. BENCH_CONCURRENT_ROUNDS bursts of BENCH_CONCURRENT concurrent CreateSession from as many
//      new connections, to each daemon in turn: the median of all replies and all first Updates
//   3p. BENCH_HELD_ROUNDS times: BENCH_SESSIONS_HELD creates as in 3., to each daemon in turn,
//      then their connections closed (the sessions end with them): the median of all first Updates
// Lab A (per daemon):
//   2. BENCH_CONCURRENT connections (opened first, not timed) each send one CreateSession at
//      the same moment: time until all replies, and all first Updates, arrived
//   3. BENCH_SESSIONS_HELD sessions held (AllowedInterface = uplink T, BENCH_SESSIONS_PER_CONN
//      per connection, BENCH_SESSIONS_WINDOW creations in flight): daemon RSS before and with them
//   4. uplink T loses carrier (its ISP-side veth set down, our netlink request = t0): time
//      until every held session got the Update that takes its State out of connected/online;
//      carrier back: until every one is connected again (includes DHCP)
//   5. is a later link change still seen (T down again: the service's State and the sessions)?
//      ConnMan 1.41 is known to go blind here: its rtnetlink socket overflows when 1,000
//      sessions get their routes back at once, and it stops reading it for good
// Lab B (per daemon, a fresh one):
//   6. a burst: BENCH_SESSIONS_HELD CreateSession written at once (over connections as in 3.);
//      time until all first Updates; then: is a link change still seen?
// Lab C (both daemons at once, each in a lab of its own; TCP runs in turn, random order each
// round, so that the machine's drift over minutes falls on both; the rest one after the other):
//   7. TCP connections per second through a session's uplink M (another uplink than T):
//      sockets made in the device namespace with SO_MARK = the session's mark, connected to
//      the lab's internet address (198.18.0.1) port 9, where lib/tcp-sink.ts listens in M's
//      ISP namespace, and reset at once; BENCH_TCP_RUNS runs of BENCH_TCP_SECONDS s with
//      BENCH_TCP_CONCURRENCY loops (after a 1 s warm-up), median; with 1 session. Each run is a
//      process of its own (lib/tcp-rate.ts tcpRateApart): this one holds 20,000 sessions' client
//      state in step 9, and its garbage collections would stall the loops
//   8. BENCH_SESSIONS_MANY sessions held (AllowedInterface = T, BENCH_MANY_WINDOW in flight,
//      capped at BENCH_SESSIONS_CAP_S): how many were created, how fast, daemon RSS. netsessiond's
//      set AvoidHandover: false (extended), so that each has marker rules (a ConnMan client's
//      session has none): 10,000 rules per family, the worst case for step 9
//   9. TCP rate again, through a session created after them (netsessiond: in the last block
//      of marker rules, the worst case for a rule lookup); uplink T down → all notified
//  10. the many end; TCP rate through the first session again: "with 1 session" is the median
//      of the runs of 7. and 10., before and after those with the many (drift cancels)
// The session's mark: netsessiond reports SessionMarker (the session sets AvoidHandover: false
// to get it); ConnMan 1.41 reports none, but with SourceIPRule it installs
// `ip rule fwmark M lookup M` for the session (M = its table = its mark), which this bench
// reads from the device namespace. Each marked session's route is checked once (GET /whoami
// through a socket with its mark must come out of uplink M).
//
//   node --import tsx bench/sessions.ts          (npm run bench:sessions)
//   env: BENCH_DAEMONS=netsession,connman  BENCH_CREATE_ROUNDS=200  BENCH_CONCURRENT=100
//        BENCH_SESSIONS_HELD=1000  BENCH_HELD_ROUNDS=3  BENCH_SESSIONS_MANY=10000  BENCH_SESSIONS_PER_CONN=100
//        BENCH_SESSIONS_WINDOW=10  BENCH_MANY_WINDOW=100  BENCH_SESSIONS_CAP_S=240
//        BENCH_TCP_SECONDS=3  BENCH_TCP_RUNS=5  BENCH_TCP_CONCURRENCY=16
//        BENCH_LABS=a,b,c (which labs; BENCH_SKIP_MANY=1 = a,b)
//        BENCH_PROFILE=1 (netsessiond under a CPU profiler, lib/cpu-profile.mjs, and a heap snapshot
//        with the many sessions held; kept with the logs: open them in Chrome DevTools; the
//        profiler's own CPU use slows the daemon and the settle waits: figures are not comparable)
//        BENCH_LOG_LEVEL=debug (netsessiond's log level; default info)
// Prints a table (figures and ratios ours / ConnMan) and one JSON line. Asserts nothing.
import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectMarked, fetchVia } from '../src/client/session/net.ts';
import { labDaemon, type LabUpResult, labUp, loadLab } from '../src/lab/lab.ts';
import { type LabDaemonSpec, startLabDaemon, stopLabDaemon } from '../src/lab/lab-daemon.ts';
import { run } from '../src/lab/processes.ts';
import { type ActiveLab, type BenchDaemon, BenchRun, checkAlive, type DaemonKind, daemonKinds, intEnv } from './lib/bench-run.ts';
import { IspLinks } from './lib/isp-links.ts';
import { ServiceWatch } from './lib/service-watch.ts';
import { type BenchConn, type BenchSession, SessionHub, type Settings, settings, type UpdateListener } from './lib/session-client.ts';
import { cpuSeconds, pct, rssKiB } from './lib/stats.ts';
import { type TcpRateOptions, type TcpRateResult, tcpRateApart } from './lib/tcp-rate.ts';
import { openTcpSink, type TcpSink } from './lib/tcp-sink.ts';
import { startConnman } from './peers/connman.ts';

const KINDS = daemonKinds();
const ROUNDS = intEnv('BENCH_CREATE_ROUNDS', 200, 1, 10_000);
const WARMUP = 5;
const CONCURRENT = intEnv('BENCH_CONCURRENT', 100, 1, 1000);
const CONCURRENT_ROUNDS = intEnv('BENCH_CONCURRENT_ROUNDS', 7, 1, 100);
const HELD_ROUNDS = intEnv('BENCH_HELD_ROUNDS', 3, 1, 100);
const HELD = intEnv('BENCH_SESSIONS_HELD', 1000, 1, 40_000);
const MANY = intEnv('BENCH_SESSIONS_MANY', 10_000, 1, 40_000);
const PER_CONN = intEnv('BENCH_SESSIONS_PER_CONN', 100, 1, 40_000);
const WINDOW = intEnv('BENCH_SESSIONS_WINDOW', 10, 1, 40_000);
const MANY_WINDOW = intEnv('BENCH_MANY_WINDOW', 100, 1, 40_000);
const CAP_S = intEnv('BENCH_SESSIONS_CAP_S', 240, 5, 3600);
const TCP_SECONDS = intEnv('BENCH_TCP_SECONDS', 3, 1, 60);
const TCP_RUNS = intEnv('BENCH_TCP_RUNS', 5, 1, 20);
const TCP_CONCURRENCY = intEnv('BENCH_TCP_CONCURRENCY', 16, 1, 1024);
const LABS = new Set((process.env.BENCH_LABS ?? (process.env.BENCH_SKIP_MANY === '1' ? 'a,b' : 'a,b,c')).split(','));
for (const l of LABS) if (!['a', 'b', 'c'].includes(l)) throw new Error(`BENCH_LABS: unknown lab ${l} (a, b, c)`);
const PROFILE = process.env.BENCH_PROFILE === '1';
const LOG_LEVEL = (process.env.BENCH_LOG_LEVEL ?? 'info') as NonNullable<LabDaemonSpec['logLevel']>;
if (!['error', 'warn', 'info', 'debug'].includes(LOG_LEVEL)) throw new Error('BENCH_LOG_LEVEL must be error, warn, info or debug');
/** pause between the sequential CreateSession rounds */
const GAP_MS = 10;
/** how long a link change may take to be seen before it counts as not seen */
const SEEN_MS = 5000;
const SERVICE_UP = new Set(['ready', 'online']);
const SESSION_UP = new Set(['connected', 'online']);
const LAB_A = 'bsess';
/** the paired labs of steps 0 and 1, one per daemon */
const labP = (kind: DaemonKind): string => `bsesp${kind === 'netsession' ? 'n' : 'c'}`;
const LAB_B = 'bsessbst';
/** lab C, one per daemon (both at once) */
const labC = (kind: DaemonKind): string => `bsesm${kind === 'netsession' ? 'n' : 'c'}`;
const UPLINKS = 3;
/** the TCP sink's port on the internet address (the lab's own servers use 80 and 7) */
const SINK_PORT = 9;
const bench = new BenchRun('sessions');

// ---------------------------------------------------------------------------------------
// one daemon in one lab; bench.teardown() stops it and removes the lab, also on failure and on Ctrl-C

interface Running extends BenchDaemon {
  lab: LabUpResult;
}

/** What start() opened on the lab (closed by bench.teardown()), and the lab as the run tracks it. */
interface LabTools {
  active: ActiveLab;
  watch: ServiceWatch;
  links: IspLinks;
  hub: SessionHub;
}

const CPU_PROFILE_PRELOAD = fileURLToPath(new URL('./lib/cpu-profile.mjs', import.meta.url));
/** where a profiled daemon writes its CPU profile and heap snapshots (kept by teardown) */
const profDir = (lab: LabUpResult): string => `${lab.dir}/prof`;

/** A heap snapshot of a daemon started with --heapsnapshot-signal=SIGUSR2: waits until it is written. */
async function heapSnapshot(r: Running): Promise<void> {
  const dir = profDir(r.lab);
  mkdirSync(dir, { recursive: true });
  const before = new Set(readdirSync(dir));
  process.kill(r.pid, 'SIGUSR2');
  const end = performance.now() + 120_000;
  let size = -1;
  while (performance.now() < end) {
    await sleep(1000);
    const f = readdirSync(dir).find((x) => x.endsWith('.heapsnapshot') && !before.has(x));
    if (f === undefined) continue;
    const now = statSync(`${dir}/${f}`).size;
    if (now === size && now > 0) return;
    size = now;
  }
  process.stderr.write(`bench: ${r.kind}: no heap snapshot within 120 s\n`);
}

/**
 * netsessiond in the lab; with BENCH_PROFILE=1 under a CPU profiler (a preload: the lab's
 * own starter drops NODE_OPTIONS, and --cpu-prof is not allowed there anyway).
 */
async function startNetsession(name: string, lab: LabUpResult): Promise<{ pid: number; log: string }> {
  const spec: LabDaemonSpec = { logLevel: LOG_LEVEL };
  if (!PROFILE) {
    const info = await labDaemon(name, 'start', spec);
    if (info === undefined) throw new Error('lab daemon start returned nothing');
    return info;
  }
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // and a heap snapshot on SIGUSR2 (lab C, with the many sessions held)
    NODE_OPTIONS: `--import ${CPU_PROFILE_PRELOAD} --heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${profDir(lab)}`,
    BENCH_CPU_PROFILE_DIR: profDir(lab),
    BENCH_CPU_PROFILE_NAME: 'netsessiond',
  };
  delete env.NODE_TEST_CONTEXT;
  return startLabDaemon(loadLab(name), spec, env);
}

async function start(kind: DaemonKind, name: string, label: string): Promise<{ r: Running; a: LabTools }> {
  const active = bench.beginLab(name, label);
  const lab = await bench.track(labUp({ name, uplinks: UPLINKS }));
  let r: Running;
  if (kind === 'netsession') {
    const info = await bench.track(startNetsession(name, lab));
    r = { kind, lab, pid: info.pid, log: info.log, stop: async () => void (await stopLabDaemon(loadLab(name))) };
  } else {
    const cm = await bench.track(startConnman(lab));
    r = { kind, lab, pid: cm.pid, log: cm.log, stop: cm.stop };
  }
  active.daemon = r;
  // the lab dir goes with the lab: the profiles are kept with the daemon's log
  active.keepFiles = (keep) => {
    const dir = profDir(lab);
    for (const f of readdirSync(dir)) keep(`${dir}/${f}`, `${kind}-${label}-${f}`);
  };
  const w = await ServiceWatch.open(lab.bus.address);
  active.onTeardown(() => w.close());
  const links = await IspLinks.open(lab);
  active.onTeardown(() => links.close());
  const hub = new SessionHub(lab.bus.address);
  active.onTeardown(() => hub.closeAll());
  const ifs = lab.uplinks.map((u) => u.ifname);
  await w.until(`${kind}: ${UPLINKS} services connected`, () => ifs.every((i) => SERVICE_UP.has(w.stateOfIf(i) ?? '')), 60_000);
  await w.quiet(1000, 10_000);
  await settle(r.pid, 15_000);
  return { r, a: { active, watch: w, links, hub } };
}

/** CPU time per 300 ms that counts as idle (a profiled daemon samples itself all the time) */
const SETTLE_CPU_S = PROFILE ? 0.06 : 0.015;

/** Waits until the daemon uses no CPU for a while (at most maxMs): its work of the last step is done. */
async function settle(pid: number, maxMs: number, quietMs = 300): Promise<void> {
  const end = performance.now() + maxMs;
  let last = cpuSeconds(pid);
  while (performance.now() < end) {
    await sleep(quietMs);
    const now = cpuSeconds(pid);
    if (now === undefined || last === undefined || now - last < SETTLE_CPU_S) return;
    last = now;
  }
}

/** The uplinks the bench uses: T is toggled (an urgent one), M carries the TCP session. */
function roles(links: IspLinks): { t: number; m: number } {
  const urgent = links.urgent();
  const t = urgent[0] ?? 0;
  const m = [...Array(UPLINKS).keys()].find((i) => i !== t) ?? 0;
  return { t, m };
}

const ms = (from: number, to: number | undefined): number | undefined => (to === undefined ? undefined : to - from);

// ---------------------------------------------------------------------------------------
// building blocks

interface CreateBatch {
  n: number;
  sent: number;
  replies: number;
  firstUpdates: number;
  errors: Record<string, number>;
  /** t0 of the first call → the last reply / the last first Update */
  allReplyMs: number | undefined;
  allFirstMs: number | undefined;
  /** per session: t0 → first Update */
  firstP50Ms: number | undefined;
  firstP99Ms: number | undefined;
  /** the cap was reached before every session was created */
  capped: boolean;
  sessions: BenchSession[];
}

function summarize(sessions: BenchSession[], n: number, t0: number, capped: boolean): CreateBatch {
  const errors: Record<string, number> = {};
  let lastReply: number | undefined;
  let lastFirst: number | undefined;
  const firsts: number[] = [];
  let replies = 0;
  for (const s of sessions) {
    if (s.error !== undefined) errors[s.error] = (errors[s.error] ?? 0) + 1;
    if (s.tReply !== undefined) {
      if (s.error === undefined) replies++;
      if (lastReply === undefined || s.tReply > lastReply) lastReply = s.tReply;
    }
    if (s.tFirst !== undefined) {
      firsts.push(s.tFirst - s.t0);
      if (lastFirst === undefined || s.tFirst > lastFirst) lastFirst = s.tFirst;
    }
  }
  const all = sessions.length === n;
  return {
    n,
    sent: sessions.length,
    replies,
    firstUpdates: firsts.length,
    errors,
    allReplyMs: all && replies === n ? ms(t0, lastReply) : undefined,
    allFirstMs: all && firsts.length === n ? ms(t0, lastFirst) : undefined,
    firstP50Ms: firsts.length > 0 ? pct(firsts, 50) : undefined,
    firstP99Ms: firsts.length > 0 ? pct(firsts, 99) : undefined,
    capped,
    sessions,
  };
}

/**
 * n sessions over the given connections (round robin), `window` creations in flight (a
 * creation is in flight until its first Update or its error), at most capMs. `progress` is
 * told each time one is done (how many are, ms since the first call).
 */
async function createMany(
  hub: SessionHub,
  conns: BenchConn[],
  n: number,
  make: (i: number) => { settings: Settings; notifier: string },
  window: number,
  capMs: number,
  progress?: (done: number, elapsedMs: number) => void,
): Promise<CreateBatch> {
  const sessions: BenchSession[] = [];
  const t0 = performance.now();
  const deadline = t0 + capMs;
  let next = 0;
  let done = 0;
  const send = (): void => {
    const i = next++;
    const c = conns[i % conns.length] as BenchConn;
    const m = make(i);
    sessions.push(c.create(m.settings, m.notifier));
  };
  hub.onDone = () => {
    done++;
    progress?.(done, performance.now() - t0);
    if (next < n && performance.now() < deadline) send();
  };
  try {
    while (next < Math.min(window, n)) send();
    // the cap stops new calls; what is in flight then gets some more time
    await hub.until(() => done >= n || (performance.now() >= deadline && done >= next), capMs);
    if (done < next) await hub.until(() => done >= next, 30_000);
  } finally {
    hub.onDone = undefined;
  }
  return summarize(sessions, n, t0, next < n);
}

/** All at once: every call is written before any answer is read. */
async function burst(hub: SessionHub, conns: BenchConn[], n: number, make: (i: number) => { settings: Settings; notifier: string }, capMs: number): Promise<CreateBatch> {
  const sessions: BenchSession[] = [];
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const m = make(i);
    sessions.push((conns[i % conns.length] as BenchConn).create(m.settings, m.notifier));
  }
  await hub.until(() => sessions.every((s) => s.done), capMs);
  return summarize(sessions, n, t0, false);
}

interface Notified {
  of: number;
  /** sessions that got the Update */
  notified: number;
  /** t0 → the last of them (when all got it) */
  allMs: number | undefined;
  p50Ms: number | undefined;
}

/**
 * Sets uplink i's carrier and measures until every session got an Update whose State is
 * (up) or is not (down) connected/online. t0 is our netlink request.
 */
async function carrier(a: LabTools, i: number, up: boolean, sessions: BenchSession[], capMs: number): Promise<Notified & { t0: number; told: BenchSession[] }> {
  const hub = a.hub;
  const tracked = new Set(sessions);
  const at = new Map<BenchSession, number>();
  const l: UpdateListener = (s, e) => {
    if (!tracked.has(s) || at.has(s)) return;
    const st = e.changed.State;
    if (typeof st === 'string' && SESSION_UP.has(st) === up) at.set(s, e.t);
  };
  hub.listeners.add(l);
  try {
    const t0 = await a.links.set(i, up);
    await hub.until(() => at.size === tracked.size, capMs);
    const times = [...at.values()].map((t) => t - t0);
    return {
      t0,
      told: [...at.keys()],
      of: tracked.size,
      notified: at.size,
      allMs: at.size === tracked.size && times.length > 0 ? Math.max(...times) : undefined,
      p50Ms: times.length > 0 ? pct(times, 50) : undefined,
    };
  } finally {
    hub.listeners.delete(l);
  }
}

const plainNotified = (n: Notified): Notified => ({ of: n.of, notified: n.notified, allMs: n.allMs, p50Ms: n.p50Ms });

interface LinkCheck {
  /** the service of the uplink left ready/online within SEEN_MS */
  serviceSeen: boolean;
  serviceMs: number | undefined;
  /** sessions on it that were told within SEEN_MS */
  sessions: Notified;
  /** all connected again afterwards */
  backUp: boolean;
}

/** Is a carrier loss still seen (by the service and the sessions on it)? Then the carrier comes back. */
async function linkCheck(r: Running, a: LabTools, i: number, sessions: BenchSession[]): Promise<LinkCheck> {
  const w = a.watch;
  const ifname = r.lab.uplinks[i]?.ifname as string;
  const path = w.pathOf(ifname);
  const from = w.events.length;
  const down = await carrier(a, i, false, sessions, SEEN_MS);
  const ev = path === undefined ? undefined : await w.next(from, path, (e) => !SERVICE_UP.has(e.state), Math.max(0, down.t0 + SEEN_MS - performance.now()));
  await sleep(500);
  // only the sessions that were told of the loss can be told of the way back
  const back = await carrier(a, i, true, down.told, 60_000);
  let backUp = back.notified === back.of;
  try {
    await w.until(`${ifname} connected again`, () => SERVICE_UP.has(w.stateOfIf(ifname) ?? ''), 60_000);
  } catch {
    backUp = false;
  }
  await w.quiet(500, 10_000);
  await settle(r.pid, 20_000);
  return { serviceSeen: ev !== undefined, serviceMs: ev === undefined ? undefined : ev.t - down.t0, sessions: plainNotified(down), backUp };
}

/** The mark a socket must carry to use session s: SessionMarker, or the fwmark rule ConnMan added for it. */
async function markOf(r: Running, s: BenchSession, known: Set<number>): Promise<number> {
  if (s.marker !== undefined) return s.marker;
  const end = performance.now() + 3000;
  while (performance.now() < end) {
    for (const m of await fwmarkRules(r.lab.device.netns)) if (!known.has(m)) return m;
    await sleep(50);
  }
  throw new Error(`${r.kind}: no mark found for session ${s.path} (no SessionMarker, no new fwmark rule)`);
}

/** ConnMan's session rules: `fwmark M lookup M` (a session's mark is its table). */
async function fwmarkRules(netns: string): Promise<Set<number>> {
  const out = new Set<number>();
  const res = await run('ip', ['-n', netns, '-j', '-4', 'rule', 'show'], { check: false });
  const rules: unknown = JSON.parse(res.stdout || '[]');
  if (!Array.isArray(rules)) return out;
  for (const x of rules as { fwmark?: string; fwmask?: string; table?: string }[]) {
    if (x.fwmark !== undefined && x.fwmask === undefined && x.table !== undefined && Number(x.fwmark) === Number(x.table)) out.add(Number(x.fwmark));
  }
  return out;
}

/** netsessiond's sessions set one of seed 001's keys (AvoidHandover: false), so they report their marker and have its rules; ConnMan refuses those keys. */
function extendedFor(kind: DaemonKind, plain: Record<string, string | boolean>): Settings {
  return settings(kind === 'netsession' ? { ...plain, AvoidHandover: false } : plain);
}

/** A session on uplink m whose traffic can be marked: ConnMan needs SourceIPRule for a rule; netsessiond reports its marker to extended sessions. */
function markedSettings(kind: DaemonKind, ifname: string): Settings {
  return extendedFor(kind, { AllowedInterface: ifname, SourceIPRule: true });
}

interface TcpFigure {
  mark: number;
  /** the ISP /whoami saw a marked connection come from */
  via: string | undefined;
  runs: TcpRateResult[];
  /** CPU the daemon used during each run (s): on 2 cores it is taken from the client and the kernel */
  daemonCpuS: (number | undefined)[];
  /** median connections per second over the runs */
  perSecond: number | undefined;
}

/** The side of a paired TCP measurement: a daemon, the sink of its lab, the uplink sessions use. */
interface TcpSide {
  r: Running;
  sink: TcpSink;
  /** the ISP namespace a connection must come out of */
  expectIsp: string;
}

/** Checks that a socket with `mark` leaves through the expected ISP (its /whoami), then warms the path up. */
async function tcpReady(x: TcpSide, mark: number): Promise<{ via: string | undefined; o: Omit<TcpRateOptions, 'seconds'> }> {
  const lab = x.r.lab;
  const plan = { mark, netns: lab.device.netns };
  let via: string | undefined;
  try {
    const res = await fetchVia((t) => connectMarked(plan, { ...t, timeoutMs: 3000 }), `http://${lab.internet.ipv4}/whoami`, { timeoutMs: 5000 });
    via = ((await res.json()) as { isp?: string }).isp;
  } catch (err) {
    via = `error: ${err instanceof Error ? err.message : String(err)}`;
  }
  if (via !== x.expectIsp) throw new Error(`${x.r.kind}: a socket with mark ${mark} went out through ${via}, not ${x.expectIsp}`);
  const o = { netns: lab.device.netns, mark, host: lab.internet.ipv4, port: x.sink.port, concurrency: TCP_CONCURRENCY };
  // warm-up: neighbours and caches (each measured run warms its own process up too)
  await tcpRateApart({ ...o, seconds: 1 });
  return { via, o };
}

/**
 * TCP connections per second through each side's session (`marks`), the sides' runs taken in
 * turn, in random order each round: a rate moves by ±10 % from one run to the next on this
 * machine, and drift over minutes must not fall on one daemon only.
 */
async function pairedTcp<X extends TcpSide>(sides: X[], marks: Map<X, number>, runs = TCP_RUNS): Promise<Map<X, TcpFigure>> {
  const ready = new Map<X, { o: Omit<TcpRateOptions, 'seconds'>; f: TcpFigure }>();
  for (const x of sides) {
    const mark = marks.get(x) as number;
    const { via, o } = await tcpReady(x, mark);
    ready.set(x, { o, f: { mark, via, runs: [], daemonCpuS: [], perSecond: undefined } });
  }
  for (let k = 0; k < runs; k++) {
    for (const x of shuffled(sides)) {
      const { o, f } = ready.get(x) as { o: Omit<TcpRateOptions, 'seconds'>; f: TcpFigure };
      await settle(x.r.pid, 5000);
      const c0 = cpuSeconds(x.r.pid);
      f.runs.push(await tcpRateApart({ ...o, seconds: TCP_SECONDS }));
      const c1 = cpuSeconds(x.r.pid);
      f.daemonCpuS.push(c0 === undefined || c1 === undefined ? undefined : c1 - c0);
    }
  }
  const out = new Map<X, TcpFigure>();
  for (const [x, { f }] of ready) {
    const ok = f.runs.filter((r) => r.connections > 0).map((r) => r.perSecond);
    f.perSecond = ok.length > 0 ? pct(ok, 50) : undefined;
    out.set(x, f);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// lab A: latency, concurrency, held sessions, uplink down and back

/** One paired round of creates: all replies, all first Updates, sessions that got none. */
interface RoundFigure {
  allReplyMs: number | undefined;
  allFirstMs: number | undefined;
  errors: number;
}

const roundOf = (b: CreateBatch): RoundFigure => ({ allReplyMs: b.allReplyMs, allFirstMs: b.allFirstMs, errors: b.n - b.firstUpdates });

interface AResult {
  toggled: string;
  rssIdleKiB: number | undefined;
  /** Manager.GetProperties round trips: bus + client + the least a daemon does */
  getPropertiesMs: number[];
  replyMs: number[];
  firstMs: number[];
  /** the same, as an application's first call: a new connection for each */
  newConnReplyMs: number[];
  newConnFirstMs: number[];
  /** CONCURRENT_ROUNDS bursts of CONCURRENT creates from new connections, paired */
  concurrentRounds: RoundFigure[];
  /** HELD_ROUNDS times HELD creates, WINDOW in flight, paired (the sessions end with their connections after each) */
  heldRounds: RoundFigure[];
  latencyErrors: Record<string, number>;
  /** first Update that said: State */
  firstState: Record<string, number>;
  concurrent?: Omit<CreateBatch, 'sessions'>;
  held?: Omit<CreateBatch, 'sessions'> & { rssBeforeKiB: number | undefined; rssWithKiB: number | undefined; onUplink: number };
  down?: Notified;
  back?: Notified;
  seenAfterBack?: LinkCheck;
  cpuS?: number;
}

const strip = (b: CreateBatch): Omit<CreateBatch, 'sessions'> => {
  const { sessions: _s, ...rest } = b;
  return rest;
};

/** Random order (each round anew): neither daemon is always the one measured right after the other. */
function shuffled<T>(xs: T[]): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/** Steps 0 and 1, paired: every daemon in its own lab at once, one call to each in turn. */
async function scenarioLatency(res: Map<DaemonKind, AResult>): Promise<void> {
  const sides: { kind: DaemonKind; r: Running; hub: SessionHub; c: BenchConn; res: AResult; T: string }[] = [];
  for (const [kind, out] of res) {
    const { r, a } = await start(kind, labP(kind), 'latency');
    const T = r.lab.uplinks[roles(a.links).t]?.ifname as string;
    sides.push({ kind, r, hub: a.hub, c: await a.hub.connect(), res: out, T });
  }
  for (const x of sides) await settle(x.r.pid, 20_000);

  // 0. the floor: a call that does nothing, through the same bus and client
  for (let i = 0; i < WARMUP + ROUNDS; i++) {
    for (const x of shuffled(sides)) {
      const rt = await x.c.roundTrip('/', 'net.connman.Manager', 'GetProperties');
      if (i >= WARMUP) x.res.getPropertiesMs.push(rt);
      await sleep(1);
    }
  }

  /** One CreateSession on c, waited for; its times go to reply/first (after the warm-up). */
  const createOne = async (hub: SessionHub, c: BenchConn, out: AResult, notifier: string, counted: boolean, reply: number[], first: number[]): Promise<void> => {
    const s = c.create(settings({}), notifier);
    await hub.until(() => s.done && s.tReply !== undefined, 10_000);
    if (!counted) return;
    if (s.error !== undefined) out.latencyErrors[s.error] = (out.latencyErrors[s.error] ?? 0) + 1;
    else if (s.tReply === undefined || s.tFirst === undefined) out.latencyErrors.timeout = (out.latencyErrors.timeout ?? 0) + 1;
    else {
      reply.push(s.tReply - s.t0);
      first.push(s.tFirst - s.t0);
      const st = `${s.updates[0]?.changed.State}`;
      out.firstState[st] = (out.firstState[st] ?? 0) + 1;
    }
  };

  // 1. sequential CreateSession
  process.stderr.write(`bench: ${sides.map((x) => x.kind).join(', ')}: ${ROUNDS} sequential CreateSession, paired\n`);
  for (let i = 0; i < WARMUP + ROUNDS; i++) {
    for (const { hub, c, res: out } of shuffled(sides)) {
      await createOne(hub, c, out, `/bench/seq/s${i}`, i >= WARMUP, out.replyMs, out.firstMs);
      await sleep(GAP_MS);
    }
  }

  // 1b. an application's first call: a connection that the daemon has not heard from yet
  process.stderr.write(`bench: ${sides.map((x) => x.kind).join(', ')}: ${ROUNDS} CreateSession from new connections, paired\n`);
  for (let i = 0; i < WARMUP + ROUNDS; i++) {
    for (const { hub, res: out } of shuffled(sides)) {
      const nc = await hub.connect();
      await sleep(GAP_MS);
      await createOne(hub, nc, out, '/bench/first', i >= WARMUP, out.newConnReplyMs, out.newConnFirstMs);
      nc.close();
      await sleep(GAP_MS);
    }
  }

  // 2p. bursts of concurrent CreateSession from as many new connections, paired and repeated:
  // one burst is over in tens of ms, and a single one moved ×3 between runs of the same code
  process.stderr.write(`bench: ${sides.map((x) => x.kind).join(', ')}: ${CONCURRENT_ROUNDS} × ${CONCURRENT} concurrent CreateSession, paired\n`);
  for (let i = 0; i < CONCURRENT_ROUNDS; i++) {
    for (const x of shuffled(sides)) {
      const conns = await x.hub.connectMany(CONCURRENT);
      await settle(x.r.pid, 5000);
      const b = await burst(x.hub, conns, CONCURRENT, () => ({ settings: settings({}), notifier: '/bench/pconc' }), 30_000);
      x.res.concurrentRounds.push(roundOf(b));
      for (const c of conns) c.close();
      await settle(x.r.pid, 5000);
    }
  }

  // 3p. HELD creates, WINDOW in flight, paired and repeated (step 3 makes them once, into a
  // daemon that has served one burst: a single figure that moved ×0.77–×1.12 between runs)
  process.stderr.write(`bench: ${sides.map((x) => x.kind).join(', ')}: ${HELD_ROUNDS} × ${HELD} creates, ${WINDOW} in flight, paired\n`);
  for (let i = 0; i < HELD_ROUNDS; i++) {
    for (const x of shuffled(sides)) {
      const conns = await x.hub.connectMany(Math.ceil(HELD / PER_CONN));
      await settle(x.r.pid, 10_000);
      const b = await createMany(x.hub, conns, HELD, (k) => ({ settings: settings({ AllowedInterface: x.T }), notifier: `/bench/pheld/s${k}` }), WINDOW, CAP_S * 1000);
      x.res.heldRounds.push(roundOf(b));
      for (const c of conns) c.close();
      await settle(x.r.pid, 20_000);
    }
  }
  for (const x of sides) {
    x.c.close();
    checkAlive(x.r);
  }
  await bench.teardown();
}

async function scenarioA(kind: DaemonKind, res: AResult): Promise<void> {
  const { r, a } = await start(kind, LAB_A, 'a');
  const hub = a.hub;
  const { t } = roles(a.links);
  const T = r.lab.uplinks[t]?.ifname as string;
  res.toggled = T;
  res.rssIdleKiB = rssKiB(r.pid);

  // 2. concurrent CreateSession from separate connections
  process.stderr.write(`bench: ${kind}: ${CONCURRENT} concurrent CreateSession from ${CONCURRENT} connections\n`);
  let conns = await hub.connectMany(CONCURRENT);
  await settle(r.pid, 10_000);
  res.concurrent = strip(await burst(hub, conns, CONCURRENT, () => ({ settings: settings({}), notifier: '/bench/conc' }), 30_000));
  for (const x of conns) x.close();
  await settle(r.pid, 20_000);
  checkAlive(r);

  // 3. held sessions on uplink T
  process.stderr.write(`bench: ${kind}: ${HELD} sessions held on ${T}\n`);
  const perT = (prefix: string) => (i: number) => ({ settings: settings({ AllowedInterface: T }), notifier: `/bench/${prefix}/s${i}` });
  conns = await hub.connectMany(Math.ceil(HELD / PER_CONN));
  await settle(r.pid, 10_000);
  const rssBeforeKiB = rssKiB(r.pid);
  const held = await createMany(hub, conns, HELD, perT('held'), WINDOW, CAP_S * 1000);
  await settle(r.pid, 30_000);
  const onUplink = held.sessions.filter((s) => s.iface === T && SESSION_UP.has(s.state ?? '')).length;
  res.held = { ...strip(held), rssBeforeKiB, rssWithKiB: rssKiB(r.pid), onUplink };
  checkAlive(r);

  // 4. uplink T down → every session told; carrier back → every session connected again
  process.stderr.write(`bench: ${kind}: ${T} down under ${HELD} sessions\n`);
  const live = held.sessions.filter((s) => s.error === undefined);
  const down = await carrier(a, t, false, live, 30_000);
  res.down = plainNotified(down);
  await settle(r.pid, 20_000);
  await sleep(500);
  res.back = plainNotified(await carrier(a, t, true, down.told, 60_000));
  const w = a.watch;
  await w.until(`${T} connected again`, () => SERVICE_UP.has(w.stateOfIf(T) ?? ''), 60_000).catch(() => {});
  await w.quiet(500, 10_000);
  await settle(r.pid, 30_000);
  checkAlive(r);

  // 5. still seeing link changes?
  res.seenAfterBack = await linkCheck(r, a, t, live);
  checkAlive(r);
  res.cpuS = cpuSeconds(r.pid);
  await bench.teardown();
}

// ---------------------------------------------------------------------------------------
// lab B: a burst of CreateSession into a fresh daemon, then a link change

interface BResult {
  toggled: string;
  burst?: Omit<CreateBatch, 'sessions'>;
  seenAfterBurst?: LinkCheck;
}

async function scenarioB(kind: DaemonKind, res: BResult): Promise<void> {
  const { r, a } = await start(kind, LAB_B, 'burst');
  const hub = a.hub;
  const { t } = roles(a.links);
  const T = r.lab.uplinks[t]?.ifname as string;
  res.toggled = T;
  process.stderr.write(`bench: ${kind}: burst of ${HELD} CreateSession\n`);
  const conns = await hub.connectMany(Math.ceil(HELD / PER_CONN));
  await settle(r.pid, 10_000);
  const b = await burst(hub, conns, HELD, (i) => ({ settings: settings({ AllowedInterface: T }), notifier: `/bench/burst/s${i}` }), CAP_S * 1000);
  res.burst = strip(b);
  await settle(r.pid, 30_000);
  checkAlive(r);
  res.seenAfterBurst = await linkCheck(r, a, t, b.sessions.filter((x) => x.error === undefined));
  checkAlive(r);
  await bench.teardown();
}

// ---------------------------------------------------------------------------------------
// lab C: TCP through a session with 1 and with MANY sessions held

interface CResult {
  toggled: string;
  tcpUplink: string;
  tcp1?: TcpFigure;
  rssBeforeKiB?: number | undefined;
  many?: Omit<CreateBatch, 'sessions'> & {
    rssWithKiB: number | undefined;
    onUplink: number;
    rate: number | undefined;
    /** while they were being created, every MANY/20 done: how many, ms since the first call, daemon RSS (not settled) */
    progress: { n: number; ms: number; rssKiB: number | undefined }[];
  };
  /** through a session created after the many (the figure) */
  tcpMany?: TcpFigure;
  /** through the first session, with the many held (one run) */
  tcpManyFirst?: TcpFigure;
  /** through the first session again once the many ended: with tcp1, the runs "with 1" bracket those with the many */
  tcp1After?: TcpFigure;
  down?: Notified;
  cpuS?: number;
}

interface CSide extends TcpSide {
  kind: DaemonKind;
  a: LabTools;
  res: CResult;
  /** the uplink the many sessions are held on (and that goes down at the end) */
  t: number;
  T: string;
  own: BenchConn;
  known: Set<number>;
  many?: CreateBatch;
  manyConns?: BenchConn[];
}

/** A session on the TCP uplink, connected, and its mark. */
async function markedSession(x: CSide, notifier: string): Promise<number> {
  const M = x.res.tcpUplink;
  const s = x.own.create(markedSettings(x.kind, M), notifier);
  await x.a.hub.until(() => s.done, 30_000);
  if (s.error !== undefined || !SESSION_UP.has(s.state ?? '')) throw new Error(`${x.kind}: the TCP session ${notifier} is not connected (${s.error ?? s.state ?? 'no Update'})`);
  const mark = await markOf(x.r, s, x.known);
  x.known.add(mark);
  return mark;
}

/** Both daemons at once, in labs of their own; the TCP runs in turn (pairedTcp), the rest one daemon after the other. */
async function scenarioC(res: Map<DaemonKind, CResult>): Promise<void> {
  const sides: CSide[] = [];
  for (const [kind, out] of res) {
    const { r, a } = await start(kind, labC(kind), 'many');
    const { t, m } = roles(a.links);
    const M = r.lab.uplinks[m] as (typeof r.lab.uplinks)[number];
    out.toggled = r.lab.uplinks[t]?.ifname as string;
    out.tcpUplink = M.ifname;
    // the connections' far end: the internet address, in M's ISP namespace
    const sink = openTcpSink(M.ispNetns, r.lab.internet.ipv4, SINK_PORT);
    a.active.onTeardown(() => sink.close());
    sides.push({ kind, r, a, res: out, t, T: out.toggled, sink, expectIsp: M.name, own: await a.hub.connect(), known: await fwmarkRules(r.lab.device.netns) });
  }

  // 7. one session on M, TCP through it
  process.stderr.write(`bench: ${sides.map((x) => x.kind).join(', ')}: TCP through a session, 1 session, paired\n`);
  const first = new Map<CSide, number>();
  for (const x of sides) first.set(x, await markedSession(x, '/bench/tcp/s1'));
  for (const [x, f] of await pairedTcp(sides, first)) x.res.tcp1 = f;
  for (const x of sides) checkAlive(x.r);

  // 8. MANY sessions held on T, one daemon after the other
  for (const x of sides) {
    const { r, res: out, T } = x;
    process.stderr.write(`bench: ${x.kind}: ${MANY} sessions held on ${T} (${MANY_WINDOW} in flight, cap ${CAP_S} s)\n`);
    const conns = await x.a.hub.connectMany(Math.ceil(MANY / PER_CONN));
    await settle(r.pid, 10_000);
    out.rssBeforeKiB = rssKiB(r.pid);
    const progress: { n: number; ms: number; rssKiB: number | undefined }[] = [];
    const every = Math.max(1, Math.floor(MANY / 20));
    const probe = (done: number, elapsedMs: number): void => {
      if (done % every === 0) progress.push({ n: done, ms: +elapsedMs.toFixed(1), rssKiB: rssKiB(r.pid) });
    };
    // netsessiond's are extended: each has its marker rules, so the TCP figure below is the worst case of a
    // rule lookup (a ConnMan client's session has no rule)
    const manySettings = extendedFor(x.kind, { AllowedInterface: T });
    const many = await createMany(x.a.hub, conns, MANY, (i) => ({ settings: manySettings, notifier: `/bench/many/s${i}` }), MANY_WINDOW, CAP_S * 1000, probe);
    x.many = many;
    x.manyConns = conns;
    const doneAt = Math.max(...many.sessions.map((s) => s.tFirst ?? s.tReply ?? 0));
    const t0 = Math.min(...many.sessions.map((s) => s.t0));
    await settle(r.pid, 60_000);
    checkAlive(r);
    const onUplink = many.sessions.filter((s) => s.iface === T && SESSION_UP.has(s.state ?? '')).length;
    out.many = { ...strip(many), rssWithKiB: rssKiB(r.pid), onUplink, rate: many.firstUpdates > 0 ? many.firstUpdates / ((doneAt - t0) / 1000) : undefined, progress };
    if (PROFILE && x.kind === 'netsession') await heapSnapshot(r);
  }

  // 9. TCP again: through a session created now, and through the first one
  process.stderr.write(`bench: ${sides.map((x) => x.kind).join(', ')}: TCP through a session, ${MANY} sessions held, paired\n`);
  const second = new Map<CSide, number>();
  for (const x of sides) second.set(x, await markedSession(x, '/bench/tcp/s2'));
  for (const [x, f] of await pairedTcp(sides, second)) x.res.tcpMany = f;
  for (const [x, f] of await pairedTcp(sides, first, 1)) x.res.tcpManyFirst = f;
  for (const x of sides) checkAlive(x.r);

  // uplink T down under MANY sessions
  for (const x of sides) {
    const held = (x.many?.sessions ?? []).filter((s) => s.tFirst !== undefined);
    process.stderr.write(`bench: ${x.kind}: ${x.T} down under ${held.length} sessions\n`);
    x.res.down = plainNotified(await carrier(x.a, x.t, false, held, 60_000));
    x.res.cpuS = cpuSeconds(x.r.pid);
  }

  // 10. the many end (their connections close): TCP through the first session again. The runs
  // with 1 session come before and after those with the many, so that a drift of the machine
  // over these minutes (both daemons' rates fell ~10 % between the two steps in one run, also
  // the first session's with the many held) does not pass for a cost of the sessions
  process.stderr.write(`bench: ${sides.map((x) => x.kind).join(', ')}: TCP through a session, 1 session again, paired\n`);
  for (const x of sides) {
    for (const c of x.manyConns ?? []) c.close();
    await settle(x.r.pid, 60_000);
  }
  for (const [x, f] of await pairedTcp(sides, first)) x.res.tcp1After = f;
  for (const x of sides) checkAlive(x.r);
  await bench.teardown();
}

// ---------------------------------------------------------------------------------------
// report

const f1 = (x: number | undefined): string => (x === undefined || Number.isNaN(x) ? '–' : x.toFixed(1));
const f2 = (x: number | undefined): string => (x === undefined || Number.isNaN(x) ? '–' : x.toFixed(2));
const f0 = (x: number | undefined): string => (x === undefined || Number.isNaN(x) ? '–' : x.toFixed(0));
const yes = (x: number | undefined): string => (x === undefined ? '–' : x === 1 ? 'yes' : 'no');
const mib = (k: number | undefined): number | undefined => (k === undefined ? undefined : k / 1024);
const delta = (a: number | undefined, b: number | undefined): number | undefined => (a === undefined || b === undefined ? undefined : (b - a) / 1024);

interface Row {
  label: string;
  ours: number | undefined;
  theirs: number | undefined;
  fmt: (x: number | undefined) => string;
  goal?: string;
  met?: (ours: number, theirs: number | undefined) => boolean | undefined;
}

/** latency: ours no higher than theirs */
const lower = (o: number, t: number | undefined): boolean | undefined => (t === undefined ? undefined : o <= t);
/** throughput: ours no lower than theirs */
const higher = (o: number, t: number | undefined): boolean | undefined => (t === undefined ? undefined : o >= t);

async function main(): Promise<void> {
  const resA = new Map<DaemonKind, AResult>();
  const resB = new Map<DaemonKind, BResult>();
  const resC = new Map<DaemonKind, CResult>();
  const version = (await run('connmand', ['-v'], { check: false })).stdout.trim();
  for (const k of KINDS) resA.set(k, { toggled: '', rssIdleKiB: undefined, getPropertiesMs: [], replyMs: [], firstMs: [], newConnReplyMs: [], newConnFirstMs: [], concurrentRounds: [], heldRounds: [], latencyErrors: {}, firstState: {} });
  const scenarios: { lab: string; run: (k: DaemonKind) => Promise<void> }[] = [
    { lab: 'a', run: (k) => scenarioA(k, resA.get(k) as AResult) },
    {
      lab: 'b',
      run: (k) => {
        const res: BResult = { toggled: '' };
        resB.set(k, res);
        return scenarioB(k, res);
      },
    },
  ];
  try {
    if (LABS.has('a')) {
      process.stderr.write(`bench: ${KINDS.join(', ')}, lab A latency (paired)\n`);
      await bench.attempt('lab A latency (paired)', () => scenarioLatency(resA));
    }
    // one lab-heavy thing at a time: each daemon in its own lab, one after the other
    for (const sc of scenarios) {
      if (!LABS.has(sc.lab)) continue;
      for (const k of KINDS) {
        process.stderr.write(`bench: ${k}, lab ${sc.lab.toUpperCase()}\n`);
        await bench.attempt(`${k} lab ${sc.lab.toUpperCase()}`, () => sc.run(k));
      }
    }
    if (LABS.has('c')) {
      for (const k of KINDS) resC.set(k, { toggled: '', tcpUplink: '' });
      process.stderr.write(`bench: ${KINDS.join(', ')}, lab C (TCP runs paired)\n`);
      await bench.attempt('lab C (TCP runs paired)', () => scenarioC(resC));
    }
  } finally {
    await bench.teardown();
  }

  const na = resA.get('netsession');
  const ca = resA.get('connman');
  const nb = resB.get('netsession');
  const cb = resB.get('connman');
  const nc = resC.get('netsession');
  const cc = resC.get('connman');
  const p = (xs: number[] | undefined, q: number): number | undefined => (xs === undefined || xs.length === 0 ? undefined : pct(xs, q));
  // a burst in which some session got no first Update has no time: it counts as not met
  const roundsMedian = (r: AResult | undefined, k: 'allReplyMs' | 'allFirstMs', which: 'concurrentRounds' | 'heldRounds' = 'concurrentRounds'): number | undefined => {
    const rounds = r?.[which];
    return rounds === undefined || rounds.length === 0 || rounds.some((x) => x.errors > 0 || x[k] === undefined) ? undefined : pct(rounds.map((x) => x[k] as number), 50);
  };
  const seen = (c: LinkCheck | undefined): number | undefined => (c === undefined ? undefined : c.serviceSeen && c.sessions.notified === c.sessions.of ? 1 : 0);
  // with 1 session: the median of the runs before the many and after them
  const withOne = (b: CResult | undefined): number | undefined => {
    const xs = [...(b?.tcp1?.runs ?? []), ...(b?.tcp1After?.runs ?? [])].filter((r) => r.connections > 0).map((r) => r.perSecond);
    return xs.length > 0 ? pct(xs, 50) : undefined;
  };
  const ratio = (b: CResult | undefined): number | undefined => {
    const one = withOne(b);
    return b?.tcpMany?.perSecond !== undefined && one ? b.tcpMany.perSecond / one : undefined;
  };
  const rows: Row[] = [
    { label: 'Manager.GetProperties round trip, p50 (ms; the floor of bus + client)', ours: p(na?.getPropertiesMs, 50), theirs: p(ca?.getPropertiesMs, 50), fmt: f2 },
    { label: 'CreateSession → reply, p50 (ms)', ours: p(na?.replyMs, 50), theirs: p(ca?.replyMs, 50), fmt: f2, goal: 'ratio ≤ 1.0', met: lower },
    { label: 'CreateSession → reply, p99 (ms)', ours: p(na?.replyMs, 99), theirs: p(ca?.replyMs, 99), fmt: f2, goal: 'ratio ≤ 1.0', met: lower },
    { label: 'CreateSession → first Update, p50 (ms)', ours: p(na?.firstMs, 50), theirs: p(ca?.firstMs, 50), fmt: f2, goal: 'ratio ≤ 1.0', met: lower },
    { label: 'CreateSession → first Update, p99 (ms)', ours: p(na?.firstMs, 99), theirs: p(ca?.firstMs, 99), fmt: f2, goal: 'ratio ≤ 1.0', met: lower },
    { label: "an application's first CreateSession (new connection) → reply, p50 (ms)", ours: p(na?.newConnReplyMs, 50), theirs: p(ca?.newConnReplyMs, 50), fmt: f2, goal: 'ratio ≤ 1.0', met: lower },
    { label: "an application's first CreateSession (new connection) → first Update, p50 (ms)", ours: p(na?.newConnFirstMs, 50), theirs: p(ca?.newConnFirstMs, 50), fmt: f2, goal: 'ratio ≤ 1.0', met: lower },
    { label: "an application's first CreateSession (new connection) → first Update, p99 (ms)", ours: p(na?.newConnFirstMs, 99), theirs: p(ca?.newConnFirstMs, 99), fmt: f2, goal: 'ratio ≤ 1.0', met: lower },
    { label: `${CONCURRENT} concurrent CreateSession (${CONCURRENT} connections, fresh daemon, one burst): all replies (ms)`, ours: na?.concurrent?.allReplyMs, theirs: ca?.concurrent?.allReplyMs, fmt: f1, goal: 'ratio ≤ 1.0', met: lower },
    { label: `${CONCURRENT} concurrent CreateSession (${CONCURRENT} connections, fresh daemon, one burst): all first Updates (ms)`, ours: na?.concurrent?.allFirstMs, theirs: ca?.concurrent?.allFirstMs, fmt: f1, goal: 'ratio ≤ 1.0', met: lower },
    { label: `${CONCURRENT} concurrent CreateSession, paired, median of ${CONCURRENT_ROUNDS} bursts: all replies (ms)`, ours: roundsMedian(na, 'allReplyMs'), theirs: roundsMedian(ca, 'allReplyMs'), fmt: f1, goal: 'ratio ≤ 1.0', met: lower },
    { label: `${CONCURRENT} concurrent CreateSession, paired, median of ${CONCURRENT_ROUNDS} bursts: all first Updates (ms)`, ours: roundsMedian(na, 'allFirstMs'), theirs: roundsMedian(ca, 'allFirstMs'), fmt: f1, goal: 'ratio ≤ 1.0', met: lower },
    { label: 'RSS idle, 3 uplinks, no session (MiB)', ours: mib(na?.rssIdleKiB), theirs: mib(ca?.rssIdleKiB), fmt: f1 },
    { label: `create ${HELD} sessions, ${WINDOW} in flight: all first Updates (ms)`, ours: na?.held?.allFirstMs, theirs: ca?.held?.allFirstMs, fmt: f1, goal: 'ratio ≤ 1.0', met: lower },
    { label: `create ${HELD} sessions, ${WINDOW} in flight, paired, median of ${HELD_ROUNDS}: all first Updates (ms)`, ours: roundsMedian(na, 'allFirstMs', 'heldRounds'), theirs: roundsMedian(ca, 'allFirstMs', 'heldRounds'), fmt: f1, goal: 'ratio ≤ 1.0', met: lower },
    { label: `RSS growth with ${HELD} sessions held (MiB)`, ours: delta(na?.held?.rssBeforeKiB, na?.held?.rssWithKiB), theirs: delta(ca?.held?.rssBeforeKiB, ca?.held?.rssWithKiB), fmt: f1 },
    { label: `uplink down → all ${HELD} sessions notified (ms)`, ours: na?.down?.allMs, theirs: ca?.down?.allMs, fmt: f1, goal: 'ratio ≤ 1.0', met: lower },
    { label: `uplink down → ${HELD} sessions notified, p50 (ms)`, ours: na?.down?.p50Ms, theirs: ca?.down?.p50Ms, fmt: f1 },
    { label: `carrier back → all ${HELD} sessions connected again (ms, incl. DHCP)`, ours: na?.back?.allMs, theirs: ca?.back?.allMs, fmt: f1 },
    { label: `link change seen after carrier came back under ${HELD} sessions`, ours: seen(na?.seenAfterBack), theirs: seen(ca?.seenAfterBack), fmt: yes, goal: 'yes', met: (o) => o === 1 },
    { label: `burst of ${HELD} CreateSession at once (fresh daemon): all first Updates (ms)`, ours: nb?.burst?.allFirstMs, theirs: cb?.burst?.allFirstMs, fmt: f1, goal: 'ratio ≤ 1.0', met: lower },
    { label: `link change seen after the burst of ${HELD}`, ours: seen(nb?.seenAfterBurst), theirs: seen(cb?.seenAfterBurst), fmt: yes, goal: 'yes', met: (o) => o === 1 },
    { label: 'TCP connections/s through a session, 1 session', ours: withOne(nc), theirs: withOne(cc), fmt: f0, goal: 'ratio ≥ 1.0', met: higher },
    { label: `sessions created of ${MANY} (cap ${CAP_S} s)`, ours: nc?.many?.firstUpdates, theirs: cc?.many?.firstUpdates, fmt: f0, goal: `${MANY}`, met: (o) => o === MANY },
    { label: `create ${MANY} sessions, ${MANY_WINDOW} in flight: sessions/s`, ours: nc?.many?.rate, theirs: cc?.many?.rate, fmt: f0, goal: 'ratio ≥ 1.0', met: higher },
    { label: `RSS with ${MANY} sessions held (MiB)`, ours: mib(nc?.many?.rssWithKiB), theirs: mib(cc?.many?.rssWithKiB), fmt: f1, goal: '≤ 200 MB', met: (o) => o * 1024 * 1024 <= 200e6 },
    { label: `RSS growth with ${MANY} sessions held (MiB)`, ours: delta(nc?.rssBeforeKiB, nc?.many?.rssWithKiB), theirs: delta(cc?.rssBeforeKiB, cc?.many?.rssWithKiB), fmt: f1 },
    { label: `TCP connections/s through a session, ${MANY} sessions held`, ours: nc?.tcpMany?.perSecond, theirs: cc?.tcpMany?.perSecond, fmt: f0, goal: 'ratio ≥ 1.0', met: higher },
    { label: `TCP rate with ${MANY} sessions / with 1`, ours: ratio(nc), theirs: ratio(cc), fmt: f2, goal: '≥ 0.9', met: (o) => o >= 0.9 },
    { label: `uplink down → all ${MANY} sessions notified (ms)`, ours: nc?.down?.allMs, theirs: cc?.down?.allMs, fmt: f1 },
  ];
  const cpu = cpus();
  console.log(`netsession sessions vs ${version ? `ConnMan ${version}` : 'ConnMan'} — ${cpu.length} × ${cpu[0]?.model ?? 'cpu'}, Linux ${release()}, node ${process.version}`);
  console.log(
    `${ROUNDS} sequential sessions (+${WARMUP} warm-up); ${HELD} held over ${Math.ceil(HELD / PER_CONN)} connections; ${MANY} held (lab C); TCP ${TCP_RUNS} × ${TCP_SECONDS} s, ${TCP_CONCURRENCY} loops, median; ratio = netsession / ConnMan`,
  );
  console.log('');
  console.log('| figure | netsession | ConnMan | ratio | goal | met? |');
  console.log('| --- | ---: | ---: | ---: | --- | --- |');
  for (const row of rows) {
    const r = row.ours !== undefined && row.theirs !== undefined && row.theirs > 0 && row.fmt !== yes ? (row.ours / row.theirs).toFixed(2) : '–';
    const m = row.met && row.ours !== undefined ? row.met(row.ours, row.theirs) : undefined;
    console.log(`| ${row.label} | ${row.fmt(row.ours)} | ${row.fmt(row.theirs)} | ${r} | ${row.goal ?? ''} | ${m === undefined ? '' : m ? 'met' : 'NOT met'} |`);
  }
  console.log('');
  const errs = (e: Record<string, number>): string => (Object.keys(e).length === 0 ? 'none' : Object.entries(e).map(([k, v]) => `${k} ×${v}`).join(', '));
  const check = (c: LinkCheck | undefined): string =>
    c === undefined ? '–' : `service ${c.serviceSeen ? `seen in ${f1(c.serviceMs)} ms` : 'NOT seen'}, sessions told ${c.sessions.notified}/${c.sessions.of}${c.backUp ? '' : ', NOT back up'}`;
  for (const [k, r] of resA) {
    console.log(
      `${k} lab A: toggled ${r.toggled}; first Update State ${errs(r.firstState)}; sequential errors ${errs(r.latencyErrors)}; ` +
        `concurrent: ${r.concurrent?.replies}/${r.concurrent?.n} replies, ${r.concurrent?.firstUpdates} first Updates, errors ${errs(r.concurrent?.errors ?? {})}, per session first Update p50 ${f1(r.concurrent?.firstP50Ms)} p99 ${f1(r.concurrent?.firstP99Ms)} ms; ` +
        `paired bursts, all first Updates: ${r.concurrentRounds.map((x) => (x.errors > 0 ? `${x.errors} missing` : f1(x.allFirstMs))).join(', ')} ms; ` +
        `paired ${HELD} creates, all first Updates: ${r.heldRounds.map((x) => (x.errors > 0 ? `${x.errors} missing` : f1(x.allFirstMs))).join(', ')} ms; ` +
        `held: ${r.held?.firstUpdates}/${r.held?.n} created (${r.held?.onUplink} connected on ${r.toggled}), errors ${errs(r.held?.errors ?? {})}; ` +
        `down: ${r.down?.notified}/${r.down?.of} told; back: ${r.back?.notified}/${r.back?.of}; after carrier back: ${check(r.seenAfterBack)}; CPU ${f2(r.cpuS)} s`,
    );
  }
  for (const [k, r] of resB) {
    console.log(
      `${k} lab B: burst on ${r.toggled}: ${r.burst?.replies}/${r.burst?.n} replies (all in ${f1(r.burst?.allReplyMs)} ms), ${r.burst?.firstUpdates} first Updates, ` +
        `errors ${errs(r.burst?.errors ?? {})}; after the burst: ${check(r.seenAfterBurst)}`,
    );
  }
  const tcp = (x: TcpFigure | undefined): string =>
    x === undefined
      ? '–'
      : `mark 0x${x.mark.toString(16)} via ${x.via}: ${x.runs
          .map(
            (y, i) =>
              `${f0(y.perSecond)}/s [daemon CPU ${f2(x.daemonCpuS[i])} s]${y.errors > 0 ? ` (${y.errors} errors: ${errs(y.errorCodes)})` : ''}${y.slow > 0 ? ` (${y.slow} connects > 100 ms, max ${f0(y.maxConnectMs)} ms)` : ''}`,
          )
          .join(', ')}`;
  for (const [k, r] of resC) {
    console.log(
      `${k} lab C: TCP uplink ${r.tcpUplink}, held on ${r.toggled}; 1 session: ${tcp(r.tcp1)}; ` +
        `many: ${r.many?.firstUpdates}/${r.many?.n} created${r.many?.capped ? ' (cap reached)' : ''} (${r.many?.onUplink} connected), errors ${errs(r.many?.errors ?? {})}, all first Updates ${f1(r.many?.allFirstMs)} ms; ` +
        `with them, new session: ${tcp(r.tcpMany)}; first session: ${tcp(r.tcpManyFirst)}; down: ${r.down?.notified}/${r.down?.of} told in ${f1(r.down?.allMs)} ms; CPU ${f2(r.cpuS)} s; ` +
          `once they ended, first session: ${tcp(r.tcp1After)}`,
    );
  }
  for (const e of bench.errors) console.log(`ERROR ${e}`);
  console.log(`daemon logs${PROFILE ? ' and profiles' : ''}: ${bench.outDir}`);
  console.log('');
  const json = {
    bench: 'sessions',
    machine: { cpus: cpu.length, model: cpu[0]?.model, kernel: release(), node: process.version, connman: version },
    sizes: { rounds: ROUNDS, concurrent: CONCURRENT, concurrentRounds: CONCURRENT_ROUNDS, heldRounds: HELD_ROUNDS, held: HELD, many: MANY, perConn: PER_CONN, window: WINDOW, manyWindow: MANY_WINDOW, capS: CAP_S, tcp: { seconds: TCP_SECONDS, runs: TCP_RUNS, concurrency: TCP_CONCURRENCY } },
    figures: Object.fromEntries(rows.map((r) => [r.label, { netsession: r.ours ?? null, connman: r.theirs ?? null }])),
    labA: Object.fromEntries([...resA].map(([k, r]) => [k, { ...r, getPropertiesMs: r.getPropertiesMs.map((x) => +x.toFixed(3)), replyMs: r.replyMs.map((x) => +x.toFixed(3)), firstMs: r.firstMs.map((x) => +x.toFixed(3)), newConnReplyMs: r.newConnReplyMs.map((x) => +x.toFixed(3)), newConnFirstMs: r.newConnFirstMs.map((x) => +x.toFixed(3)) }])),
    labB: Object.fromEntries(resB),
    labC: Object.fromEntries(resC),
    errors: bench.errors,
  };
  console.log(JSON.stringify(json));
  if (bench.errors.length > 0) process.exitCode = 1;
}

await main();
