// The connection manager's semantics, without a kernel or a bus.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type EngineEvent, command, createState, dueChecks, managerState, nextDeadline, reduce, retryDelay } from '../../src/engine/engine.ts';
import { defaultService, orderServices } from '../../src/engine/order.ts';
import { DEFAULT_LAYOUT, desiredNetwork, networkOf } from '../../src/engine/routing.ts';
import type { EngineState } from '../../src/engine/types.ts';
import { defaultConfig } from '../../src/daemon/config.ts';

const cfg = () => {
  const c = defaultConfig().engine;
  c.onlineCheck.ipv4Url = 'http://198.18.0.1/online/status.html';
  return c;
};
const link = (i: number, carrier = true): EngineEvent => ({ kind: 'link', link: { ifindex: 10 + i, ifname: `eth${i}`, mac: `02:00:00:00:00:0${i}`, mtu: 1500, carrier } });
const lease = (i: number, now: number): EngineEvent => ({
  kind: 'dhcp-lease',
  ifindex: 10 + i,
  lease: { address: `192.0.${i}.50`, prefixLen: 24, router: `192.0.${i}.1`, dns: [`192.0.${i}.1`], searchDomains: [], ntp: [], leaseSeconds: 3600, expiresAt: now + 3600_000 },
});
const id = (i: number): string => `ethernet_02000000000${i}_cable`;

function run(st: EngineState, evs: EngineEvent[], now = 1000): EngineState {
  return evs.reduce((s, e) => reduce(s, e, now), st);
}

test('a plugged cable becomes a service that configures, then is ready with a lease, then online', () => {
  let st = run(createState(cfg()), [link(0)]);
  const s0 = st.services.get(id(0))!;
  assert.equal(s0.state, 'configuration');
  assert.equal(s0.name, 'Wired');
  assert.equal(st.technologies.get('ethernet')?.powered, true);
  st = run(st, [lease(0, 1000)]);
  assert.equal(st.services.get(id(0))!.state, 'ready');
  assert.deepEqual(dueChecks(st, 1000), [{ id: id(0), family: 'ipv4' }], 'an online check is due at once');
  st = reduce(st, { kind: 'online-started', id: id(0), family: 'ipv4' }, 1000);
  assert.deepEqual(dueChecks(st, 1000), []);
  st = reduce(st, { kind: 'online-result', id: id(0), family: 'ipv4', status: 'online' }, 1100);
  assert.equal(st.services.get(id(0))!.state, 'online');
  assert.equal(managerState(st), 'online');
  assert.equal(nextDeadline(st, 1100), 1100 + 300_000, 'online services are checked again later');
});

test('a captive portal keeps the service ready, with the login URL; failures back off as ConnMan does', () => {
  let st = run(createState(cfg()), [link(0), lease(0, 0), { kind: 'online-started', id: id(0), family: 'ipv4' }], 0);
  st = reduce(st, { kind: 'online-result', id: id(0), family: 'ipv4', status: 'portal', portalUrl: 'http://198.18.0.1/login' }, 10);
  const s = st.services.get(id(0))!;
  assert.equal(s.state, 'ready');
  assert.equal(s.online.ipv4.portalUrl, 'http://198.18.0.1/login');
  const c = cfg();
  assert.deepEqual([1, 2, 3, 12, 13, 50].map((f) => retryDelay(c, f)), [1, 4, 9, 144, 144, 144]);
});

test('several services are ready and online at once, each checked on its own', () => {
  let st = run(createState(cfg()), [link(0), link(1), link(2), lease(0, 0), lease(1, 0), lease(2, 0)], 0);
  assert.deepEqual(
    dueChecks(st, 0).map((c) => c.id).sort(),
    [id(0), id(1), id(2)],
  );
  for (const i of [0, 1]) {
    st = reduce(st, { kind: 'online-started', id: id(i), family: 'ipv4' }, 0);
    st = reduce(st, { kind: 'online-result', id: id(i), family: 'ipv4', status: 'online' }, 1);
  }
  assert.deepEqual(
    [...st.services.values()].map((s) => s.state).sort(),
    ['online', 'online', 'ready'],
  );
});

test('carrier loss: the service leaves ready at once and forgets its lease; the default moves', () => {
  let st = run(createState(cfg()), [link(0), link(1), lease(0, 0), lease(1, 0)], 0);
  const def0 = defaultService(st.services.values(), [])!;
  st = reduce(st, link(Number(def0.ifname.slice(3)), false), 5);
  const s = st.services.get(def0.id)!;
  assert.equal(s.state, 'idle');
  assert.equal(s.lease, undefined);
  const def1 = defaultService(st.services.values(), [])!;
  assert.notEqual(def1.id, def0.id);
  const net = desiredNetwork(st, DEFAULT_LAYOUT, 5, () => ({ nameservers: [], search: [] }));
  const mainDefaults = net.routes.filter((r) => r.table === 254);
  assert.equal(mainDefaults.length, 1);
  assert.equal(mainDefaults[0]!.oif, def1.ifindex);
});

