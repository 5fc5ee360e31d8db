// Reconciler property test in a throw-away namespace: random desired states among random
// foreign rules and routes. After each reconcile ours equal desired (as `ip -j` reports
// them), every foreign object is untouched, and a second reconcile changes nothing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type KernelMirror, openKernelMirror } from '../../src/kernel/kernel-mirror.ts';
import { FR_ACT_GOTO, FR_ACT_NOP, FR_ACT_TO_TBL, FR_ACT_UNREACHABLE, RTN_BLACKHOLE, RTN_UNREACHABLE } from '../../src/kernel/netlink/constants.ts';
import { Nft } from '../../src/kernel/nft/nft.ts';
import type { Ownership } from '../../src/kernel/reconciler/ownership.ts';
import { type DesiredKernelState, Reconciler } from '../../src/kernel/reconciler/reconciler.ts';
import { normalizeRoute, routeBaseKey } from '../../src/kernel/rtnetlink/route.ts';
import { normalizeRule, ruleKey } from '../../src/kernel/rtnetlink/rule.ts';
import type { Route, Rule } from '../../src/kernel/rtnetlink/types.ts';
import { kernelCanon, routeCanon, ruleCanon } from '../helpers/ip-json.ts';
import { ipBatch, isRoot, makeNetns, sh } from '../helpers/netns.ts';
import { Random, seedFromEnv } from '../helpers/random.ts';

const skip = !isRoot() && 'needs root (network namespaces)';

const OWN: Ownership = {
  protocol: 83,
  rulePriorities: { min: 10000, max: 10099 },
  tables: { min: 70000, max: 70007 },
  sharedTables: [254],
  nftTable: { family: 'inet', name: 'nsprop' },
};

/** Reject routes have no device (IPv6 reports lo): compare them without it. */
const canonRoute = (line: string): string => (/ type=[6-9] /.test(line) ? line.replace(/ dev=\S*/, ' dev=') : line);

function ownedLine(line: string): boolean {
  const proto = Number(/ proto=(\d+)/.exec(line)?.[1]);
  if (proto !== OWN.protocol) return false;
  if (line.startsWith('route')) {
    const table = Number(/ t=(\d+)/.exec(line)?.[1]);
    return (table >= OWN.tables.min && table <= OWN.tables.max) || OWN.sharedTables.includes(table);
  }
  const prio = Number(/^rule \d+ (\d+)/.exec(line)?.[1]);
  return prio >= OWN.rulePriorities.min && prio <= OWN.rulePriorities.max;
}

function split(ns: string): { ours: string[]; foreign: string[] } {
  const k = kernelCanon(ns);
  const all = [...k.routes.map(canonRoute), ...k.rules];
  return { ours: all.filter(ownedLine).sort(), foreign: all.filter((l) => !ownedLine(l)).sort() };
}

function randomDesired(rnd: Random, oif: number): DesiredKernelState {
  const routes = new Map<string, Route>();
  const rules = new Map<string, Rule>();
  const ourTable = (): number => rnd.int(OWN.tables.min, OWN.tables.max);
  for (let i = rnd.int(0, 40); i > 0; i--) {
    const v6 = rnd.chance(0.4);
    const table = rnd.chance(0.15) ? 254 : ourTable();
    const dflt = table === 254 || rnd.chance(0.3);
    const dst = dflt ? 'default' : v6 ? `2001:db8:${rnd.int(1, 4)}::` : `198.18.${rnd.int(0, 3)}.${rnd.int(0, 3) * 64}`;
    const reject = !dflt || table !== 254 ? rnd.chance(0.25) : false;
    const r = normalizeRoute({
      family: v6 ? 10 : 2,
      table,
      dst,
      dstLen: dflt ? 0 : v6 ? 64 : 26,
      protocol: OWN.protocol,
      priority: table === 254 ? rnd.pick([500, 600]) : rnd.pick(v6 ? [1024, 100, 200] : [0, 100, 200]),
      ...(reject ? { type: rnd.pick([RTN_UNREACHABLE, RTN_BLACKHOLE]) } : { gateway: v6 ? `2001:db8::${rnd.int(1, 3)}` : `192.0.2.${rnd.int(1, 3)}`, oif }),
    });
    routes.set(routeBaseKey(r), r);
    if (r.gateway !== undefined && table !== 254) {
      // as in a service's table: the on-link prefix its gateway is reached through
      const onlink = normalizeRoute({ family: r.family, table, dst: v6 ? '2001:db8::' : '192.0.2.0', dstLen: v6 ? 64 : 24, oif, protocol: OWN.protocol, priority: v6 ? 256 : 0 });
      routes.set(routeBaseKey(onlink), onlink);
    }
  }
  for (let i = rnd.int(0, 30); i > 0; i--) {
    const family = rnd.chance(0.4) ? 10 : 2;
    const sel = rnd.int(0, 3);
    const r = normalizeRule({
      family,
      priority: rnd.int(OWN.rulePriorities.min, OWN.rulePriorities.max),
      protocol: OWN.protocol,
      action: rnd.chance(0.2) ? FR_ACT_UNREACHABLE : FR_ACT_TO_TBL,
      table: ourTable(),
      ...(sel === 0 ? { fwmark: 0x1000 + rnd.int(0, 7), fwmask: rnd.pick([0xffff, 0xffffffff]) } : {}),
      ...(sel === 1 ? { src: family === 2 ? '192.0.2.10' : '2001:db8::10' } : {}),
      ...(sel === 2 ? { uidRange: { start: 1000 + rnd.int(0, 3), end: 1005 } } : {}),
      ...(sel === 3 ? { iifname: 'lo', fwmark: 0x2000 + rnd.int(0, 3) } : {}),
    });
    if (r.action === FR_ACT_UNREACHABLE) r.table = 0;
    rules.set(ruleKey(r), r);
  }
  return { routes: [...routes.values()], rules: [...rules.values()] };
}

