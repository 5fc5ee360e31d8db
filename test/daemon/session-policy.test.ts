// Policy-identified sessions: an unmodified program (curl) running as the policy's user
// leaves through that user's session's uplink, with that uplink's address — and through
// nothing when the session has no usable service. Policy files are reloaded live.
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, execFileSync, spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { labDown, labUp } from '../../src/lab/lab.ts';
import { TestBus, waitFor } from '../helpers/connman.ts';
import { isRoot } from '../helpers/netns.ts';
import { curlAs, NOBODY, sessionClientAs } from '../helpers/other-user.ts';

const skip = !isRoot() && 'needs root (network namespaces, other uids)';
const NAME = `sp${process.pid % 1000}`;

test('a uid policy routes an unmodified program of that user through its session, fails closed, reloads live', { skip, timeout: 90_000 }, async (t) => {
  const lab = await labUp({ name: NAME, uplinks: 3, daemon: { logLevel: 'debug' } });
  let client: ChildProcessWithoutNullStreams | undefined;
  t.after(async () => {
    client?.kill();
    await labDown(NAME);
  });
  const tb = new TestBus(lab.bus.address);
  t.after(() => tb.close());
  await waitFor('online', async () => (await tb.services()).filter((s) => s.props.State === 'online').length === 3, 15_000);
  const eth2 = await tb.byIfname('eth2');
  const addr2 = String((eth2.props.IPv4 as Record<string, unknown>).Address);
  const policyFile = `${lab.daemon!.policyDir}/nobody.policy`;
  writeFileSync(policyFile, '[policy_nobody]\nuid = nobody\nAllowedBearers = ethernet\n', { mode: 0o644 });

  // the application runs as nobody: the session is nobody's
  client = sessionClientAs(NOBODY, lab.bus.address, { AllowedInterface: ['s', 'eth2'] });
  const lines: Record<string, unknown>[] = [];
  createInterface({ input: client.stdout }).on('line', (l) => lines.push(JSON.parse(l) as Record<string, unknown>));
  let stderr = '';
  client.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  await waitFor('session online', async () => lines.some((l) => l.State === 'online'), 15_000).catch((e) => {
    throw new Error(`${(e as Error).message}: ${JSON.stringify(lines)} ${stderr}`);
  });
  // unmodified curl, as nobody: through eth2, with eth2's own address (uidrange rule, no NAT)
  await waitFor('curl through isp2', async () => curlAs(NOBODY, lab.device.netns, `http://${lab.internet.ipv4}/whoami`).isp === 'isp2', 5000);
  assert.deepEqual(curlAs(NOBODY, lab.device.netns, `http://${lab.internet.ipv4}/whoami`), { client: addr2, isp: 'isp2', code: 0 });
  await waitFor('IPv6 through isp2', async () => curlAs(NOBODY, lab.device.netns, `http://[${lab.internet.ipv6}]/whoami`).isp === 'isp2', 5000);
  // root is not nobody: its traffic still takes the default way
  const rootView = JSON.parse(execFileSync('ip', ['netns', 'exec', lab.device.netns, 'curl', '-sS', `http://${lab.internet.ipv4}/whoami`], { encoding: 'utf8' })) as { isp: string };
  const def = String(((await tb.services())[0]!.props.Ethernet as Record<string, unknown>).Interface);
  assert.equal(rootView.isp, `isp${def.slice(3)}`);

  // no usable service: nobody's traffic goes nowhere (curl: 7, couldn't connect)
  client.stdin.write('change AllowedInterface s "eth9"\n');
  await waitFor('disconnected', async () => lines.some((l) => l.State === 'disconnected'), 5000);
  await waitFor('fail closed', async () => curlAs(NOBODY, lab.device.netns, `http://${lab.internet.ipv4}/whoami`).code !== 0, 5000);
  assert.notEqual(curlAs(NOBODY, lab.device.netns, `http://[${lab.internet.ipv6}]/whoami`).code, 0);

  // the policy file goes: nobody is an ordinary user again, routed the default way
  rmSync(policyFile);
  await waitFor('policy gone', async () => curlAs(NOBODY, lab.device.netns, `http://${lab.internet.ipv4}/whoami`).isp === `isp${def.slice(3)}`, 5000);

  // a session made while no policy asks who its owner is (made without a lookup) is matched
  // when one comes: the newest of nobody's sessions routes nobody's traffic
  const late = sessionClientAs(NOBODY, lab.bus.address, { AllowedInterface: ['s', 'eth1'] });
  t.after(() => late.kill());
  const lateLines: Record<string, unknown>[] = [];
  createInterface({ input: late.stdout }).on('line', (l) => lateLines.push(JSON.parse(l) as Record<string, unknown>));
  await waitFor('late session online', async () => lateLines.some((l) => l.State === 'online'), 15_000);
  assert.equal(curlAs(NOBODY, lab.device.netns, `http://${lab.internet.ipv4}/whoami`).isp, `isp${def.slice(3)}`, 'no policy: the default way');
  writeFileSync(policyFile, '[policy_nobody]\nuid = nobody\nAllowedBearers = ethernet\n', { mode: 0o644 });
  const addr1 = String(((await tb.byIfname('eth1')).props.IPv4 as Record<string, unknown>).Address);
  await waitFor('curl through isp1', async () => curlAs(NOBODY, lab.device.netns, `http://${lab.internet.ipv4}/whoami`).isp === 'isp1', 5000);
  assert.deepEqual(curlAs(NOBODY, lab.device.netns, `http://${lab.internet.ipv4}/whoami`), { client: addr1, isp: 'isp1', code: 0 });
  late.stdin.write('quit\n');
  client.stdin.write('quit\n');
});

