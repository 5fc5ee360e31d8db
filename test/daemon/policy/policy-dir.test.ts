// The live policy directory on a real file system (a unique temp dir, no root needed):
// every kind of change reaches onChange, broken files are reported and ignored, a missing
// directory is fine and noticed when it appears, close() leaves nothing running.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import type { PolicyGroup } from '../../../src/engine/session-types.ts';
import { PolicyDirectory, type PolicyDirectoryOptions } from '../../../src/daemon/policy/policy-dir.ts';

/** generous: the measured latency is reported as a diagnostic */
const BOUND_MS = 2000;

interface Harness {
  root: string;
  dir: string;
  pd: PolicyDirectory;
  logs: string[];
  /** resolves with the next onChange's groups and the time since `since` */
  next(since?: number): Promise<{ groups: PolicyGroup[]; ms: number }>;
  changes: number;
  latencies: number[];
}

function tempRoot(t: TestContext): string {
  const root = mkdtempSync(`/tmp/netsession-policy-${process.pid}-`);
  t.after(() => rmSync(root, { recursive: true, force: true }));
  return root;
}

function harness(t: TestContext, opts: Partial<PolicyDirectoryOptions> & { subdir?: string; root?: string } = {}): Harness {
  const root = opts.root ?? tempRoot(t);
  const dir = join(root, opts.subdir ?? 'session_policy');
  writeFileSync(join(root, 'passwd'), 'root:x:0:0::/root:/bin/sh\nnavi:x:1001:1001::/:/bin/sh\n');
  writeFileSync(join(root, 'group'), 'root:x:0:\nmedia:x:1002:\n');
  let waiter: ((g: PolicyGroup[]) => void) | undefined;
  const h: Harness = {
    root,
    dir,
    logs: [],
    changes: 0,
    latencies: [],
    pd: undefined as unknown as PolicyDirectory,
    next(since = performance.now()) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiter = undefined;
          reject(new Error(`no onChange within ${BOUND_MS} ms; log:\n${h.logs.join('\n')}`));
        }, BOUND_MS);
        waiter = (groups) => {
          clearTimeout(timer);
          waiter = undefined;
          const ms = performance.now() - since;
          h.latencies.push(ms);
          resolve({ groups, ms });
        };
      });
    },
  };
  h.pd = new PolicyDirectory({
    dir,
    passwdFile: join(root, 'passwd'),
    groupFile: join(root, 'group'),
    log: (level, m) => h.logs.push(`${level}: ${m}`),
    onChange: (g) => {
      h.changes++;
      waiter?.(g);
    },
    ...opts,
  });
  t.after(() => h.pd.close());
  return h;
}

const names = (gs: readonly PolicyGroup[]): string[] => gs.map((g) => `${g.file}:${g.name}`);
const policy = (group: string, body = 'uid = navi'): string => `[${group}]\n${body}\n`;

function report(t: TestContext, h: Harness): void {
  const l = h.latencies;
  if (l.length > 0) t.diagnostic(`onChange latency over ${l.length} changes: min ${Math.min(...l).toFixed(1)} ms, max ${Math.max(...l).toFixed(1)} ms, mean ${(l.reduce((a, b) => a + b, 0) / l.length).toFixed(1)} ms; last reload ${h.pd.lastReload?.ms.toFixed(2)} ms for ${h.pd.lastReload?.files} files`);
}