function randomForeign(rnd: Random, round: number): string[] {
  const lines: string[] = [];
  for (let i = rnd.int(3, 10); i > 0; i--) {
    const n = round * 16 + i;
    switch (rnd.int(0, 5)) {
      case 0: // in our table range, but not our protocol
        lines.push(`route add 203.0.113.${n % 250}/32 via 192.0.2.1 table ${rnd.int(OWN.tables.min, OWN.tables.max)} proto static`);
        break;
      case 1: // our protocol, but outside our tables
        lines.push(`route add 203.0.113.${n % 250}/32 via 192.0.2.2 table ${rnd.int(100, 110)} proto 83`);
        break;
      case 2: // in main, someone else's
        lines.push(`route add 203.0.113.${n % 250}/32 via 192.0.2.3 proto boot`);
        break;
      case 3: // in our band, not our protocol
        lines.push(`rule add fwmark ${0x3000 + n} table 100 prio ${rnd.int(OWN.rulePriorities.min, OWN.rulePriorities.max)}`);
        break;
      case 4: // our protocol, outside our band
        lines.push(`rule add fwmark ${0x4000 + n} table 100 prio ${rnd.int(200, 300)} proto 83`);
        break;
      default:
        lines.push(`-6 rule add from 2001:db8::${n.toString(16)} table 100 prio ${rnd.int(OWN.rulePriorities.min, OWN.rulePriorities.max)}`);
    }
  }
  return lines;
}

const expected = (d: DesiredKernelState): string[] => [...d.routes.map((r) => canonRoute(routeCanon(r))), ...d.rules.map(ruleCanon)].sort();

test('reconciler property: ours equal desired, foreign untouched, idempotent, restart-safe', { skip }, async (t) => {
  const seed = seedFromEnv();
  t.diagnostic(`seed ${seed} (TEST_SEED=${seed} replays it)`);
  const rnd = new Random(seed);
  const ns = makeNetns(t, 'r');
  let mirror: KernelMirror = await openKernelMirror({ netns: ns });
  t.after(() => mirror.close());
  const nft = new Nft({ netns: ns });
  let rec = new Reconciler(mirror, nft, OWN);
  const oif = mirror.state.linkByName('t0')!.index;

  for (let round = 0; round < 12; round++) {
    ipBatch(ns, randomForeign(rnd, round), true);
    const before = split(ns).foreign;
    const desired = randomDesired(rnd, oif);
    const report = await rec.reconcile(desired);
    assert.deepEqual(report.errors, [], `round ${round} (seed ${seed}): errors`);
    assert.deepEqual(report.conflicts, [], `round ${round}: conflicts`);
    const after = split(ns);
    assert.deepEqual(after.ours, expected(desired), `round ${round} (seed ${seed}): ours equal desired`);
    assert.deepEqual(after.foreign, before, `round ${round} (seed ${seed}): foreign untouched`);
    const again = await rec.reconcile(desired);
    assert.equal(again.unchanged, true, `round ${round} (seed ${seed}): second reconcile changed ${JSON.stringify({ ...again, errors: again.errors.map(String) })}`);
    if (round % 4 === 3) {
      // restart: a new mirror and reconciler find our old objects and remove what is stale
      mirror.close();
      mirror = await openKernelMirror({ netns: ns });
      rec = new Reconciler(mirror, nft, OWN);
    }
  }
  // and finally nothing of ours is left
  const before = split(ns).foreign;
  await rec.reconcile({ routes: [], rules: [] });
  assert.deepEqual(split(ns).ours, []);
  assert.deepEqual(split(ns).foreign, before);
});

