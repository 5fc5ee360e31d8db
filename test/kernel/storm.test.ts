// 20,000 route adds while our event loop is blocked: the monitor socket overflows
// (ENOBUFS), the process lives on, and after a resync the mirror equals the kernel.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { openKernelMirror } from '../../src/kernel/kernel-mirror.ts';
import { kernelCanon, mirrorCanon } from '../helpers/ip-json.ts';
import { isRoot, makeNetns } from '../helpers/netns.ts';

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