describe('PolicyDirectory', () => {
  test('initial load: good files in name order, a broken file next to them is reported and ignored', (t) => {
    const h = harness(t);
    mkdirSync(h.dir);
    writeFileSync(join(h.dir, 'b.policy'), policy('policy_b') + policy('policy_b2', 'gid = media'));
    writeFileSync(join(h.dir, 'a.policy'), policy('policy_a', 'uid = 7'));
    writeFileSync(join(h.dir, 'broken.policy'), 'not a key file\n');
    writeFileSync(join(h.dir, 'half.policy'), policy('ok', 'uid = 1') + policy('bad', 'uid = ghost'));
    writeFileSync(join(h.dir, '.hidden.policy'), policy('hidden'));
    writeFileSync(join(h.dir, 'notes.txt'), policy('txt'));
    mkdirSync(join(h.dir, 'dir.policy'));
    const gs = h.pd.start();
    assert.deepEqual(names(gs), ['a.policy:policy_a', 'b.policy:policy_b', 'b.policy:policy_b2', 'half.policy:ok']);
    assert.deepEqual(gs[1]?.match, { uid: 1001 });
    assert.deepEqual(gs[2]?.match, { gid: 1002 });
    assert.ok(h.logs.some((l) => l.startsWith('warn: broken.policy: not a key file')), h.logs.join('\n'));
    assert.ok(h.logs.some((l) => l.startsWith('warn: half.policy [bad]: group skipped')), h.logs.join('\n'));
    assert.ok(h.logs.some((l) => l.startsWith('warn: dir.policy: not a regular file')), h.logs.join('\n'));
    assert.equal(h.changes, 0, 'start() returns the initial groups; onChange is for changes');
    assert.deepEqual(h.pd.groups, gs);
  });

  test('create, rewrite in place, atomic rename, rename away, delete: each reaches onChange', async (t) => {
    const h = harness(t);
    mkdirSync(h.dir);
    writeFileSync(join(h.dir, 'm.policy'), policy('m'));
    assert.deepEqual(names(h.pd.start()), ['m.policy:m']);

    // create
    let since = performance.now();
    let p = h.next(since);
    writeFileSync(join(h.dir, 'n.policy'), policy('n'));
    assert.deepEqual(names((await p).groups), ['m.policy:m', 'n.policy:n']);

    // rewrite in place, same size (a same-size rewrite within one timestamp tick must not be missed)
    since = performance.now();
    p = h.next(since);
    writeFileSync(join(h.dir, 'n.policy'), policy('N'));
    assert.deepEqual(names((await p).groups), ['m.policy:m', 'n.policy:N']);

    // an editor's atomic save: write a hidden temporary file, rename it over the old one
    writeFileSync(join(h.dir, '.n.policy.tmp'), policy('n_atomic', 'uid = 1001\nAllowedBearers = wifi'));
    await new Promise((r) => setTimeout(r, 150)); // the temporary file alone changes nothing
    since = performance.now();
    p = h.next(since);
    renameSync(join(h.dir, '.n.policy.tmp'), join(h.dir, 'n.policy'));
    const atomic = (await p).groups;
    assert.deepEqual(names(atomic), ['m.policy:m', 'n.policy:n_atomic']);
    assert.deepEqual(atomic[1]?.allowedBearers, ['wifi']);

    // renamed into the directory from elsewhere
    writeFileSync(join(h.root, 'outside.policy'), policy('moved_in', 'gid = 5'));
    since = performance.now();
    p = h.next(since);
    renameSync(join(h.root, 'outside.policy'), join(h.dir, 'a.policy'));
    assert.deepEqual(names((await p).groups), ['a.policy:moved_in', 'm.policy:m', 'n.policy:n_atomic']);

    // renamed away (out of the directory, and to a name that is not a policy)
    since = performance.now();
    p = h.next(since);
    renameSync(join(h.dir, 'a.policy'), join(h.root, 'away.policy'));
    assert.deepEqual(names((await p).groups), ['m.policy:m', 'n.policy:n_atomic']);
    since = performance.now();
    p = h.next(since);
    renameSync(join(h.dir, 'm.policy'), join(h.dir, 'm.policy.disabled'));
    assert.deepEqual(names((await p).groups), ['n.policy:n_atomic']);

    // deleted
    since = performance.now();
    p = h.next(since);
    unlinkSync(join(h.dir, 'n.policy'));
    assert.deepEqual((await p).groups, []);

    report(t, h);
    for (const ms of h.latencies) assert.ok(ms < BOUND_MS);
  });

  test('a file that breaks keeps the others working, and counts again once fixed', async (t) => {
    const h = harness(t);
    mkdirSync(h.dir);
    writeFileSync(join(h.dir, 'good.policy'), policy('good'));
    writeFileSync(join(h.dir, 'other.policy'), policy('other', 'uid = 5'));
    h.pd.start();
    let p = h.next();
    writeFileSync(join(h.dir, 'other.policy'), '[other\nuid = 5\n');
    assert.deepEqual(names((await p).groups), ['good.policy:good']);
    assert.ok(h.logs.some((l) => l.startsWith('warn: other.policy: not a key file')), h.logs.join('\n'));
    p = h.next();
    writeFileSync(join(h.dir, 'other.policy'), policy('other', 'uid = 5'));
    assert.deepEqual(names((await p).groups), ['good.policy:good', 'other.policy:other']);
    // a world-writable policy file could grant anyone EmergencyCall: refused
    p = h.next();
    chmodSync(join(h.dir, 'other.policy'), 0o666);
    assert.deepEqual(names((await p).groups), ['good.policy:good']);
    assert.ok(h.logs.some((l) => l.startsWith('warn: other.policy: writable by everyone')), h.logs.join('\n'));
    report(t, h);
  });

  test('the same text written again is no change; names are re-resolved on every reload', async (t) => {
    const h = harness(t);
    mkdirSync(h.dir);
    writeFileSync(join(h.dir, 'u.policy'), policy('u', 'uid = latecomer'));
    assert.deepEqual(h.pd.start(), []);
    assert.ok(h.logs.some((l) => l.includes("unknown user 'latecomer'")));
    writeFileSync(join(h.dir, 'u.policy'), policy('u', 'uid = latecomer'));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(h.changes, 0);
    // the user appears in passwd; the next reload (any change in the directory) resolves it
    writeFileSync(join(h.root, 'passwd'), 'latecomer:x:3000:3000::/:/bin/sh\n');
    const p = h.next();
    writeFileSync(join(h.dir, 'unrelated.policy'), '# nothing\n');
    const { groups } = await p;
    assert.deepEqual(groups[0]?.match, { uid: 3000 });
    // reload() does the same on demand (SIGHUP)
    writeFileSync(join(h.root, 'passwd'), 'latecomer:x:3001:3001::/:/bin/sh\n');
    const q = h.next();
    h.pd.reload();
    assert.deepEqual((await q).groups[0]?.match, { uid: 3001 });
  });

  test('a missing directory is no error; it is noticed when it appears, disappears and comes back', async (t) => {
    const h = harness(t);
    assert.deepEqual(h.pd.start(), []);
    assert.equal(h.logs.filter((l) => l.startsWith('warn')).length, 0, h.logs.join('\n'));
    // the parent's watch sees the directory appear; the file may arrive a moment later
    let p = h.next();
    const since = performance.now();
    mkdirSync(h.dir);
    writeFileSync(join(h.dir, 'x.policy'), policy('x'));
    let r = await p;
    if (r.groups.length === 0) r = await h.next(since);
    assert.deepEqual(names(r.groups), ['x.policy:x']);

    p = h.next();
    rmSync(h.dir, { recursive: true });
    assert.deepEqual((await p).groups, []);

    p = h.next();
    mkdirSync(h.dir);
    writeFileSync(join(h.dir, 'y.policy'), policy('y'));
    r = await p;
    if (r.groups.length === 0) r = await h.next();
    assert.deepEqual(names(r.groups), ['y.policy:y']);
    // the new directory is watched (not the removed one)
    p = h.next();
    writeFileSync(join(h.dir, 'z.policy'), policy('z'));
    assert.deepEqual(names((await p).groups), ['y.policy:y', 'z.policy:z']);
    report(t, h);
  });

  test('parent missing too: the periodic recheck finds the directory', async (t) => {
    const root = tempRoot(t);
    const h = harness(t, { root, subdir: 'etc/netsession/session_policy', recheckMs: 100 });
    assert.deepEqual(h.pd.start(), []);
    const p = h.next();
    mkdirSync(join(root, 'etc/netsession/tmp'), { recursive: true });
    writeFileSync(join(root, 'etc/netsession/tmp/p.policy'), policy('p'));
    // the whole directory renamed into place at once
    renameSync(join(root, 'etc/netsession/tmp'), h.dir);
    assert.deepEqual(names((await p).groups), ['p.policy:p']);
    report(t, h);
  });

  test('close() leaves no timers or watchers behind', async (t) => {
    const count = (): Record<string, number> => {
      const c: Record<string, number> = {};
      for (const r of process.getActiveResourcesInfo()) c[r] = (c[r] ?? 0) + 1;
      return c;
    };
    // closed handles leave the list one loop turn after close(): let earlier tests' go first
    await new Promise((r) => setTimeout(r, 20));
    const before = count();
    const root = tempRoot(t);
    const dirs = [join(root, 'present'), join(root, 'missing')];
    mkdirSync(dirs[0]!);
    const pds = dirs.map((dir) => new PolicyDirectory({ dir, onChange: () => {} }));
    for (const pd of pds) {
      pd.start();
      t.after(() => pd.close()); // also when an assertion below fails: a watch would keep the test alive
    }
    writeFileSync(join(dirs[0]!, 'a.policy'), policy('a', 'uid = 0'));
    const during = count();
    assert.ok((during.FSEventWrap ?? 0) >= (before.FSEventWrap ?? 0) + 2, JSON.stringify(during));
    await new Promise((r) => setTimeout(r, 10)); // a debounce timer is pending now
    for (const pd of pds) pd.close();
    await new Promise((r) => setTimeout(r, 20));
    const after = count();
    assert.equal(after.FSEventWrap ?? 0, before.FSEventWrap ?? 0, JSON.stringify({ before, after }));
    assert.equal(after.Timeout ?? 0, before.Timeout ?? 0, JSON.stringify({ before, after }));
  });
});