test('reconciler changes a route in place and reports foreign conflicts without touching them', { skip }, async (t) => {
  const ns = makeNetns(t, 'c');
  const mirror = await openKernelMirror({ netns: ns });
  t.after(() => mirror.close());
  const rec = new Reconciler(mirror, new Nft({ netns: ns }), OWN);
  const oif = mirror.state.linkByName('t0')!.index;
  const route = (gw: string): Route => normalizeRoute({ table: 70001, dst: 'default', gateway: gw, oif, protocol: 83 });
  await rec.reconcile({ routes: [route('192.0.2.1')], rules: [] });
  const r = await rec.reconcile({ routes: [route('192.0.2.2')], rules: [] });
  assert.equal(r.routes.replaced, 1);
  assert.match(kernelCanon(ns).routes.join('\n'), /t=70001 0\.0\.0\.0\/0 type=1 metric=0 proto=83 gw=192\.0\.2\.2/);
  // a foreign default route in main with the metric we want: reported, left alone
  ipBatch(ns, ['route add default via 192.0.2.3 metric 500']);
  const mainDefault = normalizeRoute({ table: 254, dst: 'default', gateway: '192.0.2.1', oif, protocol: 83, priority: 500 });
  const c = await rec.reconcile({ routes: [mainDefault], rules: [] });
  assert.equal(c.conflicts.length, 1);
  assert.match(kernelCanon(ns).routes.join('\n'), /t=254 0\.0\.0\.0\/0 type=1 metric=500 proto=3 gw=192\.0\.2\.3/);
});

test('reconciler refuses desired objects outside its ownership', { skip }, async (t) => {
  const ns = makeNetns(t, 'o');
  const mirror = await openKernelMirror({ netns: ns });
  t.after(() => mirror.close());
  const rec = new Reconciler(mirror, new Nft({ netns: ns }), OWN);
  const before = kernelCanon(ns);
  await assert.rejects(rec.reconcile({ routes: [normalizeRoute({ table: 100, dst: 'default', type: RTN_UNREACHABLE, protocol: 83 })], rules: [] }), /outside/);
  await assert.rejects(rec.reconcile({ routes: [], rules: [normalizeRule({ family: 2, priority: 5, protocol: 83, table: 70000 })] }), /outside/);
  await assert.rejects(rec.reconcile({ routes: [], rules: [normalizeRule({ family: 2, priority: 10001, protocol: 4, table: 70000 })] }), /outside/);
  assert.deepEqual(kernelCanon(ns), before);
});

test('reconciler owns the addresses it tags (IFA_PROTO) and only those', { skip }, async (t) => {
  const ns = makeNetns(t, 'a');
  const mirror = await openKernelMirror({ netns: ns });
  t.after(() => mirror.close());
  const rec = new Reconciler(mirror, new Nft({ netns: ns }), OWN);
  const t0 = mirror.state.linkByName('t0')!.index;
  const addrs = (): string[] =>
    kernelCanon(ns)
      .addresses.filter((l) => !l.includes(' fe80:'))
      .sort();
  const before = addrs();
  const desired = { routes: [normalizeRoute({ family: 2, table: 70001, dst: '198.51.100.0', dstLen: 24, oif: t0, prefsrc: '198.51.100.5', protocol: 83 })], rules: [], addresses: [{ index: t0, address: '198.51.100.5', prefixLen: 24, broadcast: '198.51.100.255' }] };
  const r = await rec.reconcile(desired);
  assert.deepEqual(r.errors, []);
  assert.equal(r.addresses.added, 1);
  assert.ok(addrs().some((l) => l.includes(' 198.51.100.5/24 ')));
  assert.equal([...mirror.state.addresses.values()].find((a) => a.address === '198.51.100.5')?.protocol, 83);
  assert.equal((await rec.reconcile(desired)).unchanged, true);
  // the kernel's own 192.0.2.10 (no tag) is never ours, even when not desired
  const gone = await rec.reconcile({ routes: [], rules: [], addresses: [] });
  assert.equal(gone.addresses.deleted, 1);
  assert.deepEqual(addrs(), before);
});

test('a goto rule that only changes its target is replaced (the kernel compares rules without the target)', { skip }, async (t) => {
  const ns = makeNetns(t, 'g');
  const mirror = await openKernelMirror({ netns: ns });
  t.after(() => mirror.close());
  const rec = new Reconciler(mirror, new Nft({ netns: ns }), OWN);
  const rules = (target: number): Rule[] => [
    normalizeRule({ family: 2, priority: 10010, protocol: 83, fwmark: 0x4000_0001, action: FR_ACT_GOTO, goto: target }),
    normalizeRule({ family: 2, priority: 10050, protocol: 83, action: FR_ACT_NOP }),
    normalizeRule({ family: 2, priority: 10060, protocol: 83, action: FR_ACT_NOP }),
  ];
  const show = (): string => sh('ip', ['-n', ns, 'rule', 'show', 'pref', '10010']);
  assert.deepEqual((await rec.reconcile({ routes: [], rules: rules(10050) })).errors, []);
  assert.match(show(), /goto 10050/);
  const r = await rec.reconcile({ routes: [], rules: rules(10060) });
  assert.deepEqual(r.errors, []);
  assert.match(show(), /goto 10060/);
  assert.equal(show().trim().split('\n').length, 1, show());
  assert.equal((await rec.reconcile({ routes: [], rules: rules(10060) })).unchanged, true);
});
