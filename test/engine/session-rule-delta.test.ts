// Sessions coming, changing and going one at a time: the rules sessionRuleDelta() adds and
// deletes, applied to what the kernel held, must give exactly what sessionRules() wants for
// the new state, whenever it answers at all; and it must answer for the common case (a
// session in a block and on a service others already use). Pure, random but seeded.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type EngineEvent, createState, reduce } from '../../src/engine/engine.ts';
import { indexSessionRules, markerOf, sessionRoutingInputs, sessionRuleDelta, sessionRules } from '../../src/engine/session-routing.ts';
import { DEFAULT_REQUEST } from '../../src/engine/sessions.ts';
import type { Session, SessionsState } from '../../src/engine/session-types.ts';
import type { EngineState } from '../../src/engine/types.ts';
import { defaultConfig } from '../../src/daemon/config.ts';
import { ruleKey } from '../../src/kernel/rtnetlink/rule.ts';
import { sessionOn } from '../helpers/engine-state.ts';

const id = (i: number): string => `ethernet_02000000000${i}_cable`;

function engine(n: number): EngineState {
  let st = createState(defaultConfig().engine);
  for (let i = 0; i < n; i++) {
    const events: EngineEvent[] = [
      { kind: 'link', link: { ifindex: 10 + i, ifname: `eth${i}`, mac: `02:00:00:00:00:0${i}`, mtu: 1500, carrier: true } },
      { kind: 'dhcp-lease', ifindex: 10 + i, lease: { address: `192.0.2.${50 + i}`, prefixLen: 24, router: '192.0.2.1', dns: [], searchDomains: [], ntp: [], leaseSeconds: 3600, expiresAt: 3600_000 } },
    ];
    // one uplink stays ready (not online): internet sessions on it are unreachable
    if (i !== 2) events.push({ kind: 'online-started', id: id(i), family: 'ipv4' }, { kind: 'online-result', id: id(i), family: 'ipv4', status: 'online' });
    for (const e of events) st = reduce(st, e, 0);
  }
  return st;
}

const LAYOUT = { protocol: 83, base: 10000 };

test('sessionRuleDelta applied to the kernel equals sessionRules of the new state, over 3,000 random steps', () => {
  const eng = engine(3);
  let seed = 7;
  const rnd = (n: number): number => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
  // blocks in three groups of 16, so that groups open and close too
  const free = [0, 1, 15, 16, 17, 40].flatMap((blk) => Array.from({ length: 64 }, (_, slot) => markerOf(blk, slot)));
  let k = 0;
  const make = (marker: number): Session => {
    // (the random draws in the order the seeded sequence has always had)
    const svc = rnd(4);
    const connectionType = rnd(2) === 0 ? 'internet' : 'any';
    // most report their SessionMarker (extended: marker rules); a ConnMan client's has no rule
    const extended = rnd(4) !== 0;
    // now and then one with a uid policy: its rules are not its marker rules alone
    const policy = rnd(20) === 0 ? { file: 'p.policy', name: 'g', match: { uid: 1000 + rnd(3) } } : undefined;
    const detached = rnd(8) === 0;
    k++;
    return sessionOn(`/sessions/s${k - 1}`, marker, svc < 3 ? svc : undefined, { request: { ...DEFAULT_REQUEST, connectionType, extended }, policy, detached, createdAt: k });
  };
  let st: SessionsState = { sessions: new Map(), policies: [], nextMarker: 0 };
  const keys = (s: SessionsState): Set<string> => new Set(sessionRules(s, eng, LAYOUT).map(ruleKey));
  let kernel = keys(st);
  let index = indexSessionRules(st, eng, LAYOUT);
  let answered = 0;
  let full = 0;
  for (let step = 0; step < 3000; step++) {
    const sessions = new Map(st.sessions);
    const changed: Session[] = [];
    const removed: Session[] = [];
    const live = [...sessions.values()];
    const r = rnd(10);
    if ((r < 5 || live.length === 0) && free.length > 0) {
      const s = make(free.splice(rnd(free.length), 1)[0] as number);
      sessions.set(s.path, s);
      changed.push(s);
    } else if (r < 8 && live.length > 0) {
      const s = live[rnd(live.length)] as Session;
      sessions.delete(s.path);
      free.push(s.marker);
      removed.push(s);
    } else if (live.length > 0) {
      const s = live[rnd(live.length)] as Session;
      const svc = rnd(4);
      // now and then its uid policy comes or goes (a policy file reloaded)
      const policy = rnd(5) === 0 ? (s.policy ? undefined : { file: 'p.policy', name: 'g', match: { uid: 1000 + rnd(3) } }) : s.policy;
      // and now and then a ConnMan client's session sets one of seed 001's keys (Change): it gets its rules
      const request = s.request.extended || rnd(6) !== 0 ? s.request : { ...s.request, extended: true };
      const next = { ...s, request, policy, serviceId: svc < 3 ? id(svc) : undefined, routeVia: svc < 3 ? id(svc) : s.routeVia, detached: rnd(6) === 0 } as Session;
      sessions.set(s.path, next);
      changed.push(next);
    }
    st = { ...st, sessions };
    const want = keys(st);
    const d = sessionRuleDelta(index, eng, LAYOUT, changed, removed);
    if (d) {
      answered++;
      for (const x of d.dels) assert.ok(kernel.delete(ruleKey(x)), `step ${step}: deletes a rule the kernel has`);
      for (const x of d.adds) {
        assert.ok(!kernel.has(ruleKey(x)), `step ${step}: adds a rule the kernel does not have`);
        kernel.add(ruleKey(x));
      }
      assert.deepEqual([...kernel].sort(), [...want].sort(), `step ${step}`);
      // and the index is what a fresh one would be
      const fresh = indexSessionRules(st, eng, LAYOUT);
      assert.deepEqual(new Map([...index.blocks].filter(([, n]) => n !== 0)), fresh.blocks, `step ${step}: blocks`);
      assert.deepEqual(new Map([...index.serviceBlocks].filter(([, n]) => n !== 0)), fresh.serviceBlocks, `step ${step}: service blocks`);
      assert.deepEqual([...index.byMarker.keys()].sort(), [...fresh.byMarker.keys()].sort(), `step ${step}: markers`);
    } else {
      full++;
      kernel = want;
      index = indexSessionRules(st, eng, LAYOUT);
    }
  }
  // most steps are a session in a block and on a service that others use already
  assert.ok(answered > 2000, `answered ${answered} of 3000 (full ${full})`);
});