test('no lease within the timeout: failure with dhcp-failed; a later lease recovers', () => {
  let st = run(createState(cfg()), [link(0)], 0);
  st = reduce(st, { kind: 'tick' }, 31_000);
  const s = st.services.get(id(0))!;
  assert.equal(s.state, 'failure');
  assert.equal(s.error, 'dhcp-failed');
  st = reduce(st, lease(0, 31_000), 32_000);
  assert.equal(st.services.get(id(0))!.state, 'ready');
  assert.equal(st.services.get(id(0))!.error, undefined);
});

test('desired network: one table per service with connected and default routes, source rules, main default of the default service', () => {
  const st = run(createState(cfg()), [link(0), link(1), lease(0, 0), lease(1, 0)], 0);
  const net = desiredNetwork(st, DEFAULT_LAYOUT, 0, (s) => ({ nameservers: s.lease?.dns ?? [], search: [] }));
  const tables = new Set(net.routes.filter((r) => r.table !== 254).map((r) => r.table));
  assert.equal(tables.size, 2, 'a table per service');
  for (const s of st.services.values()) {
    const mine = net.routes.filter((r) => r.table === s.settings.table);
    assert.deepEqual(mine.map((r) => `${r.dst}/${r.dstLen} ${r.gateway ?? 'link'}`).sort(), [`0.0.0.0/0 ${s.lease!.router}`, `${networkOf(s.lease!.address, 24)}/24 link`].sort());
    assert.ok(net.rules.some((r) => r.src === s.lease!.address && r.table === s.settings.table));
  }
  assert.equal(net.addresses.length, 2);
  assert.deepEqual(net.dns.nameservers.length, 1);
});

test('commands: errors change nothing; Disconnect holds a service down until Connect', () => {
  let st = run(createState(cfg()), [link(0), lease(0, 0), link(1, false)], 0);
  const bad = command(st, { kind: 'set-ipv4', id: id(0), config: { method: 'manual', address: '192.0.2.5', netmask: '255.0.255.0' } }, 1);
  assert.equal(bad.error?.name, 'InvalidArguments');
  assert.equal(bad.state, st);
  assert.equal(command(st, { kind: 'connect', id: id(1) }, 1).error?.name, 'NoCarrier');
  assert.equal(command(st, { kind: 'connect', id: 'nope' }, 1).error?.name, 'NotFound');
  assert.equal(command(st, { kind: 'connect', id: id(0) }, 1).error?.name, 'AlreadyConnected');
  assert.equal(command(st, { kind: 'remove', id: id(0) }, 1).error?.name, 'NotSupported');
  st = command(st, { kind: 'disconnect', id: id(0) }, 2).state;
  assert.equal(st.services.get(id(0))!.state, 'idle');
  assert.equal(command(st, { kind: 'disconnect', id: id(0) }, 2).error?.name, 'NotConnected');
  st = command(st, { kind: 'connect', id: id(0) }, 3).state;
  assert.equal(st.services.get(id(0))!.state, 'configuration');
  st = command(st, { kind: 'set-ipv4', id: id(0), config: { method: 'manual', address: '192.0.2.5', netmask: '255.255.255.0', gateway: '192.0.2.1' } }, 4).state;
  assert.equal(st.services.get(id(0))!.state, 'ready', 'a manual address is ready at once');
  const net = desiredNetwork(st, DEFAULT_LAYOUT, 4, () => ({ nameservers: [], search: [] }));
  assert.deepEqual(net.addresses.map((a) => a.address), ['192.0.2.5']);
  assert.equal(command(st, { kind: 'set-nameservers', id: id(0), servers: ['not-an-ip'] }, 5).error?.name, 'InvalidArguments');
});

test('order: online before ready, PreferredTechnologies, MoveBefore', () => {
  let st = run(createState(cfg()), [link(0), link(1), lease(0, 0), lease(1, 0)], 0);
  st = reduce(reduce(st, { kind: 'online-started', id: id(1), family: 'ipv4' }, 0), { kind: 'online-result', id: id(1), family: 'ipv4', status: 'online' }, 1);
  assert.equal(orderServices(st.services.values(), [])[0]!.id, id(1), 'online first');
  st = command(st, { kind: 'move', id: id(0), target: id(1), where: 'before' }, 2).state;
  assert.equal(orderServices(st.services.values(), [])[0]!.id, id(0), 'the user order wins');
  assert.equal(command(st, { kind: 'move', id: id(0), target: id(0), where: 'before' }, 2).error?.name, 'InvalidService');
  // AutoConnect off governs the future: the connected service stays up
  const ac = command(st, { kind: 'set-autoconnect', id: id(0), value: false }, 3).state;
  assert.equal(ac.services.get(id(0))!.state, st.services.get(id(0))!.state);
});

