// 20,000 route adds while our event loop is blocked: the monitor socket overflows
// (ENOBUFS), the process lives on, and after a resync the mirror equals the kernel; what
// the lost events would have told reaches the listeners after the resync.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { openKernelMirror } from '../../src/kernel/kernel-mirror.ts';
import type { RtEvent } from '../../src/kernel/rtnetlink/events.ts';
import { kernelCanon, mirrorCanon } from '../helpers/ip-json.ts';
import { ipBatch, isRoot, makeNetns } from '../helpers/netns.ts';

const skip = !isRoot() && 'needs root (network namespaces)';

async function storm(rcvbuf: number | undefined): Promise<{ overflows: number; resyncs: number }> {
  const ns = makeNetns(undefined, 's');
  const { deleteNetns } = await import('../helpers/netns.ts');
  try {
    const warnings: string[] = [];
    const m = await openKernelMirror({ netns: ns, rcvbuf, onWarning: (w) => warnings.push(w) });
    try {
      let batch = '';
      for (let i = 0; i < 20000; i++) batch += `route add 198.18.${i >> 8}.${i & 255}/32 via 192.0.2.${1 + (i % 4)} table ${1000 + (i % 7)}\n`;
      const child = spawn('ip', ['-n', ns, '-batch', '-'], { stdio: ['pipe', 'ignore', 'inherit'] });
      child.stdin.end(batch);
      // keep the event loop busy while the kernel announces the routes
      const until = Date.now() + 1500;
      while (Date.now() < until) {
        /* busy */
      }
      const [code] = (await once(child, 'close')) as [number];
      assert.equal(code, 0);
      await m.settle();
      const k = kernelCanon(ns);
      const o = mirrorCanon(m.state);
      assert.equal(o.routes.length, k.routes.length);
      assert.deepEqual(o.routes, k.routes);
      assert.ok(m.state.routes.size > 20000);
      return { overflows: m.stats.overflows, resyncs: m.stats.resyncs };
    } finally {
      m.close();
    }
  } finally {
    deleteNetns(ns);
  }
}

test('storm with a small receive buffer: ENOBUFS, resync, mirror equals kernel', { skip }, async () => {
  const s = await storm(64 * 1024);
  assert.ok(s.overflows >= 1, 'the small buffer should have overflowed');
  assert.ok(s.resyncs >= 2, 'an overflow must lead to a resync');
});

test('storm with the default receive buffer: mirror equals kernel', { skip }, async () => {
  await storm(undefined);
});

test('overflow: changes whose events were lost reach the listeners after the resync, and no older event is replayed over the dump', { skip }, async (t) => {
  const ns = makeNetns(t, 's');
  ipBatch(ns, ['rule add from 192.0.2.99 table 100 prio 1000 proto 83', 'route add 198.18.200.0/24 via 192.0.2.1 table 100']);
  const m = await openKernelMirror({ netns: ns, rcvbuf: 64 * 1024 });
  t.after(() => m.close());
  const seen: RtEvent[] = [];
  m.onEvent((ev) => seen.push(ev));
  // routes that come and go (their later events are lost), then the changes that matter: t0
  // loses its carrier (its peer goes down), a rule and a route go
  let batch = '';
  for (let i = 0; i < 6000; i++) batch += `route add 198.18.${i >> 8}.${i & 255}/32 via 192.0.2.1 table 1000\n`;
  for (let i = 0; i < 6000; i++) batch += `route del 198.18.${i >> 8}.${i & 255}/32 via 192.0.2.1 table 1000\n`;
  batch += 'link set t1 down\nrule del from 192.0.2.99 table 100 prio 1000\nroute del 198.18.200.0/24 via 192.0.2.1 table 100\n';
  // our event loop is blocked while the kernel announces it all
  const r = spawnSync('ip', ['-n', ns, '-batch', '-'], { input: batch, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  await m.settle();
  assert.ok(m.stats.overflows >= 1, 'the small buffer should have overflowed');
  const k = kernelCanon(ns);
  const o = mirrorCanon(m.state);
  assert.deepEqual(o.routes, k.routes, 'no route of table 1000 left in the mirror');
  assert.deepEqual(o.links, k.links);
  assert.deepEqual(o.rules, k.rules);
  const t0 = m.state.linkByName('t0');
  assert.equal(t0?.lowerUp, false);
  assert.ok(seen.some((e) => e.kind === 'link' && e.link.name === 't0' && !e.link.lowerUp), 'a listener heard that t0 lost its carrier');
  assert.ok(seen.some((e) => e.kind === 'rule' && e.op === 'del' && e.rule.src === '192.0.2.99'), 'a listener heard that the rule went');
  assert.ok(seen.some((e) => e.kind === 'route' && e.op === 'del' && e.route.dst === '198.18.200.0' && e.route.table === 100), 'a listener heard that the route went');
  assert.ok(m.stats.missed >= 3, `changes told after the resync: ${m.stats.missed}`);
});
