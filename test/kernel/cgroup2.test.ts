// Finding the cgroup2 hierarchy for nft (pure parts, and a look at this machine).
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { test } from 'node:test';
import { checkCgroupPath, cgroupIds, detectCgroup2, parseMountinfo, withPrivateCgroup2 } from '../../src/kernel/cgroup2.ts';

const MOUNTINFO = [
  '23 1 0:21 / /sys rw,nosuid shared:7 - sysfs sysfs rw',
  '31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
  '40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd',
  '41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 master:3 - cgroup2 cgroup2 rw',
  '50 23 0:38 /sub /mnt/part\\040cg rw - cgroup2 cgroup2 rw',
  '',
].join('\n');

test('parseMountinfo: root, mount point (octal escapes), type; optional fields skipped', () => {
  const es = parseMountinfo(MOUNTINFO);
  assert.equal(es.length, 5);
  assert.deepEqual(es[3], { root: '/', mountPoint: '/sys/fs/cgroup/unified', fsType: 'cgroup2' });
  assert.deepEqual(es[4], { root: '/sub', mountPoint: '/mnt/part cg', fsType: 'cgroup2' });
});

test('checkCgroupPath: absolute, no empty, . or .. segments', () => {
  for (const ok of ['/a', '/a/b.service', '/nst-1-cg']) assert.equal(checkCgroupPath(ok), true, ok);
  for (const bad of ['a', '/', '/a/../b', '/a//b', '/a/', '/./a', '/a\0']) assert.equal(checkCgroupPath(bad), false, bad);
});

test('withPrivateCgroup2: a private mount namespace, cgroup2 at /sys/fs/cgroup, then the command with its arguments', () => {
  const argv = withPrivateCgroup2(['nft', '-f', '-']);
  assert.deepEqual(argv.slice(0, 5), ['unshare', '--mount', '--propagation', 'private', 'sh']);
  assert.match(argv[6]!, /^mount -t cgroup2 none \/sys\/fs\/cgroup && exec "\$0" "\$@"$/);
  assert.deepEqual(argv.slice(7), ['nft', '-f', '-']);
});

test('detectCgroup2 and cgroupIds on this machine: the root cgroup is id 1, a missing one is left out', async () => {
  const view = detectCgroup2();
  if (view.mount === undefined) return; // no cgroup2 visible here (the private lookup is exercised end to end)
  assert.equal(statSync(view.mount).isDirectory(), true);
  const ids = await cgroupIds(['/', `/nst-${process.pid}-nonexistent`], view);
  assert.deepEqual([...ids], [['/', '1']]);
});

test('cgroupIds through a private mount namespace (as under `ip netns exec`) finds what the visible mount finds', { skip: process.getuid?.() !== 0 && 'needs root (mount namespace)' }, async () => {
  const view = detectCgroup2();
  if (view.mount === undefined) return;
  const paths = ['/', `/nst-${process.pid}-nonexistent`];
  assert.deepEqual([...(await cgroupIds(paths, { nftNeedsMount: true }))], [...(await cgroupIds(paths, view))]);
});
