// The reconciler's planning, without a kernel: order, minimality, ownership, conflicts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RTN_UNREACHABLE } from '../../src/kernel/netlink/constants.ts';
import type { NftTableModel } from '../../src/kernel/nft/model.ts';
import { parseNftTable } from '../../src/kernel/nft/observed.ts';
import { planNft } from '../../src/kernel/nft/plan.ts';
import { renderReplace, structureDigest } from '../../src/kernel/nft/render.ts';
import { DEFAULT_OWNERSHIP, validateOwnership } from '../../src/kernel/reconciler/ownership.ts';
import { planRouting } from '../../src/kernel/reconciler/plan.ts';
import { normalizeRoute } from '../../src/kernel/rtnetlink/route.ts';
import { normalizeRule } from '../../src/kernel/rtnetlink/rule.ts';

const own = DEFAULT_OWNERSHIP;
const T = own.tables.min;
const onlink = normalizeRoute({ table: T, dst: '192.0.2.0', dstLen: 24, oif: 3, protocol: 83 });
const dflt = normalizeRoute({ table: T, dst: 'default', gateway: '192.0.2.1', oif: 3, protocol: 83 });
const rule = normalizeRule({ family: 2, priority: 10001, protocol: 83, table: T, fwmark: 0x10001 });

test('from nothing: routes (on-link first), then rules', () => {
  const p = planRouting(own, { routes: [dflt, onlink], rules: [rule] }, { routes: [], rules: [] });
  assert.deepEqual(
    p.routeAdds.map((o) => ('route' in o ? `${o.op} ${o.route.dst}` : '')),
    ['add 192.0.2.0', 'add 0.0.0.0'],
  );
  assert.equal(p.ruleAdds.length, 1);
  assert.equal(p.ruleDels.length + p.routeDels.length, 0);
});

test('already there: nothing to do; changed gateway: one replace', () => {
  const same = planRouting(own, { routes: [dflt, onlink], rules: [rule] }, { routes: [onlink, { ...dflt, flags: 16 }], rules: [rule] });
  assert.equal(same.routeAdds.length + same.ruleAdds.length + same.ruleDels.length + same.routeDels.length, 0, 'kernel-added flags (linkdown) do not count');
  const moved = planRouting(own, { routes: [{ ...dflt, gateway: '192.0.2.2' }], rules: [] }, { routes: [dflt], rules: [] });
  assert.deepEqual(moved.routeAdds.map((o) => o.op), ['replace']);
});

test('ours not desired are removed, rules before routes; foreign objects are never in the plan', () => {
  const foreignRoute = { ...dflt, protocol: 3 };
  const foreignInBand = { ...rule, protocol: 0 };
  const oursOutsideBand = { ...rule, priority: 500 };
  const p = planRouting(own, { routes: [], rules: [] }, { routes: [dflt, onlink, foreignRoute], rules: [rule, foreignInBand, oursOutsideBand] });
  assert.deepEqual(p.ruleDels.map((o) => ('rule' in o ? o.rule.priority : 0)), [10001]);
  assert.deepEqual(
    p.routeDels.map((o) => ('route' in o ? o.route.dst : '')),
    ['0.0.0.0', '192.0.2.0'],
    'gateway routes go before the on-link route they depend on',
  );
});

test('a desired route where a foreign one sits is a conflict, not an overwrite', () => {
  const foreign = normalizeRoute({ table: 254, dst: 'default', gateway: '192.0.2.9', oif: 3, protocol: 3, priority: 100 });
  const want = normalizeRoute({ table: 254, dst: 'default', gateway: '192.0.2.1', oif: 3, protocol: 83, priority: 100 });
  const p = planRouting(own, { routes: [want], rules: [] }, { routes: [foreign], rules: [] });
  assert.equal(p.conflicts.length, 1);
  assert.equal(p.routeAdds.length, 0);
});

