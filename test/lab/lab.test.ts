// The lab for real (root): namespaces, veths, dnsmasq, the internet servers, the private bus.
// Assertions look at the kernel (ip, /proc, /sys) and at what the servers saw, never at what
// our functions say they did. Every test removes its labs, also when it fails.
import assert from 'node:assert/strict';
import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { type LabUpResult, labDown, labStatus, labUp } from '../../src/lab/lab.ts';
import { LAB_ROOT, type LabInfo, type LabUplinkInfo } from '../../src/lab/topology.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin/netsessionctl.js');
const isRoot = process.getuid?.() === 0;
const tag = process.pid % 1000;
const labName = (suffix: string): string => `t${tag}${suffix}`;

function sh(cmd: string, args: readonly string[], input?: string): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000, ...(input === undefined ? {} : { input }) });
}

function cli(args: readonly string[]): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd: ROOT, timeout: 60_000 });
}

/** What `ip netns list` says (the kernel-side truth, not our own listing code). */
function netnsList(prefix: string): string[] {
  const r = sh('ip', ['netns', 'list']);
  return r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(prefix));
}

function rootLinkNames(): string[] {
  const links = JSON.parse(sh('ip', ['-j', 'link', 'show']).stdout) as { ifname: string }[];
  return links.map((l) => l.ifname).sort();
}

function recordedPids(dir: string): number[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.pid'))
    .map((f) => Number(readFileSync(join(dir, f), 'utf8').trim()));
}

/** Gone for good: no /proc entry, or a zombie (dead, only waiting for its parent to reap it). */
function gone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

