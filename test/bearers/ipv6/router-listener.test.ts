// The RA listener against the lab (root): dnsmasq's real RAs from each ISP, our RS, the
// device kernel's SLAAC, and a forged RA sent from an ISP namespace. What the kernel did is
// read with `ip`, independent of our code.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildRouterAdvertisement } from '../../../src/bearers/ipv6/ra.ts';
import { type DropReason, type RouterEvent, RouterListener } from '../../../src/bearers/ipv6/router-listener.ts';
import { RouterTable } from '../../../src/bearers/ipv6/router-table.ts';
import { configureUplink } from '../../../src/bearers/sysctl.ts';
import { errno, libc, SOCK_CLOEXEC, SOCK_RAW, u32 } from '../../../src/kernel/sys/libc.ts';
import { inNetns } from '../../../src/kernel/sys/netns.ts';
import { labDown, labUp } from '../../../src/lab/lab.ts';
import { makeNetns } from '../../helpers/netns.ts';

const isRoot = process.getuid?.() === 0;
const LAB = `v6${process.pid % 1000}`;

interface IpLink {
  ifname: string;
  ifindex: number;
  address: string;
  addr_info?: { family: string; local: string; prefixlen: number; scope: string; tentative?: boolean; dynamic?: boolean }[];
}

function links(ns: string): IpLink[] {
  return JSON.parse(execFileSync('ip', ['-n', ns, '-j', 'address', 'show'], { encoding: 'utf8' })) as IpLink[];
}

function link(ns: string, ifname: string): IpLink {
  const l = links(ns).find((x) => x.ifname === ifname);
  assert.ok(l, `${ifname} in ${ns}`);
  return l;
}

const addr6 = (l: IpLink, scope: 'link' | 'global'): { local: string; tentative?: boolean } | undefined =>
  l.addr_info?.find((a) => a.family === 'inet6' && a.scope === scope);

async function eventually<T>(what: string, get: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
};

/** Sends one RA from inside `ns` out of `ifindex` to ff02::1 with the given IP hop limit (a router, or a forger). */
function sendRa(ns: string, ifindex: number, ra: Buffer, hopLimit: number): void {
  const fd = inNetns(ns, () => libc.socket(10, SOCK_RAW | SOCK_CLOEXEC, 58) as number);
  assert.ok(fd >= 0, `raw socket: errno ${errno()}`);
  try {
    libc.setsockopt(fd, 41, 18, u32(hopLimit), 4);
    const sa = Buffer.alloc(28);
    sa.writeUInt16LE(10, 0);
    Buffer.from('ff020000000000000000000000000001', 'hex').copy(sa, 8);
    sa.writeUInt32LE(ifindex, 24);
    assert.equal(libc.sendto(fd, ra, ra.length, 0, sa, 28), ra.length, `sendto: errno ${errno()}`);
  } finally {
    libc.close(fd);
  }
}

