// Hostile and slow clients against netsessiond in a lab: a notifier that never answers
// Update and a client that stopped reading (SIGSTOP) must hold up nobody; clients that vanish
// in the middle of their calls (closing their connection, or killed) must leave nothing
// behind; 1,000 connections holding 10 sessions each come and go without the kernel or the
// daemon's memory keeping anything of them; clients running as other users cannot touch
// sessions they do not own. After every case: no session, rule, route, table or nft object
// left of it, no process, no namespace; the daemon alive and its log free of errors.
// The daemon runs with --heapsnapshot-signal=SIGUSR2: a snapshot collects all garbage first,
// so its heap and RSS before and after the churn compare what it really keeps.
// FAULTS_ROUNDS=N repeats the 1,000-connection round; FAULTS_KEEP_LOG=FILE keeps the daemon's log.
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import dbus, { type MessageBus } from 'dbus-next';
import { labDown, labLink, labUp } from '../../src/lab/lab.ts';
import { startLabDaemon } from '../../src/lab/lab-daemon.ts';
import { type LabInfo, resolveTopology } from '../../src/lab/topology.ts';
import { waitFor } from '../helpers/connman.ts';
import { heapAfterGc } from '../helpers/lab-faults.ts';
import {
  type KernelSnapshot,
  childPids,
  closeBus,
  diffSnapshots,
  fdCount,
  fileSize,
  isAlive,
  kernelSnapshot,
  logProblems,
  namespacesOf,
  netnsPids,
  openBus,
  rssKiB,
  servicesSettled,
  sessionObjects,
  sessionPathOf,
  sessionRules,
  stableSnapshot,
  uniqueName,
} from '../helpers/faults.ts';
import { isRoot } from '../helpers/netns.ts';
import { App } from '../helpers/session-app.ts';

const skip = !isRoot() && 'needs root (network namespaces, other uids)';
const NAME = `hc${process.pid % 1000}`;
const FIXTURE = fileURLToPath(new URL('../fixtures/bus-client.ts', import.meta.url));
const V = dbus.Variant;
const MANAGER = 'net.connman.Manager';
const SESSION = 'net.connman.Session';
const PERMISSION_DENIED = 'net.connman.Error.PermissionDenied';
/** users other than root that exist on every Debian system (the bus wants a passwd entry) */
const NOBODY: [number, number] = [65534, 65534];
const DAEMON_USER: [number, number] = [1, 1];
/** a healthy client hears of a change within this, whatever the others do (generous: 2 shared cores) */
const PROMPT_MS = 3000;

/** A variant for the fixture's JSON protocol. */
const jv = (sig: string, value: unknown) => ({ $v: [sig, value] });

interface Answer {
  id?: number;
  ok?: boolean;
  error?: string;
  body?: unknown[];
  sessions?: number;
  updates?: number;
}

/** test/fixtures/bus-client.ts as a child process, as root or as another user. */
class BusClient {
  readonly proc: ChildProcessWithoutNullStreams;
  readonly ready: Promise<{ name: string; uid: number }>;
  private nextId = 1;
  private readonly waiting = new Map<number, (a: Answer) => void>();
  stderr = '';

  constructor(address: string, opts: { user?: [number, number]; silent?: boolean } = {}) {
    const argv = [process.execPath, '--import', import.meta.resolve('tsx'), FIXTURE, address];
    const env = { ...process.env, HOME: '/tmp', SILENT: opts.silent ? '1' : '0' };
    this.proc = opts.user ? spawn('setpriv', [`--reuid=${opts.user[0]}`, `--regid=${opts.user[1]}`, '--clear-groups', ...argv], { env }) : spawn(argv[0]!, argv.slice(1), { env });
    this.proc.stderr.setEncoding('utf8').on('data', (d: string) => {
      this.stderr += d;
    });
    this.ready = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`bus client did not start: ${this.stderr}`)), 20_000);
      createInterface({ input: this.proc.stdout }).on('line', (l) => {
        const a = JSON.parse(l) as Answer & { ready?: boolean; name?: string; uid?: number };
        if (a.ready) {
          clearTimeout(timer);
          resolve({ name: a.name!, uid: a.uid! });
        } else if (a.id !== undefined) {
          this.waiting.get(a.id)?.(a);
          this.waiting.delete(a.id);
        }
      });
    });
  }

  request(cmd: Record<string, unknown>): Promise<Answer> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.proc.stdin.write(`${JSON.stringify({ ...cmd, id })}\n`);
    });
  }

  call(path: string, iface: string, member: string, signature = '', body: unknown[] = []): Promise<Answer> {
    return this.request({ op: 'call', path, iface, member, signature, body });
  }

  /** Ends it: stdin closed (it leaves the bus), SIGKILL if it has not gone within 5 s. */
  async close(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const gone = new Promise((resolve) => this.proc.once('exit', resolve));
    this.proc.stdin.end();
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(timer);
  }

  async kill(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const gone = new Promise((resolve) => this.proc.once('exit', resolve));
    this.proc.kill('SIGKILL');
    await gone;
  }
}