test('IPv6: a changed next hop is delete + add (a v6 replace would pick by metric)', () => {
  const a = normalizeRoute({ family: 10, table: T, dst: 'default', gateway: 'fe80::1', oif: 3, protocol: 83 });
  const b = { ...a, gateway: 'fe80::2' };
  const p = planRouting(own, { routes: [b], rules: [] }, { routes: [a], rules: [] });
  assert.deepEqual(p.routeAdds.map((o) => o.op), ['delete', 'add']);
});

test('desired objects outside our ownership or twice are refused', () => {
  assert.throws(() => planRouting(own, { routes: [{ ...dflt, table: 100 }], rules: [] }, { routes: [], rules: [] }), /outside/);
  assert.throws(() => planRouting(own, { routes: [dflt, { ...dflt, gateway: '192.0.2.7' }], rules: [] }, { routes: [], rules: [] }), /twice/);
  assert.throws(() => planRouting(own, { routes: [], rules: [{ ...rule, priority: 32766 }] }, { routes: [], rules: [] }), /outside/);
  assert.throws(() => validateOwnership({ ...own, tables: { min: 200, max: 300 } }), /kernel table/);
  assert.throws(() => validateOwnership({ ...own, protocol: 2 }), /protocol/);
  const unreach = normalizeRoute({ table: T, dst: 'default', type: RTN_UNREACHABLE, protocol: 83, priority: 9 });
  assert.equal(planRouting(own, { routes: [unreach], rules: [] }, { routes: [], rules: [] }).routeAdds.length, 1);
});

const model = (marks: number[]): NftTableModel => ({
  family: 'inet',
  name: 'netsession',
  sets: [{ name: 'tx', type: { type: 'mark' }, counter: true, elements: marks }],
  maps: [{ name: 'm', type: { type: 'uid : mark' }, elements: [[1000, 7]] }],
  counters: [],
  chains: [{ name: 'out', base: { type: 'route', hook: 'output', priority: 'mangle' }, rules: ['meta mark @tx'] }],
});

test('nft plan: replace when absent or restructured, element diff otherwise, delete when undesired', () => {
  assert.equal(planNft('inet', 'netsession', model([1]), undefined).kind, 'replace');
  const observed = parseNftTable(
    JSON.stringify({
      nftables: [
        { set: { name: 'netsession_digest', comment: `netsession:${structureDigest(model([]))}` } },
        { set: { name: 'tx', elem: [{ elem: { val: 1, counter: { packets: 5, bytes: 500 } } }, { elem: { val: 2, counter: { packets: 0, bytes: 0 } } }] } },
        { map: { name: 'm', elem: [[1000, 7]] } },
      ],
    }),
  );
  assert.equal(observed.elements.get('tx')?.get('n1')?.counter?.bytes, 500);
  const p = planNft('inet', 'netsession', model([1, 3]), observed);
  assert.equal(p.kind, 'elements');
  const script = 'script' in p ? p.script : '';
  assert.ok(script.includes('delete element inet netsession tx { 2 }') && script.includes('add element inet netsession tx { 3 }'));
  assert.ok(!script.includes(' m '), 'unchanged map not touched');
  assert.equal(planNft('inet', 'netsession', model([1, 2]), observed).kind, 'none');
  const restructured = { ...model([1]), chains: [] };
  assert.equal(planNft('inet', 'netsession', restructured, observed).kind, 'replace');
  assert.equal(planNft('inet', 'netsession', undefined, observed).kind, 'delete');
  assert.equal(planNft('inet', 'netsession', undefined, undefined).kind, 'none');
});

test('nft render refuses names and values that could inject', () => {
  assert.throws(() => renderReplace({ ...model([1]), name: 'x y' }), /name/);
  assert.throws(() => renderReplace({ ...model([1]), sets: [{ name: 's', type: { type: 'ifname' }, elements: ['eth0" ; flush ruleset'] }] }), /not allowed/);
  assert.throws(() => renderReplace({ ...model([1]), chains: [{ name: 'c', rules: ['accept; flush ruleset'] }] }), /one statement/);
  assert.throws(() => renderReplace({ ...model([-1]) }), /non-negative/);
  assert.match(renderReplace(model([1])), /^add table inet netsession\ndelete table inet netsession\ntable inet netsession \{/);
});
