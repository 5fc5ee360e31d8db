// Session semantics without a kernel or a bus: which service a session uses, which services
// sessions ask for, IdleTimeout / StayConnected and PeriodicConnect.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { reduce } from '../../src/engine/engine.ts';
import { DEFAULT_REQUEST, PERIODIC_WINDOW_S, assignServices, chooseService, idleSessions, nextPeriodicAt, periodicDue, sessionDemand } from '../../src/engine/sessions.ts';
import { orderServices } from '../../src/engine/order.ts';
import type { Session, SessionRequest, SessionsState } from '../../src/engine/session-types.ts';
import type { EngineState, Service } from '../../src/engine/types.ts';
import { engine, id } from '../helpers/engine-state.ts';

let nextMarker = 0x40000001;
function session(name: string, request: Partial<SessionRequest>, extra: Partial<Session> = {}): Session {
  return {
    path: `/sessions/_1_1/${name}`,
    owner: ':1.1',
    notifier: `/${name}`,
    identity: { uid: 1000, gids: [1000] },
    request: { ...DEFAULT_REQUEST, ...request },
    policy: undefined,
    marker: nextMarker++,
    active: true,
    detached: false,
    idle: false,
    woken: false,
    demandSince: 0,
    serviceId: undefined,
    routeVia: extra.serviceId,
    createdAt: 0,
    ...extra,
  };
}
const sessionsOf = (...list: Session[]): SessionsState => ({ sessions: new Map(list.map((s) => [s.path, s])), policies: [], nextMarker: 0 });

test('service choice: the application\'s bearer order, then service order; an interface pins it; AvoidHandover holds', () => {
  const st = engine(3);
  const ordered = orderServices(st.services.values(), st.config.preferredTechnologies);
  assert.equal(chooseService(st, session('any', {}), ordered)?.id, ordered[0]?.id);
  assert.equal(chooseService(st, session('pinned', { allowedInterface: 'eth2' }), ordered)?.id, id(2));
  assert.equal(chooseService(st, session('none', { allowedBearers: [] }), ordered), undefined, 'an empty AllowedBearers never connects');
  assert.equal(chooseService(st, session('wifi', { allowedBearers: ['wifi'] }), ordered), undefined);
  const held = session('held', { avoidHandover: true }, { serviceId: id(2) });
  assert.equal(chooseService(st, held, ordered)?.id, id(2), 'AvoidHandover keeps a usable service');
  assert.equal(chooseService(st, { ...held, request: { ...held.request, avoidHandover: false } }, ordered)?.id, ordered[0]?.id);
});

test('demand: one service per session\'s constraints; a session that went idle asks for nothing', () => {
  let st = engine(2);
  // both uplinks lose their addresses: connected no more, but could come up
  const services = new Map(st.services);
  for (const s of services.values()) services.set(s.id, { ...s, state: 'configuration', settings: { ...s.settings, autoConnect: false } });
  st = { ...st, services };
  const a = session('a', { allowedInterface: 'eth0' });
  const b = session('b', { allowedInterface: 'eth1' });
  assert.deepEqual([...sessionDemand(sessionsOf(a, b), st)].sort(), [id(0), id(1)]);
  assert.deepEqual([...sessionDemand(sessionsOf(a, { ...b, active: false }), st)], [id(0)], 'only Connect()ed sessions ask');
  assert.deepEqual([...sessionDemand(sessionsOf(a, { ...b, idle: true }), st)], [id(0)]);
  assert.deepEqual([...sessionDemand(sessionsOf(a, { ...b, active: false, woken: true }), st)].sort(), [id(0), id(1)], 'a periodic attempt asks like Connect()');
});

