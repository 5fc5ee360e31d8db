// The online check through one specific uplink, in the lab (root). The device namespace gets
// test-owned addresses, one routing table per uplink and `from <addr>` rules, as the daemon
// would install them; main has no default route at all. What the ISP's server saw
// (GET /whoami with curl from the same address) is the truth the routing is checked against.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { checkOnline, type OnlineCheckOptions, type OnlineCheckResult } from '../../../src/bearers/online/online-check.ts';
import { configureUplink } from '../../../src/bearers/sysctl.ts';
import { labDown, labIsp, labUp } from '../../../src/lab/lab.ts';
import type { LabInfo } from '../../../src/lab/topology.ts';

const isRoot = process.getuid?.() === 0;
const LAB = `on${process.pid % 1000}`;
const CHILD = fileURLToPath(new URL('./check-child.ts', import.meta.url));
const TSX = import.meta.resolve('tsx');

interface Uplink {
  ifname: string;
  isp: string;
  addr4: string;
  gateway4: string;
  addr6: string;
  gateway6: string;
  table: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
};

function ip(ns: string, batch: string[]): void {
  execFileSync('ip', ['-n', ns, '-batch', '-'], { input: `${batch.join('\n')}\n` });
}

/** What the ISP's server saw: curl from the address (a client other than ours). */
function whoami(ns: string, local: string, url: string): { client: string; isp: string } {
  const out = execFileSync('ip', ['netns', 'exec', ns, 'curl', '-sS', '--max-time', '3', '--interface', local, url], { encoding: 'utf8' });
  return JSON.parse(out) as { client: string; isp: string };
}

async function slaacAddress(ns: string, ifname: string): Promise<string> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const [l] = JSON.parse(execFileSync('ip', ['-n', ns, '-j', '-6', 'address', 'show', 'dev', ifname, 'scope', 'global'], { encoding: 'utf8' })) as {
      addr_info: { local?: string; tentative?: boolean }[];
    }[];
    // `ip -j` with a filter leaves empty objects for the addresses it filtered out
    const a = l?.addr_info.find((x) => x.local !== undefined && !x.tentative)?.local;
    if (a) return a;
    if (Date.now() > deadline) assert.fail(`no SLAAC address on ${ifname}`);
    await sleep(50);
  }
}

function linkLocal(ns: string, ifname: string): string {
  const [l] = JSON.parse(execFileSync('ip', ['-n', ns, '-j', '-6', 'address', 'show', 'dev', ifname, 'scope', 'link'], { encoding: 'utf8' })) as {
    addr_info: { local?: string }[];
  }[];
  const a = l?.addr_info.find((x) => x.local !== undefined)?.local;
  assert.ok(a, `link-local of ${ifname}`);
  return a;
}

