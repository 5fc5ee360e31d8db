// Uplink sysctls. Name validation and the settings list are pure; the rest writes for real,
// in a throw-away namespace, and reads back through `ip netns exec … sysctl` (another path
// to the kernel than ours). The root namespace's values are compared before and after.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { test } from 'node:test';
import {
  configureUplink,
  readSysctl,
  restoreUplink,
  SysctlNameError,
  sysctlPath,
  uplinkSettings,
  validateIfname,
  writeSysctl,
} from '../../src/bearers/sysctl.ts';
import { ipBatch, isRoot, makeNetns } from '../helpers/netns.ts';

const KEYS6 = ['accept_ra', 'accept_ra_defrtr', 'accept_ra_rtr_pref', 'accept_ra_pinfo', 'autoconf', 'disable_ipv6', 'forwarding'];

/** The kernel's values as `sysctl` in the namespace reports them (dots in names become slashes). */
function kernel(ns: string, ifname: string): Record<string, string> {
  const dev = ifname.replaceAll('.', '/');
  const names = [`net.ipv4.conf.${dev}.rp_filter`, `net.ipv4.conf.${dev}.promote_secondaries`, ...KEYS6.map((k) => `net.ipv6.conf.${dev}.${k}`)];
  const out = execFileSync('ip', ['netns', 'exec', ns, 'sysctl', ...names], { encoding: 'utf8' });
  const r: Record<string, string> = {};
  for (const line of out.trim().split('\n')) {
    const [k = '', v = ''] = line.split(' = ');
    r[k.slice(k.lastIndexOf('.') + 1)] = v.trim();
  }
  return r;
}

