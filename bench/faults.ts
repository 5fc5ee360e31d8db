// Benchmark of netsessiond under faults, side by side with ConnMan 1.41 where the workload
// applies to both (one daemon at a time, each in a fresh lab of three uplinks built by
// labUp(); ConnMan is started in it by peers/connman.ts):
//   1. Manager.GetProperties round trips (lib/session-client.ts: from right before the call is
//      written to the arrival of its reply), one every BENCH_PROBE_MS: idle for 5 s, then
//      during a storm of BENCH_FLIPS carrier flips in BENCH_STORM_MS over the three uplinks
//      (the ISP-side veths set up and down with our own netlink requests, seeded choices);
//      p50/p99/max, calls unanswered within 5 s; then every uplink up: the time until all
//      three services are connected again
//   2. netsessiond only: restart after SIGKILL with BENCH_SESSIONS sessions held (pinned to
//      the three uplinks and ConnectionType internet, with SessionMarkers: their rules and nft
//      objects stay in the kernel when the daemon dies): from the start of the new daemon to
//      the moment our kernel state (rules and routes with our protocol tag or in our tables,
//      our addresses, our nft table) equals what a clean start without sessions makes, and
//      stays so for 2 s; p50/max over BENCH_RESTART_ROUNDS rounds; and the time to the bus
//      name (node's own start-up is in both); and how many of our addresses and the default
//      routes of the services' tables left the kernel at any moment of it (sampled with every
//      kernel dump; the leases and IPv6 routers of the last run are gone on with, so none should)
//
//   node --import tsx bench/faults.ts          (npm run bench:faults)
//   env: BENCH_DAEMONS=netsession,connman  BENCH_FLIPS=1000  BENCH_STORM_MS=10000
//        BENCH_PROBE_MS=10  BENCH_RESTART_ROUNDS=5  BENCH_SESSIONS=1000  BENCH_SEED=N
//        BENCH_SKIP_RESTART=1  BENCH_PROFILE=1 (netsessiond under a CPU profiler during the
//        storm, lib/cpu-profile.mjs; the profile is kept with the logs)
// Prints a table (figures and ratios ours / ConnMan) and one JSON line. Asserts nothing.
import { readdirSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Rtnetlink } from '../src/kernel/rtnetlink/client.ts';
import { labDaemon, type LabUpResult, labUp } from '../src/lab/lab.ts';
import { startLabDaemon } from '../src/lab/lab-daemon.ts';
import { run } from '../src/lab/processes.ts';
import { labDir, resolveTopology } from '../src/lab/topology.ts';
import { type ActiveLab, type BenchDaemon, BenchRun, checkAlive, type DaemonKind, daemonKinds, errorMessage, intEnv } from './lib/bench-run.ts';
import { IspLinks } from './lib/isp-links.ts';
import { ServiceWatch } from './lib/service-watch.ts';
import { type BenchConn, SessionHub, settings } from './lib/session-client.ts';
import { pct, rssKiB } from './lib/stats.ts';
import { startConnman } from './peers/connman.ts';

const KINDS = daemonKinds();
const FLIPS = intEnv('BENCH_FLIPS', 1000, 1, 100_000);
const STORM_MS = intEnv('BENCH_STORM_MS', 10_000, 100, 600_000);
const PROBE_MS = intEnv('BENCH_PROBE_MS', 10, 1, 1000);
const ROUNDS = intEnv('BENCH_RESTART_ROUNDS', 5, 1, 100);
const SESSIONS = intEnv('BENCH_SESSIONS', 1000, 0, 20_000);
const SEED = intEnv('BENCH_SEED', Date.now() % 2 ** 31, 0, 2 ** 31);
const SKIP_RESTART = process.env.BENCH_SKIP_RESTART === '1';
const PROFILE = process.env.BENCH_PROFILE === '1';
const PROBE_TIMEOUT_MS = 5000;
const IDLE_MS = 5000;
const STABLE_MS = 2000;
const CONNECTED = new Set(['ready', 'online']);
const LAB = 'bfaults';
const OUR_PROTO = 83;
const OUR_TABLES = 65536;
const bench = new BenchRun('faults');
const CPU_PROFILE_PRELOAD = fileURLToPath(new URL('./lib/cpu-profile.mjs', import.meta.url));

