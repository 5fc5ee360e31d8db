// An emergency session for real (seed 001): granted by a policy, and while it is connected
// only its traffic leaves through the uplinks (SessionMarker + firewall), other sessions see
// EmergencyCall=true and new sessions are refused; when it ends, everything is as before.
// The emergency application runs as nobody with a gid policy, so its unmodified programs are
// marked with its SessionMarker; another user's traffic is dropped meanwhile.
import assert from 'node:assert/strict';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import dbus from 'dbus-next';
import { labDown, labUp } from '../../src/lab/lab.ts';
import { TestBus, waitFor } from '../helpers/connman.ts';
import { isRoot } from '../helpers/netns.ts';
import { curlAs, NOBODY, sessionClientAs } from '../helpers/other-user.ts';
import { App } from '../helpers/session-app.ts';

const skip = !isRoot() && 'needs root (network namespaces, other uids)';
const NAME = `se${process.pid % 1000}`;
const OTHER = ['--reuid=4321', '--regid=4321', '--clear-groups'];
const V = dbus.Variant;

test('an emergency session: only its traffic leaves, others see EmergencyCall, new sessions wait', { skip, timeout: 90_000 }, async (t) => {
  const lab = await labUp({ name: NAME, uplinks: 2, daemon: { logLevel: 'debug' } });
  let client: ChildProcessWithoutNullStreams | undefined;
  const app = new App(lab.bus.address);
  t.after(async () => {
    client?.kill();
    app.close();
    await labDown(NAME);
  });
  const tb = new TestBus(lab.bus.address);
  t.after(() => tb.close());
  await waitFor('online', async () => (await tb.services()).filter((s) => s.props.State === 'online').length === 2, 15_000);
  const addr1 = String(((await tb.byIfname('eth1')).props.IPv4 as Record<string, unknown>).Address);
  const url = `http://${lab.internet.ipv4}/whoami`;
  // an ordinary session of root's, with a seed-001 key so it is told about EmergencyCall
  await app.create('/ordinary', { IdleTimeout: new V('u', 0) });
  await waitFor('ordinary online', async () => app.view('/ordinary').State === 'online', 5000);
  assert.equal(app.view('/ordinary').EmergencyCall, false);
  assert.equal(curlAs(OTHER, lab.device.netns, url).code, 0, 'before: another user gets out');

  writeFileSync(`${lab.daemon!.policyDir}/ecall.policy`, '[policy_ecall]\ngid = 65534\nEmergencyCall = true\nAllowedBearers = ethernet\n', { mode: 0o644 });
  client = sessionClientAs(NOBODY, lab.bus.address, { AllowedInterface: ['s', 'eth1'], EmergencyCall: ['b', true] });
  const lines: Record<string, unknown>[] = [];
  createInterface({ input: client.stdout }).on('line', (l) => lines.push(JSON.parse(l) as Record<string, unknown>));
  await waitFor('emergency session created', async () => lines.some((l) => typeof l.created === 'string'), 10_000).catch((e) => {
    throw new Error(`${(e as Error).message}: ${JSON.stringify(lines)}`);
  });
  client.stdin.write('connect\n');
  await waitFor('emergency session online', async () => lines.some((l) => l.State === 'online'), 10_000);

  // now: the other session is told, new sessions are refused, only the emergency traffic leaves
  await waitFor('others see EmergencyCall', async () => app.view('/ordinary').EmergencyCall === true, 5000);
  await assert.rejects(app.create('/late', {}), (e: unknown) => (e as { type?: string }).type === 'net.connman.Error.Failed');
  await waitFor('emergency traffic through eth1', async () => curlAs(NOBODY, lab.device.netns, url).isp === 'isp1', 5000);
  assert.deepEqual(curlAs(NOBODY, lab.device.netns, url), { client: addr1, isp: 'isp1', code: 0 });
  assert.notEqual(curlAs(OTHER, lab.device.netns, url).code, 0, 'another user\'s traffic is dropped');
  assert.notEqual(curlAs(OTHER, lab.device.netns, `http://[${lab.internet.ipv6}]/whoami`).code, 0, 'IPv6 too');

  // the emergency ends: everything as before
  client.stdin.write('quit\n');
  await waitFor('others see EmergencyCall end', async () => app.view('/ordinary').EmergencyCall === false, 5000);
  await waitFor('another user gets out again', async () => curlAs(OTHER, lab.device.netns, url).code === 0, 5000);
  await app.create('/late', {});
});