async function eventually(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for: ${what}`);
    await sleep(100);
  }
}

interface IpAddr {
  ifname: string;
  flags: string[];
  operstate: string;
  addr_info: { family: string; local: string; prefixlen: number; scope: string; tentative?: boolean }[];
}

function addrs(netns: string, dev: string): IpAddr {
  const r = sh('ip', ['-n', netns, '-j', 'address', 'show', 'dev', dev]);
  assert.equal(r.status, 0, r.stderr);
  const [a] = JSON.parse(r.stdout) as IpAddr[];
  assert.ok(a, `${dev} in ${netns}`);
  return a;
}

function inPrefix4(addr: string, prefix: string): boolean {
  // the lab's prefixes are all /24
  return addr.split('.').slice(0, 3).join('.') === prefix.split('.').slice(0, 3).join('.');
}

/** A lab that goes away after the test, whatever happens in it. */
async function withLab(
  t: { after: (fn: () => Promise<void>) => void },
  spec: Parameters<typeof labUp>[0],
): Promise<LabUpResult> {
  const name = spec?.name ?? 'lab';
  t.after(async () => {
    await labDown(name);
  });
  return labUp(spec);
}

describe('lab (root)', { skip: !isRoot && 'needs root' }, () => {
  it('up/down: two labs at once, and nothing left behind', async (t) => {
    const a = labName('a');
    const b = labName('b');
    const rootLinksBefore = rootLinkNames();
    const la = await withLab(t, { name: a, uplinks: 2 });
    const lb = await withLab(t, { name: b, uplinks: 1 });
    t.diagnostic(`lab up (2 uplinks): ${la.upMs} ms, (1 uplink): ${lb.upMs} ms`);

    assert.deepEqual(netnsList(`nsl-${a}-`).sort(), [`nsl-${a}-dev`, `nsl-${a}-isp0`, `nsl-${a}-isp1`]);
    assert.deepEqual(netnsList(`nsl-${b}-`).sort(), [`nsl-${b}-dev`, `nsl-${b}-isp0`]);
    // the veths live in the namespaces only; the root namespace is untouched
    assert.deepEqual(rootLinkNames(), rootLinksBefore);
    assert.deepEqual(
      JSON.parse(sh('ip', ['-n', `nsl-${a}-dev`, '-j', 'link', 'show', 'type', 'veth']).stdout)
        .map((l: { ifname: string }) => l.ifname)
        .sort(),
      ['eth0', 'eth1'],
    );
    assert.equal(addrs(`nsl-${a}-isp1`, 'gw1').addr_info.find((x) => x.family === 'inet')?.local, '198.51.100.1');
    // busybox udhcpc copes with missing checksums (ConnMan's client does not): check the kernel
    const offload = sh('ip', ['netns', 'exec', `nsl-${a}-isp1`, 'ethtool', '-k', 'gw1']);
    assert.match(offload.stdout, /^tx-checksumming: off/m);

    const pidsA = recordedPids(la.dir);
    assert.equal(pidsA.length, 4, 'bus + one internet server for both ISPs + 2 × dnsmasq');
    for (const pid of pidsA) assert.ok(!gone(pid), `pid ${pid} runs`);
    const comms = pidsA.map((p) => readFileSync(`/proc/${p}/comm`, 'utf8').trim()).sort();
    assert.deepEqual(comms.filter((c) => c !== 'node'), ['dbus-daemon', 'dnsmasq', 'dnsmasq']);

    const down = cli(['lab', 'down', '--name', a]);
    assert.equal(down.status, 0, down.stderr);
    assert.deepEqual(netnsList(`nsl-${a}-`), []);
    assert.ok(!existsSync(la.dir), 'state dir removed');
    await eventually('processes of lab a gone', () => pidsA.every(gone), 3000);
    // the other lab is untouched
    const sb = await labStatus(b);
    assert.ok(sb.healthy, JSON.stringify(sb.processes));
    for (const pid of recordedPids(lb.dir)) assert.ok(!gone(pid));

    // down twice is fine
    assert.equal(cli(['lab', 'down', '--name', a]).status, 0);
  });

  it('down after a crash: lost pid files, killed processes, deleted state dir', async (t) => {
    const name = labName('c');
    const first = await withLab(t, { name, uplinks: 2 });
    const pids = recordedPids(first.dir);
    // crash 1: one process killed, every pid file and lab.json lost; the others still run
    process.kill(Number(readFileSync(`${first.dir}/internet.pid`, 'utf8')), 'SIGKILL');
    for (const f of readdirSync(first.dir)) if (f.endsWith('.pid') || f === 'lab.json') unlinkSync(join(first.dir, f));
    assert.notEqual(cli(['lab', 'status', '--name', name]).status, 0, 'no lab.json: status fails');
    await labDown(name);
    assert.deepEqual(netnsList(`nsl-${name}-`), []);
    assert.ok(!existsSync(first.dir));
    await eventually('every process of the crashed lab gone', () => pids.every(gone), 3000);

    // crash 2: the whole state dir is gone, the processes and namespaces remain
    const second = await labUp({ name, uplinks: 1 });
    const pids2 = recordedPids(second.dir);
    rmSync(second.dir, { recursive: true, force: true });
    const st = cli(['lab', 'status', '--name', name]);
    assert.equal(st.status, 1);
    assert.match(st.stderr, /no lab named .* namespaces .* exist/);
    const down = cli(['lab', 'down', '--name', name]);
    assert.equal(down.status, 0, down.stderr);
    assert.deepEqual(netnsList(`nsl-${name}-`), []);
    await eventually('every process of the second lab gone', () => pids2.every(gone), 3000);
  });

  describe('a running lab', () => {
    const name = labName('d');
    let lab: LabInfo;
    let tmp: string;
    const leases = new Map<number, string>();
    const dev = (): string => lab.device.netns;
    const up = (i: number): LabUplinkInfo => lab.uplinks[i] as LabUplinkInfo;

    /** busybox udhcpc in the device namespace; the script only prints what it got. */
    function dhcp(i: number, tries = 3): Record<string, string> | undefined {
      const r = sh('ip', [
        'netns', 'exec', dev(), 'busybox', 'udhcpc', '-f', '-q', '-n', '-t', String(tries), '-T', '1',
        '-i', up(i).ifname, '-s', join(tmp, 'dhcp.sh'),
      ]);
      const line = r.stdout.split('\n').find((l) => l.startsWith('bound '));
      if (line === undefined) return undefined;
      return Object.fromEntries(
        line.slice(6).split(' ').map((kv) => kv.split('=') as [string, string]),
      );
    }

    function curl(args: readonly string[]): { code: number | null; out: string; err: string } {
      const r = sh('ip', ['netns', 'exec', dev(), 'curl', '-sS', '--max-time', '3', ...args]);
      return { code: r.status, out: r.stdout, err: r.stderr };
    }

    before(async () => {
      tmp = mkdtempSync(join(tmpdir(), 'nsl-test-'));
      writeFileSync(join(tmp, 'dhcp.sh'), '#!/bin/sh\n[ "$1" = bound ] && echo "bound ip=$ip router=$router dns=$dns subnet=$subnet lease=$lease"\nexit 0\n');
      chmodSync(join(tmp, 'dhcp.sh'), 0o755);
      // through the CLI, as others use it: one JSON object
      const r = cli(['lab', 'up', '--name', name, '--json']);
      assert.equal(r.status, 0, r.stderr);
      lab = JSON.parse(r.stdout) as LabInfo;
    });

    after(async () => {
      await labDown(name);
      rmSync(tmp, { recursive: true, force: true });
      assert.deepEqual(netnsList(`nsl-${name}-`), []);
    });

    it('prints the lab JSON others rely on', () => {
      assert.equal(lab.name, name);
      assert.equal(lab.device.netns, `nsl-${name}-dev`);
      assert.equal(lab.bus.address, `unix:path=${LAB_ROOT}/${name}/bus/system_bus_socket`);
      assert.deepEqual(lab.internet, { ipv4: '198.18.0.1', ipv6: '2001:db8:ffff::1', httpPort: 80, echoPort: 7 });
      assert.equal(lab.uplinks.length, 3);
      assert.deepEqual(
        lab.uplinks.map((u) => [u.name, u.ifname, u.ispNetns, u.gateway4, u.gateway6, u.prefix4, u.prefix6]),
        [0, 1, 2].map((i) => [
          `isp${i}`,
          `eth${i}`,
          `nsl-${name}-isp${i}`,
          ['192.0.2.1', '198.51.100.1', '203.0.113.1'][i],
          `2001:db8:${i + 1}::1`,
          ['192.0.2.0/24', '198.51.100.0/24', '203.0.113.0/24'][i],
          `2001:db8:${i + 1}::/64`,
        ]),
      );
    });

    it('every ISP leases an address from its prefix, with its gateway as router and DNS', () => {
      for (const i of [0, 1, 2]) {
        const got = dhcp(i);
        assert.ok(got, `lease on ${up(i).ifname}`);
        assert.ok(inPrefix4(got.ip ?? '', up(i).prefix4), `${got.ip} in ${up(i).prefix4}`);
        const last = Number(got.ip?.split('.')[3]);
        assert.ok(last >= 50 && last <= 99, `${got.ip} in the pool .50-.99`);
        assert.equal(got.router, up(i).gateway4);
        assert.equal(got.dns, up(i).gateway4);
        assert.equal(got.lease, '3600');
        leases.set(i, got.ip as string);
      }
    });

    it('whoami: the server sees the right ISP and the real source address', () => {
      // test-owned routing inside the lab's device namespace: one table per uplink
      const batch: string[] = [];
      for (const [i, ip] of leases) {
        batch.push(`address add ${ip}/24 dev ${up(i).ifname}`);
        batch.push(`route add default via ${up(i).gateway4} dev ${up(i).ifname} table ${100 + i}`);
        batch.push(`rule add from ${ip} lookup ${100 + i} priority ${1000 + i}`);
      }
      const r = sh('ip', ['-n', dev(), '-batch', '-'], `${batch.join('\n')}\n`);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(leases.size, 3, 'needs the leases of the previous test');
      for (const [i, ip] of leases) {
        const c = curl(['--interface', ip, 'http://198.18.0.1/whoami']);
        assert.equal(c.code, 0, c.err);
        assert.deepEqual(JSON.parse(c.out), { client: ip, isp: `isp${i}` });
      }
    });

    it('SLAAC: each uplink gets an address from its ISP prefix; whoami over IPv6 agrees', async () => {
      // usable = DAD done (a tentative address cannot be a source yet)
      const slaac = (i: number): string | undefined =>
        addrs(dev(), up(i).ifname).addr_info.find(
          (a) => a.family === 'inet6' && a.scope === 'global' && !a.tentative && a.local.startsWith(`2001:db8:${i + 1}:0:`),
        )?.local;
      await eventually('SLAAC addresses on eth0..eth2', () => [0, 1, 2].every((i) => slaac(i) !== undefined), 10_000);
      // test-owned source routing, as for IPv4: the ISP's gateway address is on-link (RA)
      const batch = [0, 1, 2].flatMap((i) => [
        `route add default via ${up(i).gateway6} dev ${up(i).ifname} table ${100 + i}`,
        `rule add from ${slaac(i)} lookup ${100 + i} priority ${1000 + i}`,
      ]);
      const r = sh('ip', ['-6', '-n', dev(), '-batch', '-'], `${batch.join('\n')}\n`);
      assert.equal(r.status, 0, r.stderr);
      for (const i of [0, 1, 2]) {
        const src = slaac(i) as string;
        const c = curl(['-6', '--interface', src, 'http://[2001:db8:ffff::1]/whoami']);
        assert.equal(c.code, 0, c.err);
        assert.deepEqual(JSON.parse(c.out), { client: src, isp: `isp${i}` });
      }
    });

    it('DNS answers every name with the internet; TCP echo works', () => {
      const ip0 = leases.get(0) as string;
      const ns = sh('ip', ['netns', 'exec', dev(), 'busybox', 'nslookup', 'anything.example', up(0).gateway4]);
      assert.match(ns.stdout, /Address:\s+198\.18\.0\.1/);
      const echo = sh('ip', [
        'netns', 'exec', dev(), process.execPath, '-e',
        `const s=require('net').connect({host:'198.18.0.1',port:7,localAddress:'${ip0}'},()=>s.end('ping-echo'));` +
          `let d='';s.on('data',(b)=>d+=b);s.on('end',()=>{process.stdout.write(d)});`,
      ]);
      assert.equal(echo.stdout, 'ping-echo', echo.stderr);
    });

    it('isp portal / no-upstream / online change what the status page answers', () => {
      const ip0 = leases.get(0) as string;
      const status = (): { code: number | null; out: string; err: string } =>
        curl(['--connect-timeout', '1', '--interface', ip0, '-i', 'http://198.18.0.1/online/status.html']);

      let s = status();
      assert.equal(s.code, 0, s.err);
      assert.match(s.out, /^HTTP\/1\.1 200/);
      assert.match(s.out, /^X-ConnMan-Status: online\r$/im);
      assert.match(s.out, /^Content-Length: 0\r$/im);

      assert.equal(cli(['lab', 'isp', '--name', name, 'isp0', 'portal']).status, 0);
      s = status();
      assert.match(s.out, /^HTTP\/1\.1 302/);
      assert.match(s.out, /^Location: http:\/\/198\.18\.0\.1\/login\r$/im);
      assert.doesNotMatch(s.out, /X-ConnMan-Status/i);
      // the other ISPs are not in portal mode
      assert.match(curl(['--interface', leases.get(1) as string, '-i', 'http://198.18.0.1/online/status.html']).out, /^HTTP\/1\.1 200/);

      assert.equal(cli(['lab', 'isp', '--name', name, 'eth0', 'no-upstream']).status, 0);
      s = status();
      assert.notEqual(s.code, 0, 'no upstream: the request fails');
      const lo = addrs(up(0).ispNetns, 'lo').addr_info.map((a) => a.local);
      assert.ok(!lo.includes('198.18.0.1') && !lo.includes('2001:db8:ffff::1'), lo.join(' '));
      assert.ok(addrs(dev(), 'eth0').flags.includes('LOWER_UP'), 'the link stays');

      assert.equal(cli(['lab', 'isp', '--name', name, 'isp0', 'online']).status, 0);
      s = status();
      assert.equal(s.code, 0, s.err);
      assert.match(s.out, /^HTTP\/1\.1 200/);
      assert.match(s.out, /^X-ConnMan-Status: online\r$/im);
    });

    it('link down takes the carrier away from the device side; up brings it back', async () => {
      const flags = (): string[] => addrs(dev(), 'eth0').flags;
      assert.equal(cli(['lab', 'link', '--name', name, 'isp0', 'down']).status, 0);
      await eventually('eth0 NO-CARRIER', () => flags().includes('NO-CARRIER'), 3000);
      assert.notEqual(addrs(dev(), 'eth0').operstate, 'UP');
      assert.ok(addrs(dev(), 'eth1').flags.includes('LOWER_UP'), 'the other uplinks keep theirs');
      assert.equal(cli(['lab', 'link', '--name', name, 'eth0', 'up']).status, 0);
      await eventually('eth0 carrier back', () => addrs(dev(), 'eth0').operstate === 'UP', 3000);
      // the ISP kept its addresses over the flap (IPv6 ones are flushed on down by default)
      const gw = addrs(up(0).ispNetns, 'gw0').addr_info.map((a) => a.local);
      assert.ok(gw.includes('192.0.2.1') && gw.includes('2001:db8:1::1'), gw.join(' '));
      const c = curl(['--interface', leases.get(0) as string, 'http://198.18.0.1/whoami']);
      assert.equal(c.code, 0, c.err);
    });

    it('dhcp-off stops the ISP DHCP server, dhcp-on brings it back', () => {
      const pidFile = `${LAB_ROOT}/${name}/isp1.dnsmasq.pid`;
      const old = Number(readFileSync(pidFile, 'utf8'));
      assert.equal(cli(['lab', 'isp', '--name', name, 'isp1', 'dhcp-off']).status, 0);
      assert.ok(gone(old), 'dnsmasq stopped');
      assert.equal(dhcp(1, 2), undefined, 'no lease without a DHCP server');
      assert.equal(cli(['lab', 'isp', '--name', name, 'isp1', 'dhcp-on']).status, 0);
      const got = dhcp(1);
      assert.ok(got && inPrefix4(got.ip ?? '', up(1).prefix4), JSON.stringify(got));
    });

    it('status reports every process alive, and notices a dead one', async () => {
      const r = cli(['lab', 'status', '--name', name, '--json']);
      assert.equal(r.status, 0, r.stderr);
      const s = JSON.parse(r.stdout) as Awaited<ReturnType<typeof labStatus>>;
      assert.equal(s.healthy, true);
      assert.equal(s.processes.length, 5, 'bus, internet server, 3 × dnsmasq');
      assert.ok(s.processes.every((p) => p.alive));
      assert.deepEqual(
        s.uplinks.map((u) => [u.link, u.mode, u.upstream, u.http]),
        [0, 1, 2].map(() => ['up', 'online', true, true]),
      );
      const internet = s.processes.find((p) => p.role === 'internet');
      assert.ok(internet?.pid);
      process.kill(internet.pid, 'SIGKILL');
      await eventually('status notices', () => {
        const x = JSON.parse(cli(['lab', 'status', '--name', name, '--json']).stdout) as typeof s;
        return !x.healthy && x.uplinks.every((u) => u.http === false);
      }, 3000);
    });

    it('exec runs in the device namespace with the lab bus and returns the exit code', () => {
      const r = cli(['lab', 'exec', '--name', name, '--', 'sh', '-c', 'echo "$DBUS_SYSTEM_BUS_ADDRESS"; ip -o link show eth2 >/dev/null && exit 3']);
      assert.equal(r.status, 3, r.stderr);
      assert.equal(r.stdout.trim(), lab.bus.address);
    });

    it('the private bus answers root and an unprivileged uid', () => {
      const listNames = ['dbus-send', `--bus=${lab.bus.address}`, '--print-reply', '--dest=org.freedesktop.DBus', '/', 'org.freedesktop.DBus.ListNames'];
      const asRoot = sh(listNames[0] as string, listNames.slice(1));
      assert.equal(asRoot.status, 0, asRoot.stderr);
      assert.match(asRoot.stdout, /string "org\.freedesktop\.DBus"/);
      const asNobody = sh('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', ...listNames]);
      assert.equal(asNobody.status, 0, asNobody.stderr);
      assert.match(asNobody.stdout, /string "org\.freedesktop\.DBus"/);
    });

    it('bad input exits 2 with a readable message and changes nothing', () => {
      const modeFile = `${LAB_ROOT}/${name}/isp0.mode`;
      const before = readFileSync(modeFile, 'utf8');
      const cases: [string[], RegExp][] = [
        [['lab', 'up', '--name', 'bad-name'], /bad lab name "bad-name"/],
        [['lab', 'up', '--name', 'waytoolong'], /bad lab name/],
        [['lab', 'up', '--name', `${name}x`, '--uplinks', '65'], /uplink count "65"/],
        [['lab', 'isp', '--name', name, 'isp3', 'portal'], /unknown uplink "isp3" \(expected isp0\.\.isp2/],
        [['lab', 'isp', '--name', name, 'wlan0', 'portal'], /unknown uplink "wlan0"/],
        [['lab', 'isp', '--name', name, 'isp0', 'offline'], /unknown isp mode "offline"/],
        [['lab', 'link', '--name', name, 'isp0', 'sideways'], /unknown link state "sideways"/],
        [['lab', 'link', '--name', name, 'isp7', 'down'], /unknown uplink "isp7"/],
        [['lab', 'exec', '--name', name], /missing required argument/],
      ];
      for (const [args, message] of cases) {
        const r = cli(args);
        assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, message, args.join(' '));
      }
      assert.equal(readFileSync(modeFile, 'utf8'), before);
      assert.deepEqual(netnsList(`nsl-${name}x-`), []);
      assert.ok(addrs(dev(), 'eth0').flags.includes('LOWER_UP'));
      const missing = cli(['lab', 'status', '--name', 'nosuch']);
      assert.equal(missing.status, 1, missing.stderr);
      assert.match(missing.stderr, /^netsessionctl: no lab named "nosuch"/);
    });
  });
});
