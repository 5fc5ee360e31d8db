// netsessiond (still a stub) starts in a namespace, reports what it observes, and stops cleanly on SIGTERM.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { isRoot, makeNetns } from '../helpers/netns.ts';

const skip = !isRoot() && 'needs root (network namespaces)';
const BIN = fileURLToPath(new URL('../../bin/netsessiond.js', import.meta.url));

test('netsessiond starts, watches the kernel and stops on SIGTERM with exit code 0', { skip }, async (t) => {
  const ns = makeNetns(t, 'd');
  const d = spawn('ip', ['netns', 'exec', ns, process.execPath, BIN], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  d.stderr.setEncoding('utf8').on('data', (s: string) => {
    err += s;
  });
  t.after(() => d.kill('SIGKILL'));
  const deadline = Date.now() + 10000;
  while (!/started/.test(err) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.match(err, /started: 3 links/);
  const t0 = Date.now();
  d.kill('SIGTERM');
  const [code] = (await once(d, 'exit')) as [number | null];
  assert.equal(code, 0);
  assert.ok(Date.now() - t0 < 2000, `stopped in ${Date.now() - t0} ms`);
  assert.match(err, /SIGTERM: stopping/);
});
