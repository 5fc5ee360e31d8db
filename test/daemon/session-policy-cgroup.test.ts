// cgroup policies routed in the kernel: an unmodified program (curl) started inside the
// policy's cgroup, or below it, leaves through the session's uplink with that uplink's
// address (marked by `socket cgroupv2` in our nft table, routed again, SNAT); a program
// outside the cgroup leaves the default way. The daemon runs under `ip netns exec`, where
// /sys/fs/cgroup is empty: its nft needs the private cgroup2 mount (src/kernel/cgroup2.ts).
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { detectCgroup2 } from '../../src/kernel/cgroup2.ts';
import { labDown, labUp } from '../../src/lab/lab.ts';
import { TestBus, waitFor } from '../helpers/connman.ts';
import { isRoot } from '../helpers/netns.ts';

const CLIENT = fileURLToPath(new URL('../fixtures/session-client.ts', import.meta.url));
const cgMount = isRoot() ? detectCgroup2().mount : undefined;
const skip = !isRoot() ? 'needs root (network namespaces, cgroups)' : cgMount === undefined ? 'no cgroup2 mount visible' : false;

/** Moves every process of a cgroup tree to the root cgroup, then removes the tree (deepest first). */
async function removeCgroupTree(mount: string, dir: string): Promise<void> {
  if (!existsSync(dir)) return;
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) await removeCgroupTree(mount, `${dir}/${e.name}`);
  for (let i = 0; i < 100; i++) {
    for (const pid of readFileSync(`${dir}/cgroup.procs`, 'utf8').split('\n').filter(Boolean)) {
      try {
        writeFileSync(`${mount}/cgroup.procs`, pid);
      } catch {
        /* exited meanwhile */
      }
    }
    try {
      rmdirSync(dir);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EBUSY') throw e;
      await sleep(50);
    }
  }
  throw new Error(`cgroup ${dir} stays busy`);
}

/** curl in the lab's device namespace, started inside a cgroup (it joins before it execs), or outside any of ours. */
function curlIn(procs: string | undefined, ns: string, url: string): { client?: string; isp?: string; code: number } {
  const curl = ['ip', 'netns', 'exec', ns, 'curl', '-sS', '--max-time', '3', url];
  // inside `ip netns exec` /sys is remounted and the cgroup files are out of sight: join first
  const r = procs ? spawnSync('sh', ['-c', 'echo $$ > "$0" && exec "$@"', procs, ...curl], { encoding: 'utf8' }) : spawnSync(curl[0]!, curl.slice(1), { encoding: 'utf8' });
  return r.status === 0 ? { ...(JSON.parse(r.stdout) as { client: string; isp: string }), code: 0 } : { code: r.status ?? -1 };
}

test('a cgroup policy: unmodified programs in that cgroup (and below it) leave through the session\'s uplink with its address; others the default way', { skip, timeout: 120_000 }, async (t) => {
  const mount = cgMount!;
  const cgName = `nst-${process.pid}-cg`;
  const cgDir = `${mount}/${cgName}`;
  const name = `sc${process.pid % 1000}`;
  let client: ChildProcessWithoutNullStreams | undefined;
  // one cleanup, in order, also after a failure: the client, the lab, then the cgroup (empty by then)
  t.after(async () => {
    if (client && client.exitCode === null) {
      client.kill();
      await new Promise((r) => client!.once('exit', r));
    }
    await labDown(name);
    await removeCgroupTree(mount, cgDir);
  });
  mkdirSync(cgDir);
  mkdirSync(`${cgDir}/sub`);
  const lab = await labUp({ name, uplinks: 3, daemon: { logLevel: 'debug' } });
  const tb = new TestBus(lab.bus.address);
  t.after(() => tb.close());
  await waitFor('online', async () => (await tb.services()).filter((s) => s.props.State === 'online').length === 3, 15_000);
  // the policy pins the cgroup to an uplink that is not the default one
  const def = String(((await tb.services())[0]!.props.Ethernet as Record<string, unknown>).Interface);
  const target = ['eth2', 'eth1', 'eth0'].find((i) => i !== def)!;
  const isp = `isp${target.slice(3)}`;
  const addr = String(((await tb.byIfname(target)).props.IPv4 as Record<string, unknown>).Address);
  writeFileSync(`${lab.daemon!.policyDir}/cg.policy`, `[policy_cg]\ncgroup = /${cgName}\nAllowedInterface = ${target}\n`, { mode: 0o644 });

  // the application runs in that cgroup, so the policy is its session's (identity: pid → cgroup)
  client = spawn('sh', ['-c', 'echo $$ > "$0" && exec "$@"', `${cgDir}/cgroup.procs`, process.execPath, '--import', import.meta.resolve('tsx'), CLIENT, lab.bus.address, '{}']);
  const lines: Record<string, unknown>[] = [];
  createInterface({ input: client.stdout }).on('line', (l) => lines.push(JSON.parse(l) as Record<string, unknown>));
  let stderr = '';
  client.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  await waitFor('session online', async () => lines.some((l) => l.State === 'online' && l.Interface === target), 15_000).catch((e) => {
    throw new Error(`${(e as Error).message}: ${JSON.stringify(lines)} ${stderr}`);
  });

  // unmodified curl inside the cgroup: marked by its socket's cgroup, routed through the session's uplink, SNAT to its address
  const url4 = `http://${lab.internet.ipv4}/whoami`;
  await waitFor(`curl through ${isp}`, async () => curlIn(`${cgDir}/cgroup.procs`, lab.device.netns, url4).isp === isp, 8000);
  assert.deepEqual(curlIn(`${cgDir}/cgroup.procs`, lab.device.netns, url4), { client: addr, isp, code: 0 });
  // below the cgroup too (level N matches the ancestor at depth N)
  assert.deepEqual(curlIn(`${cgDir}/sub/cgroup.procs`, lab.device.netns, url4), { client: addr, isp, code: 0 });
  // IPv6 as well
  await waitFor(`IPv6 through ${isp}`, async () => curlIn(`${cgDir}/cgroup.procs`, lab.device.netns, `http://[${lab.internet.ipv6}]/whoami`).isp === isp, 5000);
  // the same program outside the cgroup: the default way
  assert.equal(curlIn(undefined, lab.device.netns, url4).isp, `isp${def.slice(3)}`);
  const ruleset = execFileSync('ip', ['netns', 'exec', lab.device.netns, 'nft', 'list', 'table', 'inet', 'netsession'], { encoding: 'utf8' });
  assert.match(ruleset, /meta mark 0x00000000 meta skuid != @policy_uids socket cgroupv2 level 1 \d+ meta mark set 0x4\w+ comment "cgroup \d+"/);

  // the session ends: nothing of it stays, and the cgroup's programs take the default way again
  client.stdin.write('quit\n');
  await waitFor('nft table gone', async () => spawnSync('ip', ['netns', 'exec', lab.device.netns, 'nft', 'list', 'table', 'inet', 'netsession']).status !== 0, 5000);
  assert.equal(curlIn(`${cgDir}/cgroup.procs`, lab.device.netns, url4).isp, `isp${def.slice(3)}`);
});