// ---------------------------------------------------------------------------------------
// the lab in use; bench.teardown() stops its daemon and removes it, also on failure and on Ctrl-C

/** A fresh lab of three uplinks with the daemon of that kind in it. */
async function start(kind: DaemonKind, label: string, profile = false): Promise<{ lab: LabUpResult; active: ActiveLab; daemon: BenchDaemon }> {
  const active = bench.beginLab(LAB, label);
  // the lab dir goes with the lab: a profiled daemon's CPU profile is kept with the logs
  active.keepFiles = (keep) => {
    for (const f of readdirSync(labDir(LAB)).filter((x) => x.endsWith('.cpuprofile'))) keep(`${labDir(LAB)}/${f}`, f);
  };
  const lab = await bench.track(labUp({ name: LAB, uplinks: 3 }));
  let daemon: BenchDaemon;
  if (kind === 'netsession') {
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    delete env.NODE_OPTIONS;
    if (profile) Object.assign(env, { NODE_OPTIONS: `--import ${CPU_PROFILE_PRELOAD}`, BENCH_CPU_PROFILE_DIR: lab.dir, BENCH_CPU_PROFILE_NAME: `netsessiond-${label}` });
    const info = await bench.track(startLabDaemon(resolveTopology({ name: LAB, uplinks: 3 }), { logLevel: 'info' }, env));
    daemon = { kind, pid: info.pid, log: info.log, stop: async () => void (await labDaemon(LAB, 'stop')) };
  } else {
    const cm = await bench.track(startConnman(lab));
    daemon = { kind, pid: cm.pid, log: cm.log, stop: cm.stop };
  }
  active.daemon = daemon;
  return { lab, active, daemon };
}

// ---------------------------------------------------------------------------------------
// 1. GetProperties during a carrier storm

/** GetProperties sent every PROBE_MS (whatever the previous one does), each timed by the client. */
class Prober {
  readonly latencies: number[] = [];
  unanswered = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly pending = new Set<Promise<void>>();
  constructor(private readonly conn: BenchConn) {}

  start(): this {
    this.timer = setInterval(() => {
      let timer: NodeJS.Timeout | undefined;
      const p = Promise.race([
        this.conn.roundTrip('/', 'net.connman.Manager', 'GetProperties'),
        new Promise<undefined>((resolve) => {
          timer = setTimeout(() => resolve(undefined), PROBE_TIMEOUT_MS);
        }),
      ]).then((ms) => {
        clearTimeout(timer);
        if (ms === undefined) this.unanswered++;
        else this.latencies.push(ms);
      });
      this.pending.add(p);
      void p.finally(() => this.pending.delete(p));
    }, PROBE_MS);
    return this;
  }

  async stop(): Promise<this> {
    clearInterval(this.timer);
    await Promise.allSettled([...this.pending]);
    return this;
  }
}

interface Latency {
  calls: number;
  p50: number;
  p99: number;
  max: number;
  unanswered: number;
}

const latency = (p: Prober): Latency => ({
  calls: p.latencies.length,
  p50: pct(p.latencies, 50),
  p99: pct(p.latencies, 99),
  max: p.latencies.reduce((a, b) => Math.max(a, b), 0),
  unanswered: p.unanswered,
});

interface StormResult {
  idle: Latency;
  storm: Latency;
  stormMs: number;
  /** storm over (every uplink up) → the last State change of the three services, all ready/online then; undefined: not within 60 s */
  recoveredMs: number | undefined;
  rssBeforeKiB: number | undefined;
  rssAfterKiB: number | undefined;
}

