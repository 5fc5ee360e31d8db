// The observed-state mirror against the kernel's own account (`ip -j`), in throw-away namespaces.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KernelMirror, openKernelMirror } from '../../src/kernel/kernel-mirror.ts';
import type { RtEvent } from '../../src/kernel/rtnetlink/events.ts';
import { kernelCanon, mirrorCanon } from '../helpers/ip-json.ts';
import { ipBatch, ipIn, isRoot, makeNetns } from '../helpers/netns.ts';

const skip = !isRoot() && 'needs root (network namespaces)';

function assertSame(m: KernelMirror, ns: string): void {
  const k = kernelCanon(ns);
  const o = mirrorCanon(m.state);
  assert.deepEqual(o.links, k.links, 'links');
  assert.deepEqual(o.addresses, k.addresses, 'addresses');
  assert.deepEqual(o.rules, k.rules, 'rules');
  assert.deepEqual(o.routes, k.routes, 'routes');
}

test('mirror equals ip -j after the initial dump', { skip }, async (t) => {
  const ns = makeNetns(t);
  ipBatch(ns, [
    'route add 198.18.1.0/24 via 192.0.2.1 table 100 proto 83',
    'route add unreachable default table 101 metric 7',
    '-6 route add 2001:db8:5::/64 via 2001:db8::1 dev t0 table 100',
    '-6 route add unreachable default table 101',
    'rule add fwmark 0x10/0xff table 100 prio 1000',
    'rule add from 192.0.2.10 table 100 prio 1001 proto 83',
    'rule add not uidrange 1000-1999 iif lo table 101 prio 1002',
    '-6 rule add from 2001:db8::10 table 100 prio 1001',
  ]);
  const m = await openKernelMirror({ netns: ns });
  t.after(() => m.close());
  assert.equal(m.isComplete, true);
  assertSame(m, ns);
});

test('mirror follows a burst of changes, including silent IPv4 flushes', { skip }, async (t) => {
  const ns = makeNetns(t);
  const m = await openKernelMirror({ netns: ns });
  t.after(() => m.close());
  const lines: string[] = [];
  for (let i = 0; i < 500; i++) lines.push(`route add 198.18.${i >> 8}.${i & 255}/32 via 192.0.2.${1 + (i % 5)} table ${100 + (i % 3)}`);
  for (let i = 0; i < 200; i++) lines.push(`-6 route add 2001:db8:1:${i.toString(16)}::/64 via 2001:db8::1 dev t0 table 100`);
  for (let i = 0; i < 100; i++) lines.push(`rule add fwmark ${0x100 + i} table ${100 + i} prio ${2000 + i}`);
  for (let i = 0; i < 50; i++) lines.push(`-6 rule add fwmark ${0x100 + i} table ${100 + i} prio ${2000 + i}`);
  lines.push('link add t2 type veth peer name t3', 'link set t2 up', 'addr add 198.51.100.10/24 dev t2', 'route add 203.0.113.0/24 via 198.51.100.1 table 100');
  for (let i = 0; i < 100; i++) lines.push(`route del 198.18.0.${i}/32 table ${100 + (i % 3)}`);
  for (let i = 0; i < 20; i++) lines.push(`rule del prio ${2000 + i}`);
  ipBatch(ns, lines);
  await m.settle();
  assertSame(m, ns);
  // t2 goes down: the kernel drops its IPv4 routes without RTM_DELROUTE
  ipIn(ns, 'link', 'set', 't2', 'down');
  await m.settle();
  assertSame(m, ns);
  // an IPv4 address goes: its prefix route and routes through it go too, silently
  ipIn(ns, 'link', 'set', 't2', 'up');
  ipIn(ns, 'route', 'add', '203.0.113.0/24', 'via', '198.51.100.1', 'table', '100');
  ipIn(ns, 'addr', 'del', '198.51.100.10/24', 'dev', 't2');
  await m.settle();
  assertSame(m, ns);
  ipIn(ns, 'link', 'del', 't2');
  await m.settle();
  assertSame(m, ns);
});