test('IdleTimeout: the service goes once every session on it has been quiet for the longest timeout', () => {
  const st = engine(2, [1]);
  const a = session('a', { allowedInterface: 'eth1', idleTimeout: 10 }, { serviceId: id(1) });
  const b = session('b', { allowedInterface: 'eth1', idleTimeout: 30 }, { serviceId: id(1) });
  const ss = sessionsOf(a, b);
  assert.deepEqual(assignServices(ss, st), ss, 'both already on eth1');
  const none = new Map<number, number>();
  assert.deepEqual(idleSessions(ss, st, none, 29_999), { idle: [], nextCheckAt: 30_000, shortestMs: 30_000 }, 'the longest timeout counts');
  assert.deepEqual(idleSessions(ss, st, none, 30_000).idle.sort(), [a.path, b.path]);
  // traffic of either session keeps both
  const traffic = new Map([[a.marker, 25_000]]);
  assert.deepEqual(idleSessions(ss, st, traffic, 30_000).idle, []);
  assert.equal(idleSessions(ss, st, traffic, 30_000).nextCheckAt, 55_000);
  // idle time never counts from before the session began to ask
  const late = sessionsOf({ ...a, demandSince: 50_000 }, { ...b, demandSince: 50_000 });
  assert.deepEqual(idleSessions(late, st, none, 60_000).idle, []);
});

test('IdleTimeout: StayConnected, a session without a timeout, or a service that is up anyway hold it', () => {
  const st = engine(2, [1]);
  const quiet = session('q', { allowedInterface: 'eth1', idleTimeout: 5 }, { serviceId: id(1) });
  const none = new Map<number, number>();
  assert.deepEqual(idleSessions(sessionsOf(quiet), st, none, 10_000).idle, [quiet.path]);
  const stay = session('s', { allowedInterface: 'eth1', idleTimeout: 5, stayConnected: true }, { serviceId: id(1) });
  assert.deepEqual(idleSessions(sessionsOf(quiet, stay), st, none, 10_000).idle, [], 'StayConnected');
  const forever = session('f', { allowedInterface: 'eth1' }, { serviceId: id(1) });
  assert.deepEqual(idleSessions(sessionsOf(quiet, forever), st, none, 10_000), { idle: [], nextCheckAt: undefined, shortestMs: undefined }, 'no timeout: nothing to watch');
  const onAuto = session('auto', { allowedInterface: 'eth0', idleTimeout: 5 }, { serviceId: id(0) });
  assert.deepEqual(idleSessions(sessionsOf(onAuto), st, none, 10_000).idle, [], 'eth0 is up by AutoConnect, not for sessions');
  assert.deepEqual(idleSessions(sessionsOf({ ...quiet, idle: true }), st, none, 10_000).idle, [], 'already idle');
  // a periodic attempt without IdleTimeout keeps the connection for a while only
  const woken = session('w', { allowedInterface: 'eth1', periodicConnect: 5 }, { serviceId: id(1), active: false, woken: true, demandSince: 1000 });
  assert.deepEqual(idleSessions(sessionsOf(woken), st, none, 1000 + PERIODIC_WINDOW_S * 1000).idle, [woken.path]);
});

test('PeriodicConnect: attempts on clock multiples of the period, shared by all sessions', () => {
  const min = 60_000;
  const five = session('five', { periodicConnect: 5 }, { active: false });
  const ten = session('ten', { periodicConnect: 10 }, { active: false });
  const off = session('off', {}, { active: false });
  const ss = sessionsOf(five, ten, off);
  assert.equal(nextPeriodicAt(ss, 7 * min), 10 * min);
  assert.equal(nextPeriodicAt(ss, 10 * min), 15 * min);
  assert.deepEqual(periodicDue(ss, 7 * min, 10 * min + 5).sort(), [five.path, ten.path], 'they meet at 10 minutes: one wake-up');
  assert.deepEqual(periodicDue(ss, 10 * min + 5, 15 * min + 5), [five.path]);
  assert.deepEqual(periodicDue(ss, 11 * min, 14 * min), []);
  assert.deepEqual(periodicDue(sessionsOf({ ...five, serviceId: id(0) }), 0, 5 * min), [], 'a session with a service got its chance');
  assert.deepEqual(periodicDue(sessionsOf({ ...five, detached: true }), 0, 5 * min), [], 'Disconnect() stops it');
  assert.equal(nextPeriodicAt(sessionsOf(off), 0), undefined);
});