/** Seeded (mulberry32), the same flips for both daemons. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function scenarioStorm(kind: DaemonKind): Promise<StormResult> {
  const { lab, active, daemon } = await start(kind, 'storm', PROFILE && kind === 'netsession');
  const w = await ServiceWatch.open(lab.bus.address);
  active.onTeardown(() => w.close());
  const ifs = lab.uplinks.map((u) => u.ifname);
  const allConnected = (): boolean => ifs.every((i) => CONNECTED.has(w.stateOfIf(i) ?? ''));
  await w.until(`${kind}: 3 services connected`, allConnected, 60_000);
  await w.quiet(1000, 10_000);
  const hub = new SessionHub(lab.bus.address);
  active.onTeardown(() => hub.closeAll());
  const conn = await hub.connect();
  const links = await IspLinks.open(lab);
  active.onTeardown(() => links.close());
  const rssBeforeKiB = rssKiB(daemon.pid);

  const idle = await new Prober(conn).start();
  await sleep(IDLE_MS);
  await idle.stop();

  const rnd = random(SEED);
  const up = ifs.map(() => true);
  const during = new Prober(conn).start();
  const t0 = performance.now();
  for (let k = 0; k < FLIPS; k++) {
    const wait = t0 + (k * STORM_MS) / FLIPS - performance.now();
    if (wait > 0) await sleep(wait);
    const i = Math.floor(rnd() * ifs.length);
    up[i] = !up[i];
    await links.set(i, up[i]!);
  }
  const stormMs = performance.now() - t0;
  for (let i = 0; i < ifs.length; i++) if (!up[i]) await links.set(i, true);
  const t1 = performance.now();
  await during.stop();
  let recoveredMs: number | undefined;
  try {
    // the signals of the last flips may still be on their way: connected, and no State change for a second
    const deadline = performance.now() + 60_000;
    for (;;) {
      await w.until(`${kind}: 3 services connected after the storm`, allConnected, Math.max(1, deadline - performance.now()));
      await w.quiet(1000, 10_000);
      if (allConnected()) break;
      if (performance.now() > deadline) throw new Error(`${kind}: 3 services not connected 60 s after the storm`);
    }
    const paths = new Set(ifs.map((i) => w.pathOf(i)));
    const last = w.events.filter((e) => paths.has(e.path) && e.t >= t1).reduce((m, e) => Math.max(m, e.t), t1);
    recoveredMs = last - t1;
  } catch (err) {
    process.stderr.write(`bench: ${errorMessage(err)}\n`);
  }
  checkAlive(daemon);
  const res: StormResult = { idle: latency(idle), storm: latency(during), stormMs, recoveredMs, rssBeforeKiB, rssAfterKiB: rssKiB(daemon.pid) };
  await bench.teardown();
  return res;
}

// ---------------------------------------------------------------------------------------
// 2. restart after SIGKILL with sessions held

/** What the kernel of the device namespace holds of ours, canonical and sorted (fast: our own rtnetlink, one nft call). */
async function ourKernel(rtnl: Rtnetlink, netns: string): Promise<string[]> {
  const [rules, routes, addresses, nft] = await Promise.all([
    rtnl.dumpRules(),
    rtnl.dumpRoutes(),
    rtnl.dumpAddresses(),
    run('ip', ['netns', 'exec', netns, 'nft', 'list', 'table', 'inet', 'netsession'], { check: false }),
  ]);
  const out = [
    ...rules.filter((r) => r.protocol === OUR_PROTO).map((r) => `rule ${JSON.stringify(r)}`),
    ...routes.filter((r) => r.protocol === OUR_PROTO || r.table >= OUR_TABLES).map((r) => `route ${JSON.stringify({ ...r, expires: undefined, flags: undefined })}`),
    ...addresses.filter((x) => x.protocol === OUR_PROTO).map((x) => `address ${x.index} ${x.address}/${x.prefixLen}`),
  ];
  if (nft.code === 0) out.push(`nft ${nft.stdout.replace(/ packets \d+ bytes \d+/g, '').replace(/ expires \S+/g, '')}`);
  return out.sort();
}

const same = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

interface RestartRound {
  sessions: number;
  /** our rules in the kernel when the daemon was killed, and in the reference */
  rulesAtKill: number;
  rulesReference: number;
  /** start → the bus name is owned */
  busMs: number;
  /** start → the kernel equals the reference (and stays so STABLE_MS) */
  convergedMs: number;
  /** our addresses and the default routes of the services' tables at the kill, and how many of them were missing from any sample after it */
  connectivityAtKill: number;
  connectivityDropped: number;
}