test('a gid policy: the group\'s unmodified programs are marked in nft, routed through the session and given that uplink\'s address', { skip, timeout: 90_000 }, async (t) => {
  const name = `sg${process.pid % 1000}`;
  const lab = await labUp({ name, uplinks: 3, daemon: { logLevel: 'debug' } });
  let client: ChildProcessWithoutNullStreams | undefined;
  t.after(async () => {
    client?.kill();
    await labDown(name);
  });
  const tb = new TestBus(lab.bus.address);
  t.after(() => tb.close());
  await waitFor('online', async () => (await tb.services()).filter((s) => s.props.State === 'online').length === 3, 15_000);
  const eth1 = await tb.byIfname('eth1');
  const addr1 = String((eth1.props.IPv4 as Record<string, unknown>).Address);
  // group 65534 (nogroup): nobody's primary group, which the kernel knows the socket by
  writeFileSync(`${lab.daemon!.policyDir}/nogroup.policy`, '[policy_nogroup]\ngid = 65534\nAllowedBearers = ethernet\n', { mode: 0o644 });
  client = sessionClientAs(NOBODY, lab.bus.address, { AllowedInterface: ['s', 'eth1'] });
  const lines: Record<string, unknown>[] = [];
  createInterface({ input: client.stdout }).on('line', (l) => lines.push(JSON.parse(l) as Record<string, unknown>));
  await waitFor('session online', async () => lines.some((l) => l.State === 'online'), 15_000);
  // the route chain marks nobody's packets, the kernel routes them again, SNAT gives them eth1's address
  await waitFor('curl through isp1', async () => curlAs(NOBODY, lab.device.netns, `http://${lab.internet.ipv4}/whoami`).isp === 'isp1', 5000);
  assert.deepEqual(curlAs(NOBODY, lab.device.netns, `http://${lab.internet.ipv4}/whoami`), { client: addr1, isp: 'isp1', code: 0 });
  const ruleset = execFileSync('ip', ['netns', 'exec', lab.device.netns, 'nft', 'list', 'table', 'inet', 'netsession'], { encoding: 'utf8' });
  assert.match(ruleset, /meta skgid map @gid_marker/);
  client.stdin.write('quit\n');
  // the last session gone: our nft table goes too
  await waitFor('nft table gone', async () => spawnSync('ip', ['netns', 'exec', lab.device.netns, 'nft', 'list', 'table', 'inet', 'netsession']).status !== 0, 5000);
});