test('offline mode and Powered=false take every ethernet service down; back on, they come back', () => {
  let st = run(createState(cfg()), [link(0), lease(0, 0)], 0);
  st = command(st, { kind: 'set-offline', value: true }, 1).state;
  assert.equal(st.services.get(id(0))!.state, 'idle');
  assert.equal(managerState(st), 'offline');
  st = command(st, { kind: 'set-offline', value: false }, 2).state;
  assert.equal(st.services.get(id(0))!.state, 'configuration');
  const off = command(st, { kind: 'set-powered', type: 'ethernet', value: false }, 3);
  assert.equal(off.state.services.get(id(0))!.state, 'idle');
  assert.equal(command(off.state, { kind: 'set-powered', type: 'ethernet', value: false }, 3).error?.name, 'AlreadyDisabled');
});

test('allow and deny lists decide which interfaces are managed', () => {
  const c = cfg();
  c.interfaceBlacklist = ['eth1'];
  let st = run(createState(c), [link(0), link(1)]);
  assert.deepEqual([...st.services.keys()], [id(0)]);
  c.interfaceBlacklist = [];
  c.interfaceAllowlist = ['eth1'];
  st = run(createState(c), [link(0), link(1)]);
  assert.deepEqual([...st.services.keys()], [id(1)]);
});

test('session nft model: gid marking, SNAT for re-routed traffic, counters, emergency filter', async () => {
  const { sessionNft } = await import('../../src/engine/session-routing.ts');
  const { renderReplace } = await import('../../src/kernel/nft/render.ts');
  const session = { path: '/sessions/_1_1/a', owner: ':1.1', notifier: '/a', identity: { uid: 1000, gids: [1000] }, request: { allowedBearers: undefined, connectionType: 'any', allowedInterface: undefined, sourceIpRule: false, contextIdentifier: '', priority: false, avoidHandover: false, stayConnected: false, periodicConnect: 0, idleTimeout: 60, emergencyCall: false, roamingPolicy: 'default', extended: false }, policy: { file: 'x', name: 'g', match: { gid: 100 } }, marker: 0x40000001, active: true, serviceId: undefined, createdAt: 1 } as const;
  const st = { sessions: new Map([[session.path, session]]), policies: [], nextMarker: 0 };
  assert.equal(sessionNft({ ...st, sessions: new Map() }, { family: 'inet', name: 'netsession', uplinks: [], sources: [] }), undefined);
  const m = sessionNft(st as never, { family: 'inet', name: 'netsession', emergencyMarker: 0x40000001, uplinks: ['eth0', 'eth1'], sources: [{ ifname: 'eth0', ipv4: '192.0.2.10', ipv6: '2001:db8:1::10' }] })!;
  const text = renderReplace(m);
  assert.match(text, /meta skgid map @gid_marker/);
  assert.match(text, /add element inet netsession gid_marker \{ 100 : 1073741825 \}/);
  assert.match(text, /snat ip to oifname map @snat4/);
  assert.match(text, /add element inet netsession snat4 \{ "eth0" : "192\.0\.2\.10" \}/);
  assert.match(text, /oifname \{ "eth0", "eth1" \} meta skuid != \{ 0 \} meta mark != 1073741825 drop/);
  // counters: dynamic sets filled by the packet path, no element per session
  assert.match(text, /update @session_tx \{ meta mark counter \}/);
  assert.doesNotMatch(text, /add element inet netsession session_tx/);
  // an emergency session of a uid policy: its user's (unmarked) traffic gets out too
  const byUid = { ...session, policy: { file: 'x', name: 'u', match: { uid: 4321 } } };
  const m2 = sessionNft({ ...st, sessions: new Map([[byUid.path, byUid]]) } as never, { family: 'inet', name: 'netsession', emergencyMarker: 0x40000001, uplinks: ['eth0'], sources: [] })!;
  assert.match(renderReplace(m2), /meta skuid != \{ 0, 4321 \} meta mark != 1073741825 drop/);
  const { sessionCounterCleanup } = await import('../../src/engine/session-routing.ts');
  assert.equal(sessionCounterCleanup('inet', 'netsession', []), undefined);
  assert.equal(sessionCounterCleanup('inet', 'netsession', [0x40000002, 0x40000001])?.split('\n')[0], 'add element inet netsession session_tx { 0x40000001, 0x40000002 }');
});