async function holdSessions(hub: SessionHub, n: number): Promise<number> {
  const perConn = 100;
  const conns = await hub.connectMany(Math.ceil(n / perConn));
  const kinds = [
    settings({ AllowedInterface: 'eth0', AvoidHandover: false }),
    settings({ AllowedInterface: 'eth1', AvoidHandover: false }),
    settings({ AllowedInterface: 'eth2', AvoidHandover: false }),
    settings({ ConnectionType: 'internet', AvoidHandover: false }),
  ];
  let made = 0;
  // a few in flight per connection
  await Promise.all(
    conns.map(async (c, ci) => {
      for (let k = 0; k < perConn && ci * perConn + k < n; k++) {
        c.create(kinds[(ci * perConn + k) % kinds.length]!, `/s${k}`);
        made++;
        if (k % 10 === 9) await hub.until(() => c.sessions.every((s) => s.done), 30_000);
      }
    }),
  );
  await hub.until(() => hub.firstUpdates + hub.errors >= made, 60_000);
  return hub.firstUpdates;
}

async function scenarioRestart(): Promise<RestartRound[]> {
  const { lab, active, daemon } = await start('netsession', 'restart');
  const w = await ServiceWatch.open(lab.bus.address);
  active.onTeardown(() => w.close());
  const ifs = lab.uplinks.map((u) => u.ifname);
  await w.until('3 services online', () => ifs.every((i) => w.stateOfIf(i) === 'online'), 60_000);
  w.close();
  const rtnl = Rtnetlink.open({ netns: lab.device.netns });
  active.onTeardown(() => rtnl.close());
  const ns = lab.device.netns;
  // the reference: what a clean start without sessions makes, once every uplink has its IPv4
  // and IPv6 default routes in its table (the same twice, a second apart)
  const complete = (k: readonly string[]): boolean =>
    [2, 10].every((fam) => k.filter((l) => l.startsWith(`route {"family":${fam},`) && /"dstLen":0,/.test(l) && !/"table":254,/.test(l)).length === ifs.length);
  let reference = await ourKernel(rtnl, ns);
  for (let k = 0; ; k++) {
    if (k === 60) throw new Error(`no complete and stable kernel state without sessions within 60 s: ${reference.length} objects`);
    await sleep(1000);
    const now = await ourKernel(rtnl, ns);
    if (complete(now) && same(now, reference)) break;
    reference = now;
  }
  const rulesReference = reference.filter((l) => l.startsWith('rule ')).length;
  const rounds: RestartRound[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const hub = new SessionHub(lab.bus.address);
    const held = await holdSessions(hub, SESSIONS);
    // the kernel routes them, and stays so
    let before = await ourKernel(rtnl, ns);
    for (let k = 0; k < 20; k++) {
      await sleep(500);
      const now = await ourKernel(rtnl, ns);
      if (same(now, before)) break;
      before = now;
    }
    await labDaemon(LAB, 'kill');
    hub.closeAll();
    const t0 = performance.now();
    let busMs: number | undefined;
    let failed: unknown;
    const restarting = labDaemon(LAB, 'start', { logLevel: 'info' }).then(
      (info) => {
        busMs = performance.now() - t0;
        if (info !== undefined) daemon.pid = info.pid;
      },
      (e: unknown) => {
        failed = e;
      },
    );
    let equalSince: number | undefined;
    // an address or an uplink's default route that leaves the kernel, however briefly, breaks
    // the connections that use it (and sends fail with ENETUNREACH meanwhile)
    const connectivityAtKill = before.filter((l) => l.startsWith('address ') || (l.startsWith('route ') && /"dstLen":0,/.test(l) && !/"table":254,/.test(l)));
    const dropped = new Set<string>();
    for (;;) {
      if (failed) throw failed;
      const now = await ourKernel(rtnl, ns);
      for (const a of connectivityAtKill) if (!now.includes(a)) dropped.add(a);
      const t = performance.now() - t0;
      if (same(now, reference)) equalSince ??= t;
      else equalSince = undefined;
      if (busMs !== undefined && equalSince !== undefined && t - equalSince >= STABLE_MS) break;
      if (t > 60_000) {
        const extra = now.filter((l) => !reference.includes(l));
        const missing = reference.filter((l) => !now.includes(l));
        throw new Error(`the kernel did not converge within 60 s of the restart: ${extra.length} extra (${extra.slice(0, 3).join(' | ').slice(0, 600)}), ${missing.length} missing (${missing.slice(0, 3).join(' | ').slice(0, 600)})`);
      }
    }
    await restarting;
    rounds.push({ sessions: held, rulesAtKill: before.filter((l) => l.startsWith('rule ')).length, rulesReference, busMs: busMs!, convergedMs: equalSince, connectivityAtKill: connectivityAtKill.length, connectivityDropped: dropped.size });
    process.stderr.write(`bench: restart round ${round + 1}: ${held} sessions, bus name after ${Math.round(busMs!)} ms, kernel converged after ${Math.round(equalSince)} ms\n`);
    checkAlive(daemon);
  }
  await bench.teardown();
  return rounds;
}

