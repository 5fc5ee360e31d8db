// A DHCP server that goes away: the lease is renewed at T1 (fails), rebound at T2 (fails),
// and at expiry the address leaves the kernel and the service leaves ready. dnsmasq's
// shortest lease is two minutes, so this test takes that long.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import dbus from 'dbus-next';
import { labDown, labIsp, labUp } from '../../src/lab/lab.ts';
import { type Props, TestBus, waitFor } from '../helpers/connman.ts';
import { isRoot } from '../helpers/netns.ts';

const skip = !isRoot() && 'needs root (network namespaces)';
const NAME = `le${process.pid % 1000}`;

test('lease expiry with the DHCP server gone: address removed, service leaves ready; server back: ready again', { skip, timeout: 240_000 }, async (t) => {
  const lab = await labUp({ name: NAME, uplinks: 1, leaseSeconds: 120, daemon: { logLevel: 'debug' } });
  const bus = new TestBus(lab.bus.address);
  t.after(async () => {
    bus.close();
    await labDown(NAME);
  });
  const v4 = async (): Promise<Props> => ((await bus.byIfname('eth0')).props.IPv4 ?? {}) as Props;
  const s = await waitFor('a lease', async () => ((await v4()).Address ? bus.byIfname('eth0') : undefined));
  // IPv6 would keep the service ready on its own: this test is about IPv4
  await bus.call(s.path, 'net.connman.Service', 'SetProperty', 'sv', ['IPv6.Configuration', new dbus.Variant('a{sv}', { Method: new dbus.Variant('s', 'off') })]);
  const address = String((await v4()).Address);
  const hasAddress = (): boolean => execFileSync('ip', ['-n', lab.device.netns, '-4', '-br', 'addr', 'show', 'dev', 'eth0'], { encoding: 'utf8' }).includes(address);
  assert.ok(hasAddress());
  const t0 = Date.now();
  await labIsp(NAME, 'isp0', 'dhcp-off');
  await waitFor('the lease to expire', async () => !(await v4()).Address, 150_000, 500);
  const took = (Date.now() - t0) / 1000;
  assert.ok(took > 100 && took < 135, `expired after ${took.toFixed(0)} s of a 120 s lease`);
  assert.equal(hasAddress(), false, 'the address left the kernel');
  const st = String((await bus.byIfname('eth0')).props.State);
  assert.ok(st === 'configuration' || st === 'failure', `state ${st} after expiry`);
  const log = execFileSync('cat', [lab.daemon!.log], { encoding: 'utf8' });
  assert.match(log, /RENEWING/, 'a renewal was tried at T1');
  assert.match(log, /REBINDING/, 'a rebind was tried at T2');
  await labIsp(NAME, 'isp0', 'dhcp-on');
  await waitFor('a new lease', async () => (await v4()).Address, 30_000, 200);
});
