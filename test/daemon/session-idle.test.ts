// IdleTimeout and StayConnected for real: an uplink that is up only because a session asked
// (AutoConnect off) stays up while the session's marked traffic flows (the per-session nft
// counters say so), goes offline after IdleTimeout without traffic, and comes back on
// Connect(); an unmodified program of a uid policy's user counts as its session's traffic;
// StayConnected holds it; PeriodicConnect brings it up on the minute. A lab with
// three uplinks and netsessiond.
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import dbus from 'dbus-next';
import { ConnmanClient } from '../../src/client/index.ts';
import { labDown, labLink, labUp } from '../../src/lab/lab.ts';
import type { LabInfo } from '../../src/lab/topology.ts';
import { TestBus, waitFor } from '../helpers/connman.ts';
import { whoamiMarked } from '../helpers/marked-http.ts';
import { isRoot } from '../helpers/netns.ts';
import { curlAs, NOBODY, sessionClientAs } from '../helpers/other-user.ts';
import { App } from '../helpers/session-app.ts';

const skip = !isRoot() && 'needs root (network namespaces, other uids)';
const NAME = `si${process.pid % 1000}`;
const V = dbus.Variant;
const SESSION = 'net.connman.Session';

describe('session idle timeout', { skip }, () => {
  let lab: LabInfo;
  let app: App;
  let client: ConnmanClient;
  // what /periodic went through, recorded as it happens: the attempt may fall while the other
  // tests run, and be over (the uplink idle again) before the last test looks
  const periodic: { state: unknown; at: number; eth2?: unknown }[] = [];
  const serviceState = async (ifname = 'eth1'): Promise<unknown> => {
    const tb = new TestBus(lab.bus.address);
    try {
      return (await tb.byIfname(ifname)).props.State;
    } finally {
      tb.close();
    }
  };

  before(async () => {
    lab = await labUp({ name: NAME, uplinks: 3, daemon: { logLevel: 'debug' } });
    const tb = new TestBus(lab.bus.address);
    await waitFor('three services online', async () => (await tb.services()).filter((s) => s.props.State === 'online').length === 3, 15_000);
    const ids = [(await tb.byIfname('eth1')).id, (await tb.byIfname('eth2')).id];
    tb.close();
    client = await ConnmanClient.connect(lab.bus.address);
    // eth1 and eth2 come up only when a session asks (AutoConnect off keeps a connected
    // service up, as in ConnMan: unplug them once)
    for (const id of ids) await client.service(id).setAutoConnect(false);
    for (const isp of ['isp1', 'isp2']) await labLink(NAME, isp, 'down');
    await waitFor('eth1 and eth2 down', async () => (await serviceState('eth1')) === 'idle' && (await serviceState('eth2')) === 'idle', 5000);
    for (const isp of ['isp1', 'isp2']) await labLink(NAME, isp, 'up');
    await sleep(1000);
    assert.equal(await serviceState(), 'idle', 'nothing brings it up by itself');
    app = new App(lab.bus.address);
    // a session that never calls Connect(): only its periodic attempts bring eth2 up (checked last)
    await app.create('/periodic', { AllowedInterface: new V('s', 'eth2'), PeriodicConnect: new V('u', 1), IdleTimeout: new V('u', 2) });
    app.onUpdate = (notifier, u) => {
      if (notifier !== '/periodic' || u.State === undefined) return;
      const seen: { state: unknown; at: number; eth2?: unknown } = { state: u.State, at: Date.now() };
      periodic.push(seen);
      // the service itself, asked at once (it stays up for the 2 s IdleTimeout)
      if (u.State === 'online') void serviceState('eth2').then((s) => { seen.eth2 = s; }, (e: unknown) => { seen.eth2 = String(e); });
    };
  });
  after(async () => {
    app?.close();
    client?.close();
    await labDown(NAME);
  });

  test('traffic keeps the uplink; IdleTimeout without traffic takes it down; Connect() brings it back', async () => {
    const path = await app.create('/idle', { AllowedInterface: new V('s', 'eth1'), IdleTimeout: new V('u', 2) });
    await app.call(path, SESSION, 'Connect');
    await waitFor('session online on eth1', async () => app.view('/idle').State === 'online', 15_000);
    const marker = app.view('/idle').SessionMarker as number;
    // 4 s of traffic, a request every 400 ms: longer than the timeout, never idle
    const seen = app.updates.get('/idle')?.length ?? 0;
    const until = Date.now() + 4000;
    let lastTraffic = 0;
    while (Date.now() < until) {
      assert.equal((await whoamiMarked(lab.device.netns, lab.internet.ipv4, marker)).isp, 'isp1');
      lastTraffic = Date.now();
      await sleep(400);
    }
    const during = (app.updates.get('/idle') ?? []).slice(seen);
    assert.ok(!during.some((u) => u.State !== undefined && u.State !== 'online'), `no state change while traffic flows: ${JSON.stringify(during)}`);
    assert.equal(await serviceState(), 'online');
    // quiet now: the uplink goes after the timeout, not before
    await waitFor('session disconnected after idling', async () => app.view('/idle').State === 'disconnected', 8000, 20);
    const idleAfter = Date.now() - lastTraffic;
    assert.ok(idleAfter >= 1900, `idle after ${idleAfter} ms, the timeout is 2 s`);
    await waitFor('eth1 offline', async () => (await serviceState()) === 'idle', 3000);
    await assert.rejects(whoamiMarked(lab.device.netns, lab.internet.ipv4, marker), /ENETUNREACH|EHOSTUNREACH/, 'fail closed while idle');
    // Connect() wakes it
    await app.call(path, SESSION, 'Connect');
    await waitFor('online again', async () => app.view('/idle').State === 'online', 15_000);
    assert.equal((await whoamiMarked(lab.device.netns, lab.internet.ipv4, marker)).isp, 'isp1');
    // StayConnected holds the uplink without traffic
    await app.call(path, SESSION, 'Change', 'sv', ['StayConnected', new V('b', true)]);
    await sleep(4000);
    assert.equal(app.view('/idle').State, 'online');
    assert.equal(await serviceState(), 'online');
    // and without it the timeout applies again at once
    await app.call(path, SESSION, 'Change', 'sv', ['StayConnected', new V('b', false)]);
    await waitFor('idle again', async () => app.view('/idle').State === 'disconnected', 5000);
    await app.call(path, SESSION, 'Destroy');
  });

  test('a session without IdleTimeout holds the uplink another session would let go', async () => {
    const quick = await app.create('/quick', { AllowedInterface: new V('s', 'eth1'), IdleTimeout: new V('u', 1) });
    const plain = await app.create('/plain', { AllowedInterface: new V('s', 'eth1') });
    for (const p of [quick, plain]) await app.call(p, SESSION, 'Connect');
    await waitFor('both online', async () => app.view('/quick').State === 'online' && app.view('/plain').State === 'online', 15_000);
    await sleep(3000);
    assert.equal(app.view('/quick').State, 'online');
    // the holder leaves: now only the quick one asks, and it has been quiet for long enough
    await app.call(plain, SESSION, 'Destroy');
    await waitFor('quick idles', async () => app.view('/quick').State === 'disconnected', 5000);
    await waitFor('eth1 offline', async () => (await serviceState()) === 'idle', 3000);
    await app.call(quick, SESSION, 'Destroy');
  });

  test('an unmodified program of a uid policy\'s user is its session\'s traffic: it keeps the uplink up', { timeout: 60_000 }, async (t) => {
    // nobody's traffic is routed by a uidrange rule, unmarked: counted for nobody's session all the same
    const policyFile = `${lab.daemon!.policyDir}/nobody.policy`;
    writeFileSync(policyFile, '[policy_nobody]\nuid = nobody\nAllowedBearers = ethernet\n', { mode: 0o644 });
    const nobody = sessionClientAs(NOBODY, lab.bus.address, { AllowedInterface: ['s', 'eth1'], IdleTimeout: ['u', 2] });
    t.after(() => {
      nobody.kill();
      rmSync(policyFile, { force: true });
    });
    const lines: Record<string, unknown>[] = [];
    createInterface({ input: nobody.stdout }).on('line', (l) => lines.push(JSON.parse(l) as Record<string, unknown>));
    await waitFor('nobody\'s session', async () => lines.some((l) => l.created !== undefined), 15_000);
    nobody.stdin.write('connect\n');
    await waitFor('online on eth1', async () => lines.some((l) => l.State === 'online'), 15_000);
    const seen = lines.length;
    const until = Date.now() + 4000;
    let lastTraffic = 0;
    while (Date.now() < until) {
      assert.equal(curlAs(NOBODY, lab.device.netns, `http://${lab.internet.ipv4}/whoami`).isp, 'isp1');
      lastTraffic = Date.now();
      await sleep(400);
    }
    const during = lines.slice(seen);
    assert.ok(!during.some((u) => u.State !== undefined && u.State !== 'online'), `no state change while nobody's curl runs: ${JSON.stringify(during)}`);
    assert.equal(await serviceState(), 'online');
    await waitFor('idle without traffic', async () => lines.slice(seen).some((l) => l.State === 'disconnected'), 8000, 20);
    const idleAfter = Date.now() - lastTraffic;
    assert.ok(idleAfter >= 1900, `idle after ${idleAfter} ms, the timeout is 2 s`);
    await waitFor('eth1 offline', async () => (await serviceState()) === 'idle', 3000);
    nobody.stdin.write('quit\n');
  });

  test('PeriodicConnect: an attempt on the minute brings the uplink up for a session that never called Connect()', { timeout: 90_000 }, async () => {
    const online = () => periodic.find((e) => e.state === 'online');
    const after = () => {
      const on = online();
      return on && periodic.find((e) => e.at >= on.at && e.state === 'disconnected');
    };
    await waitFor('a periodic attempt and its end', async () => after() !== undefined, 80_000, 50);
    const on = online();
    const off = after();
    assert.ok(on && off);
    // attempts fall on clock multiples of the period: DHCP and the online check take a moment
    const intoMinute = on.at % 60_000;
    assert.ok(intoMinute < 10_000, `online ${intoMinute} ms after the minute`);
    await waitFor('eth2 state seen at the attempt', async () => on.eth2 !== undefined, 2000);
    assert.equal(on.eth2, 'online');
    // nobody uses it: after IdleTimeout (2 s) it goes again, until the next attempt
    assert.ok(off.at - on.at >= 1900, `idle ${off.at - on.at} ms after coming up, the timeout is 2 s`);
    await waitFor('eth2 offline', async () => (await serviceState('eth2')) === 'idle', 3000);
  });
});