// ---------------------------------------------------------------------------------------
// report

const f1 = (x: number | undefined): string => (x === undefined || Number.isNaN(x) ? '–' : x.toFixed(1));
const f0 = (x: number | undefined): string => (x === undefined || Number.isNaN(x) ? '–' : String(Math.round(x)));

interface Row {
  label: string;
  ours: number | undefined;
  theirs: number | undefined;
  fmt: (x: number | undefined) => string;
  goal?: (ours: number) => string;
}

async function main(): Promise<void> {
  const storms = new Map<DaemonKind, StormResult>();
  let restart: RestartRound[] = [];
  const version = (await run('connmand', ['-v'], { check: false })).stdout.trim();
  try {
    for (const k of KINDS) {
      process.stderr.write(`bench: ${k}, GetProperties idle and during ${FLIPS} carrier flips in ${STORM_MS} ms\n`);
      const res = await bench.attempt(`${k} storm`, () => scenarioStorm(k));
      if (res !== undefined) storms.set(k, res);
    }
    if (!SKIP_RESTART && KINDS.includes('netsession')) {
      process.stderr.write(`bench: netsession, restart after SIGKILL with ${SESSIONS} sessions, ${ROUNDS} rounds\n`);
      restart = (await bench.attempt('restart', scenarioRestart)) ?? restart;
    }
  } finally {
    await bench.teardown();
  }

  const ns = storms.get('netsession');
  const cm = storms.get('connman');
  const conv = restart.map((r) => r.convergedMs);
  const bus = restart.map((r) => r.busMs);
  const p = (xs: number[], q: number): number | undefined => (xs.length === 0 ? undefined : pct(xs, q));
  const mib = (k: number | undefined): number | undefined => (k === undefined ? undefined : k / 1024);
  const rows: Row[] = [
    { label: 'GetProperties idle, p50 (ms)', ours: ns?.idle.p50, theirs: cm?.idle.p50, fmt: f1 },
    { label: 'GetProperties idle, p99 (ms)', ours: ns?.idle.p99, theirs: cm?.idle.p99, fmt: f1 },
    { label: `GetProperties during ${FLIPS} flips in ${STORM_MS / 1000} s, p50 (ms)`, ours: ns?.storm.p50, theirs: cm?.storm.p50, fmt: f1 },
    { label: `GetProperties during ${FLIPS} flips in ${STORM_MS / 1000} s, p99 (ms)`, ours: ns?.storm.p99, theirs: cm?.storm.p99, fmt: f1, goal: (o) => (o <= 50 ? 'p99 ≤ 50 ms: met' : 'p99 ≤ 50 ms: NOT met') },
    { label: `GetProperties during ${FLIPS} flips in ${STORM_MS / 1000} s, max (ms)`, ours: ns?.storm.max, theirs: cm?.storm.max, fmt: f1 },
    { label: `GetProperties unanswered within ${PROBE_TIMEOUT_MS / 1000} s during the storm`, ours: ns?.storm.unanswered, theirs: cm?.storm.unanswered, fmt: f0 },
    { label: 'storm over → 3 services connected again (last State change, ms)', ours: ns?.recoveredMs, theirs: cm?.recoveredMs, fmt: f0 },
    { label: 'RSS after the storm (MiB)', ours: mib(ns?.rssAfterKiB), theirs: mib(cm?.rssAfterKiB), fmt: f1 },
    { label: `restart after SIGKILL (${SESSIONS} sessions held) → kernel converged, p50 (ms)`, ours: p(conv, 50), theirs: undefined, fmt: f0, goal: (o) => (o <= 1000 ? '≤ 1 s: met' : '≤ 1 s: NOT met') },
    { label: `restart after SIGKILL (${SESSIONS} sessions held) → kernel converged, max (ms)`, ours: p(conv, 100), theirs: undefined, fmt: f0, goal: (o) => (o <= 1000 ? '≤ 1 s: met' : '≤ 1 s: NOT met') },
    { label: 'restart → bus name owned (node start-up included), p50 (ms)', ours: p(bus, 50), theirs: undefined, fmt: f0 },
    {
      label: 'restart after SIGKILL: addresses and uplink default routes that left the kernel while it converged (most in a round)',
      ours: restart.length === 0 ? undefined : Math.max(...restart.map((r) => r.connectivityDropped)),
      theirs: undefined,
      fmt: f0,
      goal: (o) => (o === 0 ? '0: met' : '0: NOT met'),
    },
  ];
  const cpu = cpus();
  console.log(`netsession faults vs ${version ? `ConnMan ${version}` : 'ConnMan'} — ${cpu.length} × ${cpu[0]?.model ?? 'cpu'}, Linux ${release()}, node ${process.version}`);
  console.log(
    `3 uplinks; GetProperties every ${PROBE_MS} ms (client-side round trip); storm: ${FLIPS} ISP-side link flips in ${STORM_MS} ms, seed ${SEED}; ` +
      `restart: ${ROUNDS} rounds, converged = our kernel state equal to a clean start's for ${STABLE_MS / 1000} s; ratio = netsession / ConnMan`,
  );
  console.log('');
  console.log('| figure | netsession | ConnMan | ratio | goal |');
  console.log('| --- | ---: | ---: | ---: | --- |');
  for (const row of rows) {
    const ratio = row.ours !== undefined && row.theirs !== undefined && row.theirs > 0 ? (row.ours / row.theirs).toFixed(2) : '–';
    const goal = row.goal && row.ours !== undefined ? row.goal(row.ours) : '';
    console.log(`| ${row.label} | ${row.fmt(row.ours)} | ${row.fmt(row.theirs)} | ${ratio} | ${goal} |`);
  }
  console.log('');
  for (const [k, r] of storms) {
    console.log(`${k}: ${r.idle.calls} idle calls, ${r.storm.calls} during the storm (${f0(r.stormMs)} ms); RSS ${f1(mib(r.rssBeforeKiB))} → ${f1(mib(r.rssAfterKiB))} MiB`);
  }
  restart.forEach((r, i) => {
    console.log(`restart round ${i + 1}: ${r.sessions} sessions, ${r.rulesAtKill} rules of ours at the kill (${r.rulesReference} without sessions); bus name ${f0(r.busMs)} ms, converged ${f0(r.convergedMs)} ms; ${r.connectivityDropped} of ${r.connectivityAtKill} addresses and uplink default routes left the kernel`);
  });
  for (const e of bench.errors) console.log(`ERROR ${e}`);
  console.log(`daemon logs: ${bench.outDir}`);
  console.log('');
  const json = {
    bench: 'faults',
    machine: { cpus: cpu.length, model: cpu[0]?.model, kernel: release(), node: process.version, connman: version },
    params: { flips: FLIPS, stormMs: STORM_MS, probeMs: PROBE_MS, rounds: ROUNDS, sessions: SESSIONS, seed: SEED },
    figures: Object.fromEntries(rows.map((r) => [r.label, { netsession: r.ours ?? null, connman: r.theirs ?? null }])),
    storms: Object.fromEntries(storms),
    restart,
    errors: bench.errors,
  };
  console.log(JSON.stringify(json));
  if (bench.errors.length > 0) process.exitCode = 1;
}

await main();
