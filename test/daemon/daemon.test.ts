// netsessiond on bad start conditions: a clear message, exit code 1, nothing left behind; and
// a bus that goes away under a running daemon: a clear message and exit code 1 at once.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { renderBusConfig } from '../../src/lab/bus-config.ts';
import { waitFor } from '../helpers/connman.ts';
import { ipIn, isRoot, makeNetns } from '../helpers/netns.ts';

const skip = !isRoot() && 'needs root (network namespaces)';
const BIN = fileURLToPath(new URL('../../bin/netsessiond.js', import.meta.url));

async function run(ns: string, args: string[]): Promise<{ code: number | null; err: string }> {
  const d = spawn('ip', ['netns', 'exec', ns, process.execPath, BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  d.stderr.setEncoding('utf8').on('data', (s: string) => {
    err += s;
  });
  const timer = setTimeout(() => d.kill('SIGKILL'), 15_000);
  const [code] = (await once(d, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, err };
}

test('no bus to talk to: a clear error, exit code 1, no kernel state left', { skip }, async (t) => {
  const ns = makeNetns(t, 'd');
  const dir = mkdtempSync(join(tmpdir(), 'nsd-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const r = await run(ns, ['--bus', `unix:path=${dir}/no-such-socket`, '--state-dir', `${dir}/state`]);
  assert.equal(r.code, 1);
  assert.match(r.err, /cannot start/);
  const rules = JSON.parse(ipIn(ns, '-j', 'rule')) as { protocol?: string }[];
  assert.deepEqual(rules.filter((r) => r.protocol === '83'), []);
  assert.equal(ipIn(ns, 'route', 'show', 'table', 'all', 'proto', '83').trim(), '');
});

test('bad flags and a missing config file: readable errors, non-zero exit', { skip }, async (t) => {
  const ns = makeNetns(t, 'e');
  const bad = await run(ns, ['--log-level', 'loud']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.err, /log-level|one of error, warn, info, debug/);
  const dir = mkdtempSync(join(tmpdir(), 'nsd-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const missing = await run(ns, ['--config', `${dir}/nope.conf`, '--bus', `unix:path=${dir}/x`]);
  assert.equal(missing.code, 1);
  assert.match(missing.err, /nope\.conf/);
  writeFileSync(`${dir}/garbage.conf`, '\u0000\u0001 this is not a key file [[[');
  const garbage = await run(ns, ['--config', `${dir}/garbage.conf`, '--bus', `unix:path=${dir}/x`, '--state-dir', `${dir}/s`]);
  assert.equal(garbage.code, 1, 'still fails for the missing bus, but the config problems are reported, not fatal');
  assert.match(garbage.err, /config:/);
});

test('the bus goes away under a running daemon: a clear error and exit code 1 at once (for the supervisor to start it again)', { skip }, async (t) => {
  const ns = makeNetns(t, 'f');
  const dir = mkdtempSync(join(tmpdir(), 'nsd-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const address = `unix:path=${dir}/bus`;
  writeFileSync(`${dir}/bus.conf`, renderBusConfig({ labName: 'daemon-test', listenAddress: address }));
  const bus = spawn('dbus-daemon', [`--config-file=${dir}/bus.conf`, '--nofork', '--nopidfile', '--nosyslog'], { stdio: 'ignore' });
  t.after(() => bus.kill('SIGKILL'));
  await waitFor('the bus socket', async () => existsSync(`${dir}/bus`) && statSync(`${dir}/bus`).isSocket(), 5000);
  const d = spawn('ip', ['netns', 'exec', ns, process.execPath, BIN, '--bus', address, '--state-dir', `${dir}/state`], { stdio: ['ignore', 'ignore', 'pipe'] });
  t.after(() => d.kill('SIGKILL'));
  let err = '';
  d.stderr.setEncoding('utf8').on('data', (x: string) => {
    err += x;
  });
  const exited = once(d, 'exit') as Promise<[number | null]>;
  await waitFor('the daemon on the bus', async () => /started:/.test(err), 15_000, 50);
  bus.kill('SIGKILL');
  const t0 = performance.now();
  const [code] = await Promise.race([exited, new Promise<[null]>((resolve) => setTimeout(() => resolve([null]), 5000))]);
  assert.equal(code, 1, `exit code (stderr: ${err.slice(-500)})`);
  assert.ok(performance.now() - t0 < 3000, 'at once');
  // (why the socket ended depends on what the daemon was doing: EOF on a read, EPIPE on a write)
  assert.match(err, /lost the D-Bus connection \((the bus closed the connection|write EPIPE|read ECONNRESET)\): exiting/);
});