test('RAs of every ISP: right interface, router, prefix, RDNSS; no RA default route in main', { skip: !isRoot && 'needs root' }, async (t) => {
  // device links stay down until the uplinks are configured, as the daemon would do it
  const lab = await labUp({ name: LAB, uplinks: 2, deviceLinksUp: false });
  t.after(() => labDown(LAB));
  const dev = lab.device.netns;
  const events: RouterEvent[] = [];
  const drops: { reason: DropReason; ifindex: number }[] = [];
  const errors: Error[] = [];
  let waiter: ((e: RouterEvent) => void) | undefined;
  const listener = RouterListener.open({
    netns: dev,
    onRouter: (e) => {
      events.push(e);
      waiter?.(e);
    },
    onDrop: (reason, ifindex) => drops.push({ reason, ifindex }),
    onError: (e) => errors.push(e),
  });
  t.after(() => listener.close());

  for (const u of lab.uplinks) configureUplink(u.ifname, { ipv6: true }, { netns: dev });
  execFileSync('ip', ['-n', dev, '-batch', '-'], { input: lab.uplinks.map((u) => `link set ${u.ifname} up\n`).join('') });

  let table = RouterTable.empty;
  for (const u of lab.uplinks) {
    const eth = link(dev, u.ifname);
    const gwLinkLocal = addr6(link(u.ispNetns, u.ispIfname), 'link')?.local;
    assert.ok(gwLinkLocal);
    // the RS can leave only once the link-local address has passed DAD
    await eventually(`link-local of ${u.ifname}`, () => {
      const a = addr6(link(dev, u.ifname), 'link');
      return a && !a.tentative ? a : undefined;
    });
    // each RS is answered with an RA: measure RS → event
    const latencies: number[] = [];
    for (let i = 0; i < 7; i++) {
      const got = new Promise<RouterEvent>((resolve) => {
        waiter = (e) => {
          if (e.ifindex === eth.ifindex) resolve(e);
        };
      });
      const t0 = performance.now();
      assert.deepEqual(listener.solicit(eth.ifindex, eth.address), { ok: true });
      const e = await Promise.race([got, sleep(3000).then(() => undefined)]);
      assert.ok(e, `no RA on ${u.ifname} within 3 s of an RS`);
      latencies.push(e.receivedAt - t0);
      waiter = undefined;
      // a little apart, so one RA cannot answer two solicitations
      await sleep(50);
    }
    t.diagnostic(`${u.ifname}: RS → RA event median ${median(latencies).toFixed(2)} ms, max ${Math.max(...latencies).toFixed(2)} ms`);

    const e = events.filter((x) => x.ifindex === eth.ifindex).at(-1);
    assert.ok(e);
    assert.equal(e.router, gwLinkLocal);
    assert.equal(e.hopLimit, 255);
    assert.equal(e.lifetime, 1800);
    assert.equal(e.preference, 'medium');
    const [net] = u.prefix6.split('/');
    assert.deepEqual(
      e.prefixes.map((p) => [p.prefix, p.length, p.autonomous, p.onLink]),
      [[net, 64, true, true]],
    );
    // dnsmasq announces itself as the DNS server, by its link-local address
    assert.deepEqual(
      e.rdnss.map((r) => r.address),
      [gwLinkLocal],
    );
    assert.equal(e.sourceLinkLayer, link(u.ispNetns, u.ispIfname).address);
    for (const x of events) table = table.observe(x);
    assert.equal(table.defaultRouter(eth.ifindex, performance.now())?.router, gwLinkLocal);

    // the kernel still does SLAAC from the RA …
    const slaac = await eventually(`SLAAC address on ${u.ifname}`, () => {
      const a = addr6(link(dev, u.ifname), 'global');
      return a && !a.tentative ? a.local : undefined;
    });
    assert.ok(slaac.startsWith(`${net?.replace(/::$/, '')}:`), `${slaac} in ${u.prefix6}`);
  }
  // … but installed no default route from it, in any table
  const routes = execFileSync('ip', ['-n', dev, '-6', 'route', 'show', 'table', 'all'], { encoding: 'utf8' });
  assert.doesNotMatch(routes, /default|proto ra/, routes);
  assert.deepEqual(errors, []);

  // a forged RA from off-link (hop limit 64) is dropped; the same with 255 is accepted
  const isp0 = lab.uplinks[0];
  assert.ok(isp0);
  const eth0 = link(dev, isp0.ifname);
  const gw0 = link(isp0.ispNetns, isp0.ispIfname);
  const forged = buildRouterAdvertisement({
    routerLifetime: 0,
    routes: [{ prefix: '2001:db8:77::', length: 48, preference: 'high', lifetime: 60 }],
    dnssl: [{ domain: 'corp.example', lifetime: 60 }],
  });
  const before = events.length;
  sendRa(isp0.ispNetns, gw0.ifindex, forged, 64);
  await eventually('hop-limit drop', () => drops.find((d) => d.reason === 'hop-limit' && d.ifindex === eth0.ifindex));
  assert.equal(events.length, before);
  sendRa(isp0.ispNetns, gw0.ifindex, forged, 255);
  const e = await eventually('forged RA with hop limit 255', () => events.slice(before).find((x) => x.ifindex === eth0.ifindex && x.lifetime === 0));
  assert.deepEqual(e.routes, [{ prefix: '2001:db8:77::', length: 48, preference: 'high', lifetime: 60 }]);
  assert.deepEqual(e.dnssl, [{ domain: 'corp.example', lifetime: 60 }]);
  // lifetime 0: no longer a default router
  table = table.observe(e);
  assert.equal(table.defaultRouter(eth0.ifindex, performance.now()), undefined);
  assert.ok(listener.stats.accepted >= 16 && listener.stats.dropped >= 1, JSON.stringify(listener.stats));
});

test('errors stay inside: a throwing handler goes to onError; solicit returns errors', { skip: !isRoot && 'needs root' }, async (t) => {
  const ns = makeNetns(t, 'ra');
  const errors: Error[] = [];
  const l = RouterListener.open({
    netns: ns,
    onRouter: () => {
      throw new Error('handler bug');
    },
    onError: (e) => {
      errors.push(e);
      throw new Error('and the error handler throws too');
    },
  });
  t.after(() => l.close());
  // t1 → t0 over the veth pair (and looped back to t1): two copies, each reaching the handler
  const t1 = link(ns, 't1');
  await eventually('link-local on t1', () => addr6(link(ns, 't1'), 'link'));
  sendRa(ns, t1.ifindex, buildRouterAdvertisement({}), 255);
  await eventually('handler error', () => (errors.length > 0 ? errors : undefined));
  assert.equal(errors[0]?.message, 'handler bug');
  const r = l.solicit(0x7fff0000);
  assert.equal(r.ok, false);
  l.close();
  assert.deepEqual(l.solicit(1), { ok: false, errno: 9, code: 'EBADF' });
});