async function call(bus: MessageBus, path: string, iface: string, member: string, signature = '', body: unknown[] = []): Promise<unknown[]> {
  const r = await bus.call(new dbus.Message({ destination: 'net.connman', path, interface: iface, member, signature, body }));
  return r?.body ?? [];
}

const MiB = 1024;

describe('hostile and slow clients', { skip }, () => {
  let lab: LabInfo;
  let pid: number;
  let ns: string;
  let probe: MessageBus;
  let empty: KernelSnapshot;
  let logOffset: number;
  let rssStart: number;
  let fdsStart: number;
  let childrenStart: number[];
  let netnsPidsStart: number[];
  let namespacesStart: string[];

  before(async () => {
    lab = await labUp({ name: NAME, uplinks: 3 });
    // SIGUSR2: a heap snapshot, which collects all garbage first (how much the daemon really holds)
    const env: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: '--heapsnapshot-signal=SIGUSR2' };
    delete env.NODE_TEST_CONTEXT;
    lab.daemon = await startLabDaemon(resolveTopology({ name: NAME, uplinks: 3 }), { logLevel: 'info' }, env);
    pid = lab.daemon.pid;
    ns = lab.device.netns;
    probe = await openBus(lab.bus.address);
    await servicesSettled(probe);
    empty = await stableSnapshot(ns);
    logOffset = fileSize(lab.daemon!.log);
    rssStart = rssKiB(pid);
    fdsStart = fdCount(pid);
    childrenStart = childPids(pid);
    netnsPidsStart = netnsPids(ns);
    namespacesStart = namespacesOf(`nsl-${NAME}-`);
  });
  after(async () => {
    if (probe) closeBus(probe);
    if (process.env.FAULTS_KEEP_LOG) copyFileSync(lab.daemon!.log, process.env.FAULTS_KEEP_LOG);
    await labDown(NAME);
  });

  /** Nothing of the case is left: no session object, kernel state as before any session, no process, no namespace; the daemon alive and answering. */
  async function assertClean(what: string): Promise<void> {
    assert.ok(isAlive(pid), `${what}: the daemon is alive`);
    await waitFor(`${what}: no session left`, async () => (await sessionObjects(probe)).length === 0, 20_000, 200).catch(async (e) => {
      throw new Error(`${(e as Error).message}: ${JSON.stringify((await sessionObjects(probe)).slice(0, 10))}`);
    });
    await waitFor(`${what}: the kernel as before`, async () => diffSnapshots(empty, kernelSnapshot(ns)) === '', 20_000, 200).catch((e) => {
      throw new Error(`${(e as Error).message}: ${diffSnapshots(empty, kernelSnapshot(ns))}`);
    });
    assert.deepEqual(childPids(pid), childrenStart, `${what}: the daemon's child processes`);
    assert.deepEqual(netnsPids(ns), netnsPidsStart, `${what}: the processes in the device namespace`);
    assert.deepEqual(namespacesOf(`nsl-${NAME}-`), namespacesStart, `${what}: the lab's namespaces`);
    const t0 = performance.now();
    await call(probe, '/', MANAGER, 'GetProperties');
    assert.ok(performance.now() - t0 < PROMPT_MS, `${what}: GetProperties answered in ${Math.round(performance.now() - t0)} ms`);
    assert.deepEqual(logProblems(lab.daemon!.log, logOffset).slice(0, 10), [], `${what}: the daemon logged errors`);
  }

  test('a notifier that never answers Update and a client that stopped reading hold up nobody', { timeout: 90_000 }, async (t) => {
    // 300 sessions on eth1 whose notifier swallows every Update, 300 of a client that will stop (SIGSTOP): all hear of every eth1 change
    const silent = new BusClient(lab.bus.address, { silent: true });
    const frozen = new BusClient(lab.bus.address);
    t.after(async () => {
      frozen.proc.kill('SIGCONT');
      await Promise.all([silent.kill(), frozen.kill()]);
    });
    await Promise.all([silent.ready, frozen.ready]);
    const pinned = { AllowedInterface: jv('s', 'eth1'), AvoidHandover: jv('b', false) };
    const made = await Promise.all([silent, frozen].flatMap((c) => Array.from({ length: 300 }, (_, k) => c.call('/', MANAGER, 'CreateSession', 'a{sv}o', [pinned, `/s${k}`]))));
    assert.deepEqual(made.filter((a) => !a.ok), [], 'sessions created');
    await waitFor('the first Updates reached the stopping client', async () => ((await frozen.request({ op: 'updates' })).updates ?? 0) >= 300, 10_000);
    frozen.proc.kill('SIGSTOP');

    const app = new App(lab.bus.address);
    t.after(() => app.close());
    const arrived = new Map<string, number>();
    app.onUpdate = (notifier, u) => {
      if (u.State !== undefined || u.ConnectionType !== undefined) arrived.set(`${notifier} ${String(u.State ?? u.ConnectionType)}`, performance.now());
    };
    await app.create('/watch', { AllowedInterface: new V('s', 'eth1') });
    await app.create('/probe', {});
    await waitFor('/watch online', async () => app.view('/watch').State === 'online', 10_000);

    // the uplink under 600 unanswered sessions flaps: the healthy one hears of it at once, both ways
    const down: number[] = [];
    for (let k = 0; k < 2; k++) {
      arrived.clear();
      const t0 = performance.now();
      await labLink(NAME, 'isp1', 'down');
      await waitFor('/watch disconnected', async () => arrived.get('/watch disconnected'), PROMPT_MS + 2000, 5);
      down.push(arrived.get('/watch disconnected')! - t0);
      await labLink(NAME, 'isp1', 'up');
      await waitFor('/watch online again', async () => app.view('/watch').State === 'online', 30_000, 20);
    }
    // and Change round trips of another session stay prompt
    const changes: number[] = [];
    for (let k = 0; k < 20; k++) {
      const type = k % 2 === 0 ? 'internet' : 'any';
      arrived.delete(`/probe ${type}`);
      const t0 = performance.now();
      await app.call(sessionPathOf(uniqueName(app.bus), '/probe'), SESSION, 'Change', 'sv', ['ConnectionType', new V('s', type)]);
      await waitFor('Update after Change', async () => arrived.get(`/probe ${type}`), PROMPT_MS + 2000, 2);
      changes.push(arrived.get(`/probe ${type}`)! - t0);
    }
    console.log(`# link down → Update of a healthy session: ${down.map((x) => Math.round(x)).join(', ')} ms; Change → Update: median ${Math.round([...changes].sort((a, b) => a - b)[10]!)} ms, max ${Math.round(Math.max(...changes))} ms (600 sessions not answering)`);
    for (const ms of [...down, ...changes]) assert.ok(ms < PROMPT_MS, `an Update took ${Math.round(ms)} ms`);

    app.close();
    frozen.proc.kill('SIGCONT');
    await Promise.all([silent.close(), frozen.kill()]);
    await assertClean('silent and stopped clients');
  });

  test('an agent ends with its client\'s connection: another client may register one then', async () => {
    const first = await openBus(lab.bus.address);
    await call(first, '/', MANAGER, 'RegisterAgent', 'o', ['/agent/first']);
    const second = await openBus(lab.bus.address);
    try {
      await assert.rejects(call(second, '/', MANAGER, 'RegisterAgent', 'o', ['/agent/second']), (e: { type?: string }) => e.type === 'net.connman.Error.AlreadyExists');
      closeBus(first);
      await waitFor('the agent released', async () => call(second, '/', MANAGER, 'RegisterAgent', 'o', ['/agent/second']).then(() => true, () => false), 5000, 20);
      await call(second, '/', MANAGER, 'UnregisterAgent', 'o', ['/agent/second']);
    } finally {
      closeBus(second);
    }
  });

  test('clients that vanish in the middle of their calls leave nothing behind', { timeout: 90_000 }, async () => {
    const addr = lab.bus.address;
    const settings = { AllowedInterface: new V('s', 'eth2'), AvoidHandover: new V('b', false) };
    const fire = (bus: MessageBus, path: string, iface: string, member: string, signature = '', body: unknown[] = []): void => {
      // never answered: the connection is gone before the reply comes
      bus.call(new dbus.Message({ destination: 'net.connman', path, interface: iface, member, signature, body })).catch(() => undefined);
    };
    for (let round = 0; round < 4; round++) {
      const conns: MessageBus[] = [];
      for (let k = 0; k < 100; k += 25) conns.push(...(await Promise.all(Array.from({ length: 25 }, () => openBus(addr)))));
      // half are known to the daemon already (a session each: their identity is cached), half call it for the first time
      await Promise.all(conns.slice(0, 50).map((b) => call(b, '/', MANAGER, 'CreateSession', 'a{sv}o', [settings, '/warm'])));
      for (const b of conns) {
        for (let j = 0; j < 5; j++) fire(b, '/', MANAGER, 'CreateSession', 'a{sv}o', [settings, `/v${j}`]);
        const mine = sessionPathOf(uniqueName(b), '/v0');
        fire(b, mine, SESSION, 'Connect');
        fire(b, mine, SESSION, 'Change', 'sv', ['AllowedInterface', new V('s', 'eth1')]);
        fire(b, '/', MANAGER, 'DestroySession', 'o', [sessionPathOf(uniqueName(b), '/warm')]);
        closeBus(b);
      }
    }
    // a process killed with its calls under way
    for (let k = 0; k < 3; k++) {
      const c = new BusClient(addr);
      await c.ready;
      for (let j = 0; j < 50; j++) void c.call('/', MANAGER, 'CreateSession', 'a{sv}o', [{ AllowedInterface: jv('s', 'eth0'), IdleTimeout: jv('u', 30) }, `/k${j}`]);
      await new Promise((r) => setTimeout(r, 5 * k));
      await c.kill();
    }
    await assertClean('vanished clients');
  });

  test('clients running as other users cannot act on sessions they do not own', { timeout: 60_000 }, async (t) => {
    const addr = lab.bus.address;
    const owner = new App(addr);
    const nobody = new BusClient(addr, { user: NOBODY });
    const attacker = new BusClient(addr, { user: DAEMON_USER });
    const otherRoot = new BusClient(addr);
    t.after(async () => {
      owner.close();
      await Promise.all([nobody.kill(), attacker.kill(), otherRoot.kill()]);
    });
    const [nb, at] = await Promise.all([nobody.ready, attacker.ready, otherRoot.ready]);
    assert.equal(nb.uid, NOBODY[0]);
    assert.equal(at.uid, DAEMON_USER[0]);
    const mine = await owner.create('/mine', { AllowedInterface: new V('s', 'eth1'), AvoidHandover: new V('b', false) });
    const r = await nobody.call('/', MANAGER, 'CreateSession', 'a{sv}o', [{ AllowedInterface: jv('s', 'eth2'), SourceIPRule: jv('b', true) }, '/theirs']);
    assert.ok(r.ok, `nobody's session: ${r.error}`);
    const theirs = String(r.body?.[0]);
    await waitFor('both online', async () => owner.view('/mine').State === 'online' && ((await nobody.request({ op: 'updates' })).updates ?? 0) > 0, 10_000);
    const before = await stableSnapshot(ns);
    const ownerUpdates = owner.updates.get('/mine')?.length ?? 0;
    const nobodyUpdates = (await nobody.request({ op: 'updates' })).updates;

    const attempts: [BusClient, string, string][] = [
      [attacker, 'daemon (uid 1)', mine],
      [attacker, 'daemon (uid 1)', theirs],
      [otherRoot, 'another root connection', theirs],
      [otherRoot, 'another root connection', mine],
      [nobody, 'nobody', mine],
    ];
    for (const [c, who, path] of attempts) {
      const answers = await Promise.all([
        c.call(path, SESSION, 'Destroy'),
        c.call(path, SESSION, 'Connect'),
        c.call(path, SESSION, 'Disconnect'),
        c.call(path, SESSION, 'Change', 'sv', ['AllowedInterface', jv('s', 'eth0')]),
        c.call(path, SESSION, 'Change', 'sv', ['NoSuchKey', jv('s', 'x')]),
        c.call('/', MANAGER, 'DestroySession', 'o', [path]),
      ]);
      assert.deepEqual(answers.map((a) => a.error), Array(6).fill(PERMISSION_DENIED), `${who} on ${path}`);
    }
    // the same notifier path is no way in: another client gets a session of its own
    const own = await attacker.call('/', MANAGER, 'CreateSession', 'a{sv}o', [{}, '/mine']);
    assert.ok(own.ok && own.body?.[0] !== mine, `attacker's own session: ${JSON.stringify(own)}`);
    assert.ok((await attacker.call('/', MANAGER, 'DestroySession', 'o', [own.body?.[0]])).ok);

    // nothing changed: both sessions there, nobody told anything new, the kernel as it was
    const alive = await sessionObjects(probe);
    assert.ok(alive.includes(mine) && alive.includes(theirs), JSON.stringify(alive));
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(owner.updates.get('/mine')?.length ?? 0, ownerUpdates, 'the owner was told of no change');
    assert.equal((await nobody.request({ op: 'updates' })).updates, nobodyUpdates, 'nobody was told of no change');
    assert.equal(diffSnapshots(before, kernelSnapshot(ns)), '');
    assert.equal(owner.view('/mine').State, 'online');

    owner.close();
    await Promise.all([nobody.close(), attacker.close(), otherRoot.close()]);
    await assertClean('other users');
  });

  test('1,000 connections holding 10 sessions each come and go: the kernel is back, the memory near where it was', { timeout: 150_000 }, async (t) => {
    const addr = lab.bus.address;
    const gcBefore = await heapAfterGc(lab.dir, pid);
    const rounds: { up: number; down: number; peak: number; after: number; slowest: number }[] = [];
    for (let round = 0; round < Number(process.env.FAULTS_ROUNDS ?? 1); round++) {
      // four processes with 250 connections each (a test process may have only 1,024 descriptors)
      const kids = Array.from({ length: 4 }, () => new BusClient(addr));
      t.after(() => Promise.all(kids.map((k) => k.kill())));
      await Promise.all(kids.map((k) => k.ready));
      const t0 = performance.now();
      // how long the daemon keeps others waiting meanwhile
      let busy = true;
      let slowest = 0;
      const watching = (async () => {
        while (busy) {
          const s = performance.now();
          await call(probe, '/', MANAGER, 'GetProperties');
          slowest = Math.max(slowest, performance.now() - s);
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      const held = await Promise.all(kids.map((k, i) => k.request({ op: 'hold', connections: 250, sessions: 10, settings: { AllowedInterface: jv('s', `eth${i % 3}`), AvoidHandover: jv('b', false) } })));
      busy = false;
      await watching;
      assert.deepEqual(held.map((h) => h.sessions ?? h.error), [2500, 2500, 2500, 2500]);
      await waitFor('every session told', async () => (await Promise.all(kids.map((k) => k.request({ op: 'updates' })))).every((a) => (a.updates ?? 0) >= 2500), 60_000, 250);
      await waitFor('the kernel routes them', async () => sessionRules(kernelSnapshot(ns)).length >= 10_000, 30_000, 250);
      const up = performance.now() - t0;
      const peak = rssKiB(pid);
      // they all leave: two processes close their connections, two are killed
      const t1 = performance.now();
      await Promise.all(kids.slice(0, 2).map((k) => k.request({ op: 'release' })));
      await Promise.all(kids.slice(2).map((k) => k.kill()));
      await assertClean(`1,000 connections, round ${round + 1}`);
      const down = performance.now() - t1;
      await Promise.all(kids.map((k) => k.close()));
      rounds.push({ up, down, peak, after: rssKiB(pid), slowest });
    }
    const gcAfter = await heapAfterGc(lab.dir, pid);
    const f = (kib: number): string => `${(kib / MiB).toFixed(1)} MiB`;
    console.log(
      [
        `# daemon RSS at start ${f(rssStart)}; before the churn, after a full GC: RSS ${f(gcBefore.rss)}, heap ${f(gcBefore.heap)}`,
        ...rounds.map((r, k) => `# round ${k + 1}: 10,000 sessions up in ${(r.up / 1000).toFixed(1)} s (GetProperties meanwhile up to ${Math.round(r.slowest)} ms), RSS ${f(r.peak)}; all gone in ${(r.down / 1000).toFixed(1)} s, RSS ${f(r.after)} (no GC yet)`),
        `# after the churn and a full GC: RSS ${f(gcAfter.rss)}, heap ${f(gcAfter.heap)}; fds ${fdsStart} → ${fdCount(pid)}`,
      ].join('\n'),
    );
    // V8 gives memory back only when it collects: compared after a full GC (a heap snapshot's), nothing may stay of 10,000 sessions
    assert.ok(gcAfter.heap <= gcBefore.heap + 16 * MiB, `heap after a full GC: ${f(gcBefore.heap)} before, ${f(gcAfter.heap)} after the churn`);
    assert.ok(gcAfter.rss <= gcBefore.rss + 128 * MiB, `RSS after a full GC: ${f(gcBefore.rss)} before, ${f(gcAfter.rss)} after the churn`);
    assert.ok(fdCount(pid) <= fdsStart + 8, `descriptors: ${fdsStart} at start, ${fdCount(pid)} now`);
  });
});