/** Every per-interface and global conf value of the root namespace (must never change). */
function rootConf(): string {
  return execFileSync('sysctl', ['-a', '--pattern', '^net\\.ipv[46]\\.conf\\.'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => !l.includes('.stable_secret'))
    .sort()
    .join('\n');
}

test('interface names that could point elsewhere are refused', () => {
  for (const bad of ['', '.', '..', '../x', 'a/b', 'eth0 ', 'a:b', 'tab\tx', 'nul\0', 'sixteen-chars-xx', 'ééééééééé']) {
    assert.throws(() => validateIfname(bad), SysctlNameError, JSON.stringify(bad));
    assert.throws(() => readSysctl('ipv6', bad, 'autoconf'), SysctlNameError);
  }
  for (const ok of ['eth0', 'wlan0.100', 'x-y_z', 'fifteen-chars-x', '...']) assert.equal(validateIfname(ok), ok);
  assert.equal(validateIfname('all'), 'all');
  assert.throws(() => validateIfname('all', true), SysctlNameError);
  assert.throws(() => configureUplink('default', { ipv6: true }), SysctlNameError);
  assert.equal(sysctlPath('ipv6', 'eth0.7', 'accept_ra'), '/proc/sys/net/ipv6/conf/eth0.7/accept_ra');
  assert.throws(() => sysctlPath('ipv6', 'eth0', '../../x'), SysctlNameError);
  assert.throws(() => sysctlPath('ipv5' as 'ipv4', 'eth0', 'x'), SysctlNameError);
  assert.throws(() => writeSysctl('ipv6', 'eth0', 'autoconf', '1\nforwarding=1'), SysctlNameError);
});

test('settings: RA handling before disable_ipv6=0; accept_ra=2 when forwarding', () => {
  const line = (s: { family: string; key: string; value: string }): string => `${s.family}.${s.key}=${s.value}`;
  assert.deepEqual(uplinkSettings({ ipv6: true }, false).map(line), [
    'ipv4.rp_filter=2',
    'ipv4.promote_secondaries=1',
    'ipv6.accept_ra_defrtr=0',
    'ipv6.accept_ra_rtr_pref=0',
    'ipv6.accept_ra_pinfo=1',
    'ipv6.autoconf=1',
    'ipv6.accept_ra=1',
    'ipv6.disable_ipv6=0',
  ]);
  assert.ok(uplinkSettings({ ipv6: true }, true).map(line).includes('ipv6.accept_ra=2'));
  assert.deepEqual(uplinkSettings({ ipv6: false }, false).map(line), ['ipv4.rp_filter=2', 'ipv4.promote_secondaries=1', 'ipv6.disable_ipv6=1']);
});

test('configure and restore in a namespace; the root namespace is untouched', { skip: !isRoot() && 'needs root' }, (t) => {
  const ns = makeNetns(t, 'sc');
  // a dotted name: `sysctl -w net.ipv6.conf.up.7…` would get it wrong, a path does not
  ipBatch(ns, ['link add up.7 type veth peer name fw.7', 'link add up8 type veth peer name fw8']);
  // start from values unlike ours, so every write is visible
  execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.conf.up/7.rp_filter=1', 'net.ipv6.conf.up/7.autoconf=0', 'net.ipv6.conf.up/7.disable_ipv6=1']);
  execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.up8.forwarding=1']);
  const rootBefore = rootConf();
  const ownNs = readlinkSync('/proc/thread-self/ns/net');
  const before = kernel(ns, 'up.7');

  assert.equal(readSysctl('ipv6', 'up.7', 'autoconf', { netns: ns }), '0');
  assert.equal(readSysctl('ipv6', 'nosuch0', 'autoconf', { netns: ns }), undefined);
  // the interface does not exist in the root namespace: a read there finds nothing
  assert.equal(readSysctl('ipv6', 'up.7', 'autoconf'), undefined);

  const snap = configureUplink('up.7', { ipv6: true }, { netns: ns });
  assert.deepEqual(kernel(ns, 'up.7'), { ...before, rp_filter: '2', promote_secondaries: '1', accept_ra: '1', accept_ra_defrtr: '0', accept_ra_rtr_pref: '0', accept_ra_pinfo: '1', autoconf: '1', disable_ipv6: '0' });
  assert.deepEqual(
    snap.previous.map((s) => `${s.key}=${s.value}`),
    ['rp_filter=1', `promote_secondaries=${before.promote_secondaries}`, `accept_ra_defrtr=${before.accept_ra_defrtr}`, `accept_ra_rtr_pref=${before.accept_ra_rtr_pref}`, `accept_ra_pinfo=${before.accept_ra_pinfo}`, 'autoconf=0', `accept_ra=${before.accept_ra}`, 'disable_ipv6=1'],
  );
  restoreUplink(snap, { netns: ns });
  assert.deepEqual(kernel(ns, 'up.7'), before);

  // forwarding interface: accept_ra=2, or the kernel ignores RAs on it
  const snap8 = configureUplink('up8', { ipv6: true }, { netns: ns });
  assert.equal(kernel(ns, 'up8').accept_ra, '2');
  restoreUplink(snap8, { netns: ns });
  assert.equal(kernel(ns, 'up8').accept_ra, '1');

  const off = configureUplink('up8', { ipv6: false }, { netns: ns });
  assert.equal(kernel(ns, 'up8').disable_ipv6, '1');
  assert.equal(kernel(ns, 'up8').rp_filter, '2');
  restoreUplink(off, { netns: ns });
  assert.equal(kernel(ns, 'up8').disable_ipv6, '0');

  // a missing interface throws and writes nothing
  assert.throws(() => configureUplink('nosuch0', { ipv6: true }, { netns: ns }), /no interface nosuch0/);
  // an interface gone since configure: restore does not fail
  const gone = configureUplink('up.7', { ipv6: true }, { netns: ns });
  ipBatch(ns, ['link del up.7']);
  restoreUplink(gone, { netns: ns });

  assert.equal(rootConf(), rootBefore);
  // and this thread is back in its own namespace
  assert.equal(readlinkSync('/proc/thread-self/ns/net'), ownNs);
});