test('rules: a session points at its service\'s block; losing the uplink changes the block, not the session\'s rule', async () => {
  const { sessionRules } = await import('../../src/engine/session-routing.ts');
  const layout = { protocol: 83, base: 10000 };
  const st = engine(2);
  // extended: a ConnMan client's session has no rule (routedByOwnRules)
  const a = session('a', { allowedInterface: 'eth1', extended: true });
  const b = session('b', { allowedInterface: 'eth1', connectionType: 'internet', extended: true });
  let ss = assignServices(sessionsOf(a, b), st);
  assert.equal(ss.sessions.get(a.path)?.routeVia, id(1));
  const text = (st2: EngineState, s2: SessionsState) =>
    sessionRules(s2, st2, layout)
      .filter((r) => r.family === 2)
      .map((r) => `${r.priority} ${r.fwmark ?? ''} ${r.action}${r.goto ? ` goto ${r.goto}` : ''}${r.table ? ` table ${r.table}` : ''}`);
  const up = text(st, ss);
  const t1 = (st.services.get(id(1)) as Service).settings.table;
  const k = t1 - st.config.tables.min;
  const blk = 10000 + 644 + 6 * k;
  assert.ok(up.includes(`10201 ${a.marker} 2 goto ${blk}`), up.join('\n'));
  assert.ok(up.includes(`10201 ${b.marker} 2 goto ${blk + 3}`), 'internet sessions use the online half');
  assert.ok(up.includes(`${blk} ${0x40000000} 3`) && up.includes(`${blk + 3} ${0x40000000} 3`), 'goto targets');
  assert.ok(up.includes(`${blk + 1} ${0x40000000} 1 table ${t1}`) && up.includes(`${blk + 4} ${0x40000000} 1 table ${t1}`));
  assert.ok(up.includes(`10641 ${0x40000000} 7`), 'a marker no rule takes is unreachable');
  // eth1 loses its lease: the sessions have no service, their rules stay, the block fails closed
  const down = reduce(st, { kind: 'link', link: { ifindex: 11, ifname: 'eth1', mac: '02:00:00:00:00:01', mtu: 1500, carrier: false } }, 10);
  ss = assignServices(ss, down);
  assert.equal(ss.sessions.get(a.path)?.serviceId, undefined);
  const after = text(down, ss);
  assert.deepEqual(
    after.filter((l) => l.startsWith('10201 ')),
    up.filter((l) => l.startsWith('10201 ')),
  );
  assert.ok(!after.some((l) => l.startsWith(`${blk + 1} `) || l.startsWith(`${blk + 4} `)), after.join('\n'));
  assert.ok(after.includes(`${blk} ${0x40000000} 3`) && after.includes(`${blk + 2} ${0x40000000} 7`) && after.includes(`${blk + 5} ${0x40000000} 7`));
  // a session whose settings no longer fit that service lets go of it
  const refit = { ...(ss.sessions.get(a.path) as Session), request: { ...a.request, allowedInterface: 'eth0' } };
  const moved = assignServices({ ...ss, sessions: new Map([[a.path, refit]]) }, down);
  assert.equal(moved.sessions.get(a.path)?.routeVia, id(0));
  // Disconnect(): unreachable at once
  const detached = { ...ss, sessions: new Map([[a.path, { ...(ss.sessions.get(a.path) as Session), detached: true }]]) };
  assert.ok(text(down, detached).includes(`10201 ${a.marker} 7`));
  // a ConnMan client's session: no marker rule, no block opened for it
  const plain = session('p', { allowedInterface: 'eth1' });
  const only = text(st, assignServices(sessionsOf(plain), st));
  assert.ok(!only.some((l) => l.startsWith('10201 ') || l.startsWith('10200 ') || l.startsWith(`${blk} `)), only.join('\n'));
});
