// The sessions' rule ladder in a real kernel: markers spread over several groups of blocks
// (and the last block there is) route to their services' tables, every marker nobody has
// fails closed (a free slot in a block in use, a block not in use in a group in use, a group
// not in use), and sessions that end and come one at a time (sessionRuleDelta, as the
// daemon's sessions pass applies it) never leave the kernel other than sessionRules() says.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_BLOCKS, indexSessionRules, markerOf, sessionRuleDelta, sessionRules } from '../../src/engine/session-routing.ts';
import { DEFAULT_REQUEST } from '../../src/engine/sessions.ts';
import type { Session, SessionsState } from '../../src/engine/session-types.ts';
import { openKernelMirror } from '../../src/kernel/kernel-mirror.ts';
import { Nft } from '../../src/kernel/nft/nft.ts';
import { DEFAULT_OWNERSHIP } from '../../src/kernel/reconciler/ownership.ts';
import { Reconciler } from '../../src/kernel/reconciler/reconciler.ts';
import { normalizeRoute } from '../../src/kernel/rtnetlink/route.ts';
import { engine, id, sessionOn } from '../helpers/engine-state.ts';
import { kernelCanon, ruleCanon } from '../helpers/ip-json.ts';
import { ipBatch, isRoot, makeNetns, routeWithMark } from '../helpers/netns.ts';

const skip = !isRoot() && 'needs root (network namespaces)';
const LAYOUT = { protocol: DEFAULT_OWNERSHIP.protocol, base: DEFAULT_OWNERSHIP.rulePriorities.min };
const DST = '198.18.0.1';

test('the rule ladder in the kernel: markers in several groups route to their services, unknown ones fail closed, one at a time as sessionRules says', { skip }, async (t) => {
  const ns = makeNetns(t, 'sl');
  ipBatch(ns, ['link add t2 type veth peer name t3', 'link set t2 up', 'link set t3 up', 'addr add 198.51.100.10/24 dev t2']);
  const mirror = await openKernelMirror({ netns: ns });
  t.after(() => mirror.close());
  const rec = new Reconciler(mirror, new Nft({ netns: ns }), DEFAULT_OWNERSHIP);
  const eng = engine(2);
  const tableOf = (i: number): number => eng.services.get(id(i))!.settings.table;
  const devOf = ['t0', 't2'];
  const routes = [
    normalizeRoute({ table: tableOf(0), dst: 'default', gateway: '192.0.2.1', oif: mirror.state.linkByName('t0')!.index, protocol: LAYOUT.protocol }),
    normalizeRoute({ table: tableOf(1), dst: 'default', gateway: '198.51.100.1', oif: mirror.state.linkByName('t2')!.index, protocol: LAYOUT.protocol }),
  ];

  // blocks in groups 0 (0, 15), 1 (16, 17), 6 (100) and the last one (439, group 27)
  const places: [number, number][] = [
    [0, 1],
    [0, 2],
    [15, 63],
    [16, 0],
    [17, 5],
    [100, 10],
    [MAX_BLOCKS - 1, 62],
  ];
  const sessions: Session[] = places.map(([blk, slot], i) => sessionOn(`/sessions/l${i}`, markerOf(blk, slot), i % 2, { request: { ...DEFAULT_REQUEST, extended: true }, createdAt: i }));
  const stateOf = (list: Session[]): SessionsState => ({ sessions: new Map(list.map((s) => [s.path, s])), policies: [], nextMarker: 0 });
  const nobody = [markerOf(0, 3), markerOf(1, 0), markerOf(18, 7), markerOf(200, 1), markerOf(MAX_BLOCKS - 1, 61)];
  const check = (live: Session[], what: string): void => {
    for (const s of live) assert.equal(routeWithMark(ns, DST, s.marker), devOf[s.serviceId === id(0) ? 0 : 1], `${what}: marker 0x${s.marker.toString(16)} routes through its service`);
    const gone = sessions.filter((s) => !live.includes(s)).map((s) => s.marker);
    for (const m of [...nobody, ...gone]) assert.equal(routeWithMark(ns, DST, m), undefined, `${what}: marker 0x${m.toString(16)} nobody has fails closed`);
    const want = sessionRules(stateOf(live), eng, LAYOUT).map(ruleCanon).sort();
    const ours = kernelCanon(ns).rules.filter((l) => / proto=83\b/.test(l)).sort();
    assert.deepEqual(ours, want, `${what}: the kernel holds what sessionRules says`);
  };

  // a full pass, in the order a plan adds them
  let report = await rec.reconcile({ routes, rules: sessionRules(stateOf(sessions), eng, LAYOUT), nft: 'keep' });
  assert.deepEqual(report.errors, []);
  check(sessions, 'all');

  // then one at a time: each ends (its block and group may close), then all come back
  const index = indexSessionRules(stateOf(sessions), eng, LAYOUT);
  let live = [...sessions];
  for (const s of sessions) {
    const d = sessionRuleDelta(index, eng, LAYOUT, [], [s]);
    assert.ok(d, 'a plain session: its own rules');
    const r = await rec.applyRules(d.adds, d.dels);
    assert.deepEqual(r.errors, [], `${s.path} ends`);
    live = live.filter((x) => x !== s);
    check(live, `${s.path} ended`);
  }
  for (const s of [...sessions].reverse()) {
    const d = sessionRuleDelta(index, eng, LAYOUT, [s], []);
    assert.ok(d);
    const r = await rec.applyRules(d.adds, d.dels);
    assert.deepEqual(r.errors, [], `${s.path} comes`);
    live.push(s);
    check(live, `${s.path} back`);
  }
  report = await rec.reconcile({ routes: [], rules: [], nft: 'keep' });
  assert.deepEqual(report.errors, []);
  assert.deepEqual(kernelCanon(ns).rules.filter((l) => / proto=83\b/.test(l)), []);
});