test('a session that loses its uid policy but keeps its marker rules: not a marker-rules-only change', () => {
  const eng = engine(3);
  const base: Session = {
    path: '/sessions/p',
    owner: ':1.1',
    notifier: '/n',
    identity: { uid: 65534, gids: [65534] },
    request: DEFAULT_REQUEST,
    policy: { file: 'nobody.policy', name: 'nobody', match: { uid: 65534 } },
    marker: markerOf(0, 1),
    active: true,
    detached: false,
    idle: false,
    woken: false,
    demandSince: 0,
    serviceId: id(0),
    routeVia: id(0),
    createdAt: 1,
  } as Session;
  const plain: Session = { ...base, path: '/sessions/q', marker: markerOf(0, 2), policy: undefined };
  const before: SessionsState = { sessions: new Map([[base.path, base], [plain.path, plain]]), policies: [], nextMarker: 0 };
  const index = indexSessionRules(before, eng, LAYOUT);
  const changed = { ...base, policy: undefined };
  // its uidrange rule must go: only a full plan knows that
  assert.equal(sessionRuleDelta(index, eng, LAYOUT, [changed], []), undefined);
  assert.equal(sessionRuleDelta(index, eng, LAYOUT, [], [base]), undefined);
  // a plain one that changes nothing: an empty answer
  assert.deepEqual(sessionRuleDelta(index, eng, LAYOUT, [{ ...plain }], []), { adds: [], dels: [] });
});

test('sessionRoutingInputs: engine states with the same inputs give the same session rules; a record refresh keeps them', () => {
  let eng = engine(3);
  let k = 0;
  const sessions = new Map<string, Session>();
  for (let svc = 0; svc < 4; svc++) {
    for (const connectionType of ['internet', 'any'] as const) {
      for (const policy of [undefined, { file: 'p.policy', name: 'g', match: { uid: 1000 + svc } }]) {
        k++;
        const s = sessionOn(`/sessions/i${k - 1}`, markerOf(0, k), svc < 3 ? svc : undefined, { request: { ...DEFAULT_REQUEST, connectionType, extended: true }, policy, createdAt: k });
        sessions.set(s.path, s);
      }
    }
  }
  const st: SessionsState = { sessions, policies: [], nextMarker: k };
  const rulesOf = (e: EngineState): string[] => sessionRules(st, e, LAYOUT).map(ruleKey);
  const steps: { what: string; event: EngineEvent; same: boolean }[] = [
    { what: 'a router advertisement refreshes eth0', event: { kind: 'routers', ifindex: 10, routers: [{ address: 'fe80::1', expiresAt: 1800_000, preference: 1 }], rdnss: [], dnssl: [] }, same: true },
    { what: 'and again, later', event: { kind: 'routers', ifindex: 10, routers: [{ address: 'fe80::1', expiresAt: 1810_000, preference: 1 }], rdnss: [], dnssl: [] }, same: true },
    { what: 'a DHCP renewal on eth1', event: { kind: 'dhcp-lease', ifindex: 11, lease: { address: '192.0.2.51', prefixLen: 24, router: '192.0.2.1', dns: [], searchDomains: [], ntp: [], leaseSeconds: 3600, expiresAt: 5400_000 } }, same: true },
    { what: 'an online check of eth1 starts', event: { kind: 'online-started', id: id(1), family: 'ipv4' }, same: true },
    { what: 'and passes again', event: { kind: 'online-result', id: id(1), family: 'ipv4', status: 'online' }, same: true },
    { what: 'eth0 loses its carrier', event: { kind: 'link', link: { ifindex: 10, ifname: 'eth0', mac: '02:00:00:00:00:00', mtu: 1500, carrier: false } }, same: false },
    { what: 'an online check of eth2 (ready) starts', event: { kind: 'online-started', id: id(2), family: 'ipv4' }, same: true },
    { what: 'eth2 goes online', event: { kind: 'online-result', id: id(2), family: 'ipv4', status: 'online' }, same: false },
  ];
  for (const step of steps) {
    const before = eng;
    eng = reduce(eng, step.event, 1000);
    assert.notEqual(eng.services, before.services, `${step.what}: the services' record changed`);
    const same = sessionRoutingInputs(eng) === sessionRoutingInputs(before);
    assert.equal(same, step.same, `${step.what}: inputs ${same ? 'the same' : 'changed'}`);
    if (same) assert.deepEqual(rulesOf(eng), rulesOf(before), `${step.what}: the same rules`);
    else assert.notDeepEqual(rulesOf(eng), rulesOf(before), `${step.what}: other rules`);
  }
});