describe('online check through a given uplink', { skip: !isRoot && 'needs root' }, () => {
  let lab: LabInfo;
  let dev: string;
  const up: Uplink[] = [];
  const V4 = 'http://198.18.0.1/online/status.html';
  const V6 = 'http://[2001:db8:ffff::1]/online/status.html';
  const check = (o: Omit<OnlineCheckOptions, 'netns' | 'timeoutMs'> & { timeoutMs?: number }): Promise<OnlineCheckResult> =>
    checkOnline({ timeoutMs: 3000, ...o, netns: dev });

  before(async () => {
    lab = await labUp({ name: LAB, uplinks: 2 });
    dev = lab.device.netns;
    for (const u of lab.uplinks) {
      const net4 = u.gateway4.slice(0, u.gateway4.lastIndexOf('.'));
      up.push({ ifname: u.ifname, isp: u.name, addr4: `${net4}.10`, gateway4: u.gateway4, addr6: '', gateway6: u.gateway6, table: 1001 + u.index });
    }
    // the daemon's way: no kernel RA default routes; the stale ones from before go by hand
    for (const u of up) configureUplink(u.ifname, { ipv6: true }, { netns: dev });
    execFileSync('ip', ['-n', dev, '-6', 'route', 'flush', 'proto', 'ra']);
    for (const u of up) u.addr6 = await slaacAddress(dev, u.ifname);
    const batch: string[] = [];
    for (const u of up) {
      batch.push(
        `address add ${u.addr4}/24 dev ${u.ifname}`,
        `route add default via ${u.gateway4} dev ${u.ifname} table ${u.table}`,
        `rule add from ${u.addr4} lookup ${u.table} priority ${u.table}`,
      );
    }
    // an address of uplink 0 without a rule: it has no way out
    batch.push(`address add ${up[0]?.addr4.replace(/10$/, '11')}/24 dev eth0`);
    ip(dev, batch);
    const batch6: string[] = [];
    for (const u of up) {
      const router = linkLocal(lab.uplinks.find((x) => x.name === u.isp)?.ispNetns ?? '', `gw${u.ifname.slice(3)}`);
      batch6.push(`route add default via ${router} dev ${u.ifname} table ${u.table}`, `rule add from ${u.addr6} lookup ${u.table} priority ${u.table}`);
    }
    execFileSync('ip', ['-n', dev, '-6', '-batch', '-'], { input: `${batch6.join('\n')}\n` });
    // main has no default route left, in either family
    assert.doesNotMatch(execFileSync('ip', ['-n', dev, 'route', 'show', 'default'], { encoding: 'utf8' }), /default/);
    assert.doesNotMatch(execFileSync('ip', ['-n', dev, '-6', 'route', 'show', 'default'], { encoding: 'utf8' }), /default/);
  });
  after(() => labDown(LAB));

  it('IPv4 and IPv6: online through each uplink, and that ISP saw our address', async (t) => {
    for (const u of up) {
      for (const [local, url] of [
        [u.addr4, V4],
        [u.addr6, V6],
      ] as const) {
        const times: number[] = [];
        for (let i = 0; i < 15; i++) {
          const r = await check({ url, localAddress: local });
          assert.equal(r.result, 'online', `${local}: ${JSON.stringify(r)}`);
          assert.equal(r.status, 200);
          times.push(r.ms);
        }
        t.diagnostic(`${u.ifname} ${local}: online check median ${median(times).toFixed(2)} ms (first ${times[0]?.toFixed(2)} ms)`);
        const seen = whoami(dev, local, url.replace('/online/status.html', '/whoami'));
        assert.deepEqual(seen, { client: local, isp: u.isp });
      }
    }
  });

  it('an address without a rule has no route: bound, the check fails instead of leaking', async () => {
    const r = await check({ url: V4, localAddress: '192.0.2.11' });
    assert.equal(r.result, 'failed');
    assert.match(r.error ?? '', /ENETUNREACH/);
    // and an address the namespace does not have cannot even be bound
    const r2 = await check({ url: V4, localAddress: '203.0.113.5' });
    assert.equal(r2.result, 'failed');
    assert.match(r2.error ?? '', /EADDRNOTAVAIL/);
  });

  it('portal on isp1: isp1 reports the login URL, isp0 stays online', async () => {
    const [u0, u1] = up as [Uplink, Uplink];
    await labIsp(LAB, 'isp1', 'portal');
    try {
      assert.deepEqual(await check({ url: V4, localAddress: u1.addr4 }).then(strip), {
        result: 'portal',
        status: 302,
        portalUrl: 'http://198.18.0.1/login',
      });
      assert.deepEqual(await check({ url: V6, localAddress: u1.addr6 }).then(strip), {
        result: 'portal',
        status: 302,
        portalUrl: 'http://[2001:db8:ffff::1]/login',
      });
      assert.equal((await check({ url: V4, localAddress: u0.addr4 })).result, 'online');
      assert.equal((await check({ url: V6, localAddress: u0.addr6 })).result, 'online');
    } finally {
      await labIsp(LAB, 'isp1', 'online');
    }
    assert.equal((await check({ url: V4, localAddress: u1.addr4 })).result, 'online');
  });

  it('no upstream fails fast, both families', async (t) => {
    const [u0, u1] = up as [Uplink, Uplink];
    await labIsp(LAB, 'isp1', 'no-upstream');
    try {
      for (const [local, url] of [
        [u1.addr4, V4],
        [u1.addr6, V6],
      ] as const) {
        const r = await check({ url, localAddress: local });
        assert.equal(r.result, 'failed', JSON.stringify(r));
        // IPv6 takes one SYN retransmission (1 s): over veth the ISP's ICMPv6 error comes
        // back while connect() still holds the socket lock, and TCP keeps it as a soft error
        // (nstat: TcpExtLockDroppedIcmps); the answer to the second SYN ends the connect
        assert.ok(r.ms < (local.includes(':') ? 2500 : 1000), `${r.ms} ms`);
        t.diagnostic(`no-upstream ${local}: failed in ${r.ms} ms (${r.error})`);
      }
      assert.equal((await check({ url: V4, localAddress: u0.addr4 })).result, 'online');
    } finally {
      await labIsp(LAB, 'isp1', 'online');
    }
  });

  it('timeouts, aborts and bad input are failed results, never rejections', async () => {
    const [u0] = up as [Uplink];
    // on-link but nobody there: ARP never answers, the connect would hang for seconds
    const dead = 'http://192.0.2.99/online/status.html';
    const t0 = performance.now();
    const r = await check({ url: dead, localAddress: u0.addr4, timeoutMs: 300 });
    assert.deepEqual([r.result, r.error], ['failed', 'timeout after 300 ms']);
    assert.ok(r.ms >= 290 && performance.now() - t0 < 1000, `${r.ms} ms`);
    const ctl = new AbortController();
    setTimeout(() => ctl.abort(), 50);
    const a = await check({ url: dead, localAddress: u0.addr4, signal: ctl.signal });
    assert.deepEqual([a.result, a.error], ['failed', 'aborted']);
    assert.ok(a.ms < 1000);
    assert.deepEqual((await check({ url: V4, localAddress: u0.addr4, signal: AbortSignal.abort() })).error, 'aborted');
    for (const [url, local, err] of [
      ['https://198.18.0.1/', u0.addr4, /http only/],
      ['not a url', u0.addr4, /bad URL/],
      [V4, 'eth0', /bad local address/],
      [V6, u0.addr4, /address family/],
      ['http://name.example/', u0.addr4, /name server/],
    ] as const) {
      const b = await check({ url, localAddress: local, nameservers: [] });
      assert.equal(b.result, 'failed');
      assert.match(b.error ?? '', err);
    }
  });

  it("host names are resolved by the service's DNS server, asked from the service's address", async () => {
    for (const u of up) {
      const r4 = await check({ url: 'http://online.lab.example/online/status.html', localAddress: u.addr4, nameservers: [u.gateway4, u.gateway6] });
      assert.deepEqual([r4.result, r4.address], ['online', '198.18.0.1'], JSON.stringify(r4));
      const r6 = await check({ url: 'http://online.lab.example/online/status.html', localAddress: u.addr6, nameservers: [u.gateway4, u.gateway6] });
      assert.deepEqual([r6.result, r6.address], ['online', '2001:db8:ffff::1'], JSON.stringify(r6));
    }
    // isp0's address cannot reach isp1's DNS server (isp0 has no route there): no answer
    const [u0, u1] = up as [Uplink, Uplink];
    const x = await check({ url: 'http://online.lab.example/', localAddress: u0.addr4, nameservers: [u1.gateway4], timeoutMs: 1000 });
    assert.equal(x.result, 'failed');
  });

  it("from inside the namespace, as the daemon runs it (no netns option)", async (t) => {
    const checks: OnlineCheckOptions[] = [];
    for (const u of up) {
      checks.push({ url: V4, localAddress: u.addr4, timeoutMs: 3000 }, { url: V6, localAddress: u.addr6, timeoutMs: 3000 });
      checks.push({ url: 'http://online.lab.example/online/status.html', localAddress: u.addr4, timeoutMs: 3000, nameservers: [u.gateway4] });
    }
    const out = execFileSync('ip', ['netns', 'exec', dev, process.execPath, '--import', TSX, CHILD, JSON.stringify(checks)], { encoding: 'utf8' });
    const results = JSON.parse(out) as OnlineCheckResult[];
    assert.deepEqual(
      results.map((r) => r.result),
      checks.map(() => 'online'),
      out,
    );
    t.diagnostic(`in-namespace checks: ${results.map((r) => r.ms).join(', ')} ms`);
  });
});

function strip(r: OnlineCheckResult): Partial<OnlineCheckResult> {
  const { ms: _ms, address: _address, ...rest } = r;
  return rest;
}
