// Persisted settings: atomic writes, a write that cannot happen (said once, the previous
// version kept), files that are not valid (ignored, the others loaded).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Lease } from '../../src/bearers/dhcp/machine.ts';
import { defaultSettings } from '../../src/engine/engine.ts';
import { createLogger } from '../../src/daemon/log.ts';
import { StateStore } from '../../src/daemon/state-store.ts';

function store(t: { after: (f: () => void) => void }): { dir: string; lines: string[]; make: () => StateStore } {
  const dir = mkdtempSync(join(tmpdir(), 'nst-store-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const lines: string[] = [];
  return { dir, lines, make: () => new StateStore(dir, createLogger('debug', 'test', (l) => lines.push(l))) };
}

test('settings survive a new store; no temporary file is left', (t) => {
  const { dir, make } = store(t);
  const a = make();
  const s = { ...defaultSettings(65537), autoConnect: false, nameservers: ['192.0.2.53'] };
  assert.equal(a.saveService('ethernet_020000000001_cable', s), true);
  assert.equal(a.saveGlobal({ offlineMode: true, powered: { ethernet: false } }), true);
  const b = make();
  assert.deepEqual(b.loadServices().get('ethernet_020000000001_cable'), { ...s, immutable: false });
  assert.deepEqual(b.loadGlobal(), { offlineMode: true, powered: { ethernet: false } });
  assert.deepEqual(readdirSync(join(dir, 'services')), ['ethernet_020000000001_cable.json']);
  assert.equal(a.saveService('../escape', s), false, 'ids are checked');
});

test('a lease survives a new store until it is forgotten; a file that is not a lease is said and ignored', (t) => {
  const { dir, lines, make } = store(t);
  const T0 = 1_700_000_000_000;
  const lease: Lease = {
    address: '192.0.2.77', prefixLen: 24, router: '192.0.2.1', dns: ['192.0.2.53'], searchDomains: [], ntp: [],
    leaseSeconds: 3600, t1: 1800, t2: 3150, serverId: '192.0.2.1', acquiredAt: T0, renewAt: T0 + 1_800_000, rebindAt: T0 + 3_150_000, expiresAt: T0 + 3_600_000,
  };
  const a = make();
  assert.equal(a.saveLease('ethernet_020000000001_cable', lease), true);
  assert.equal(a.saveLease('../escape', lease), false, 'ids are checked');
  writeFileSync(join(dir, 'leases', 'ethernet_020000000002_cable.json'), JSON.stringify({ address: '127.0.0.1' }));
  const b = make();
  assert.deepEqual([...b.loadLeases()], [['ethernet_020000000001_cable', lease]]);
  assert.ok(lines.some((l) => l.includes('ignoring ethernet_020000000002_cable.json: not valid lease')), lines.join(''));
  b.forgetLease('ethernet_020000000001_cable');
  b.forgetLease('ethernet_020000000009_cable');
  assert.deepEqual([...make().loadLeases()], []);
  // forgotten, then the same lease again: written (the store does not think the file is still there)
  assert.equal(b.saveLease('ethernet_020000000001_cable', lease), true);
  assert.deepEqual([...make().loadLeases().keys()], ['ethernet_020000000001_cable']);
});

test('a daemon killed while it wrote leaves a temporary file: the next one removes it and keeps the whole version', (t) => {
  const { dir, make } = store(t);
  const s = { ...defaultSettings(65537), autoConnect: false };
  make().saveService('ethernet_020000000001_cable', s);
  // what a SIGKILL between write and rename leaves (half a file, under another pid)
  writeFileSync(join(dir, 'services', 'ethernet_020000000001_cable.json.tmp-4242'), '{"autoConn');
  writeFileSync(join(dir, 'settings.json.tmp-4243'), '');
  writeFileSync(join(dir, 'services', 'notes.txt'), 'not ours to remove');
  const b = make();
  assert.deepEqual(readdirSync(join(dir, 'services')).sort(), ['ethernet_020000000001_cable.json', 'notes.txt']);
  assert.deepEqual(readdirSync(dir).sort(), ['leases', 'services']);
  assert.deepEqual(b.loadServices().get('ethernet_020000000001_cable'), { ...s, immutable: false });
});

test('a write that fails keeps the previous version and is said once, and again when it works', (t) => {
  const { dir, lines, make } = store(t);
  const a = make();
  const id = 'ethernet_020000000002_cable';
  a.saveService(id, defaultSettings(65538));
  const before = readFileSync(join(dir, 'services', `${id}.json`), 'utf8');
  // the services directory is replaced by a file: every write fails (as on a read-only or full disk)
  renameSync(join(dir, 'services'), join(dir, 'kept'));
  writeFileSync(join(dir, 'services'), 'not a directory');
  for (let i = 0; i < 5; i++) assert.equal(a.saveService(id, { ...defaultSettings(65538), order: i + 1 }), false);
  assert.equal(lines.filter((l) => l.includes(' ERROR ') && l.includes('cannot save')).length, 1, lines.join(''));
  rmSync(join(dir, 'services'));
  renameSync(join(dir, 'kept'), join(dir, 'services'));
  assert.equal(readFileSync(join(dir, 'services', `${id}.json`), 'utf8'), before, 'the previous version is intact');
  assert.equal(a.saveService(id, { ...defaultSettings(65538), order: 9 }), true);
  assert.ok(lines.some((l) => l.includes('saved again')));
  assert.equal(make().loadServices().get(id)?.order, 9);
});

test('broken files are ignored with a warning, the others load', (t) => {
  const { dir, lines, make } = store(t);
  const a = make();
  a.saveService('ethernet_020000000003_cable', defaultSettings(65539));
  writeFileSync(join(dir, 'services', 'ethernet_020000000004_cable.json'), '{"autoConnect": tru');
  writeFileSync(join(dir, 'services', 'ethernet_020000000005_cable.json'), JSON.stringify({ ...defaultSettings(65540), ipv4: { method: 'manual', address: '999.0.0.1' } }));
  writeFileSync(join(dir, 'settings.json'), '[]');
  const b = make();
  assert.deepEqual([...b.loadServices().keys()], ['ethernet_020000000003_cable']);
  assert.deepEqual(b.loadGlobal(), { offlineMode: false, powered: {} });
  assert.equal(lines.filter((l) => l.includes(' WARN ')).length, 2, lines.join(''));
});