test('a flush is dumped twice: at once for whoever settles, and after the delay (the kernel announces a deleted address before it flushes)', { skip }, async (t) => {
  const ns = makeNetns(t);
  const m = await openKernelMirror({ netns: ns });
  t.after(() => m.close());
  ipBatch(ns, ['link add t2 type veth peer name t3', 'link set t2 up', 'addr add 198.51.100.10/24 dev t2', 'route add 203.0.113.0/24 via 198.51.100.1 table 100 src 198.51.100.10']);
  await m.settle();
  const before = m.stats.resyncs;
  ipIn(ns, 'addr', 'del', '198.51.100.10/24', 'dev', 't2');
  await m.settle();
  assert.equal(m.stats.resyncs, before + 1, 'settle dumped at once');
  // a dump that raced the flush would hold the route: the delayed one corrects it
  await new Promise((r) => setTimeout(r, 80));
  await m.settle();
  assert.equal(m.stats.resyncs, before + 2, 'and once more after the delay');
  assertSame(m, ns);
});

test('events arrive for links, addresses, routes and rules, IPv4 and IPv6', { skip }, async (t) => {
  const ns = makeNetns(t);
  const m = await openKernelMirror({ netns: ns });
  t.after(() => m.close());
  const seen: RtEvent[] = [];
  m.onEvent((ev) => seen.push(ev));
  ipIn(ns, 'link', 'set', 't1', 'mtu', '1400');
  ipIn(ns, 'addr', 'add', '198.51.100.7/24', 'dev', 't1');
  ipIn(ns, '-6', 'addr', 'add', '2001:db8:7::7/64', 'dev', 't1', 'nodad');
  ipIn(ns, 'route', 'add', '203.0.113.0/24', 'via', '198.51.100.1', 'table', '300');
  ipIn(ns, '-6', 'route', 'add', '2001:db8:9::/64', 'via', '2001:db8:7::1', 'dev', 't1', 'table', '300');
  ipIn(ns, 'rule', 'add', 'fwmark', '0x42', 'table', '300', 'prio', '4242');
  ipIn(ns, '-6', 'rule', 'add', 'fwmark', '0x42', 'table', '300', 'prio', '4242');
  ipIn(ns, 'rule', 'del', 'prio', '4242');
  ipIn(ns, '-6', 'rule', 'del', 'prio', '4242');
  ipIn(ns, 'route', 'del', '203.0.113.0/24', 'table', '300');
  ipIn(ns, '-6', 'route', 'del', '2001:db8:9::/64', 'table', '300');
  await m.settle();
  const has = (f: (e: RtEvent) => boolean, what: string): void => assert.ok(seen.some(f), `no event: ${what}`);
  has((e) => e.kind === 'link' && e.op === 'new' && e.link.name === 't1' && e.link.mtu === 1400, 'link mtu change');
  has((e) => e.kind === 'address' && e.op === 'new' && e.address.address === '198.51.100.7', 'IPv4 address added');
  has((e) => e.kind === 'address' && e.op === 'new' && e.address.address === '2001:db8:7::7', 'IPv6 address added');
  has((e) => e.kind === 'route' && e.op === 'new' && e.route.dst === '203.0.113.0' && e.route.table === 300, 'IPv4 route added');
  has((e) => e.kind === 'route' && e.op === 'del' && e.route.dst === '203.0.113.0', 'IPv4 route deleted');
  has((e) => e.kind === 'route' && e.op === 'new' && e.route.dst === '2001:db8:9::' && e.route.table === 300, 'IPv6 route added');
  has((e) => e.kind === 'route' && e.op === 'del' && e.route.dst === '2001:db8:9::', 'IPv6 route deleted');
  for (const fam of [2, 10]) {
    has((e) => e.kind === 'rule' && e.op === 'new' && e.rule.family === fam && e.rule.fwmark === 0x42, `rule added (family ${fam})`);
    has((e) => e.kind === 'rule' && e.op === 'del' && e.rule.family === fam && e.rule.priority === 4242, `rule deleted (family ${fam})`);
  }
  ipIn(ns, 'link', 'del', 't1');
  await m.settle();
  has((e) => e.kind === 'link' && e.op === 'del' && e.link.name === 't1', 'link deleted');
  assertSame(m, ns);
});

test('coldplug gate: not complete before the first dump', { skip }, async (t) => {
  const ns = makeNetns(t);
  const m = KernelMirror.open({ netns: ns });
  t.after(() => m.close());
  assert.equal(m.isComplete, false);
  await m.ready;
  assert.equal(m.isComplete, true);
  assert.ok(m.state.linkByName('t0'));
});
