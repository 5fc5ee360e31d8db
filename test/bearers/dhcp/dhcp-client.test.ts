// The DHCP client for real (root): our sockets in the lab's device namespace, real dnsmasq
// in the ISP namespaces. Assertions look at what the server side saw — dnsmasq's lease file
// and log, frames captured on the ISP's interface — not only at what the client reports.
// The client only reports leases; where a test needs the address on the interface (dnsmasq
// unicasts to ciaddr when renewing) the test puts it there, as the daemon would.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, describe, test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DhcpClient, type DhcpClientOptions, type DhcpLeaseEvent, type DhcpLostEvent } from '../../../src/bearers/dhcp/dhcp-client.ts';
import { buildIpv4Udp, parseIpv4Udp, type UdpDatagram } from '../../../src/bearers/dhcp/frame.ts';
import { type DhcpMessage, encode } from '../../../src/bearers/dhcp/packet.ts';
import {
  errno,
  libc,
  MSG_DONTWAIT,
  SO_BINDTODEVICE,
  SO_BROADCAST,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOL_SOCKET,
  u32,
} from '../../../src/kernel/sys/libc.ts';
import { inNetns } from '../../../src/kernel/sys/netns.ts';
import { labDown, labIsp, labLink, labUp } from '../../../src/lab/lab.ts';
import type { LabInfo, LabUplinkInfo } from '../../../src/lab/topology.ts';

const skip = process.getuid?.() !== 0 && 'needs root (network namespaces, dnsmasq)';
const tag = process.pid % 1000;
const AF_INET = 2;
const AF_PACKET = 17;
const ETH_P_IP = 0x0800;
const SOCK_NONBLOCK = 0o4000;

// ---------------------------------------------------------------------------------------
// helpers

function sh(cmd: string, args: readonly string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

function link(netns: string, ifname: string): { ifindex: number; mac: string } {
  const [l] = JSON.parse(sh('ip', ['-n', netns, '-j', 'link', 'show', 'dev', ifname])) as { ifindex: number; address: string }[];
  assert.ok(l);
  return { ifindex: l.ifindex, mac: l.address };
}

async function eventually(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for: ${what}`);
    await sleep(50);
  }
}

interface LeaseLine {
  expiry: number;
  mac: string;
  address: string;
}

/** dnsmasq's lease database: "<expiry> <mac> <ip> <hostname> <client-id>" per line. */
function leaseFile(lab: LabInfo, u: LabUplinkInfo): LeaseLine[] {
  let text = '';
  try {
    text = readFileSync(`${lab.dir}/${u.name}.leases`, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const [expiry, mac, address] = l.split(' ');
      return { expiry: Number(expiry), mac: mac ?? '', address: address ?? '' };
    });
}

function dnsmasqLog(lab: LabInfo, u: LabUplinkInfo): string {
  try {
    return readFileSync(`${lab.dir}/${u.name}.dnsmasq.log`, 'utf8');
  } catch {
    return '';
  }
}

function count(text: string, needle: string): number {
  return text.split(needle).length - 1;
}

function inPool(address: string, u: LabUplinkInfo): boolean {
  const net = u.prefix4.slice(0, u.prefix4.lastIndexOf('.'));
  const last = Number(address.slice(address.lastIndexOf('.') + 1));
  const lo = Number(u.dhcpPool4.start.split('.')[3]);
  const hi = Number(u.dhcpPool4.end.split('.')[3]);
  return address.startsWith(`${net}.`) && last >= lo && last <= hi;
}

/** A started client whose log and events are recorded; stopped when the test ends. */
class Probe {
  readonly client: DhcpClient;
  readonly logs: string[] = [];
  readonly leases: DhcpLeaseEvent[] = [];
  readonly losts: DhcpLostEvent[] = [];
  readonly mac: string;

  constructor(t: TestContext, lab: LabInfo, u: LabUplinkInfo, opts: Partial<DhcpClientOptions> = {}) {
    const l = link(lab.device.netns, u.ifname);
    this.mac = l.mac;
    this.client = new DhcpClient({
      ifname: u.ifname,
      ifindex: l.ifindex,
      mac: l.mac,
      netns: lab.device.netns,
      log: (level, m) => this.logs.push(`${Date.now()} ${level} ${m}`),
      ...opts,
    });
    this.client.on('lease', (e) => this.leases.push(e));
    this.client.on('lost', (e) => this.losts.push(e));
    t.after(() => this.client.stop());
  }

  /** Lease event number `after + 1`, within `ms`; resolves on the event itself (timings are measured with it). */
  lease(after: number, ms = 5000): Promise<DhcpLeaseEvent> {
    const have = this.leases[after];
    if (have) return Promise.resolve(have);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.client.off('lease', on);
        reject(new Error(`no lease #${after + 1} on ${this.client.ifname} in ${ms} ms\n${this.logs.join('\n')}`));
      }, ms);
      const on = (): void => {
        const l = this.leases[after];
        if (!l) return;
        clearTimeout(timer);
        this.client.off('lease', on);
        resolve(l);
      };
      // registered after the recording listener, so this.leases is up to date when it runs
      this.client.on('lease', on);
    });
  }
}

/** Puts the leased address on the device-side interface, as the daemon would; removed after the test. */
function configure(t: TestContext, lab: LabInfo, u: LabUplinkInfo, l: DhcpLeaseEvent): void {
  sh('ip', ['-n', lab.device.netns, 'address', 'add', `${l.address}/${l.prefixLen}`, 'dev', u.ifname]);
  t.after(() => {
    spawnSync('ip', ['-n', lab.device.netns, 'address', 'del', `${l.address}/${l.prefixLen}`, 'dev', u.ifname]);
  });
}

function check(r: number, what: string): void {
  if (r < 0) throw new Error(`${what}: errno ${errno()}`);
}

/** An AF_PACKET socket on the ISP's side of an uplink: captures IPv4 frames, and injects them. */
class IspWire {
  private readonly fd: number;
  private readonly ifindex: number;
  private readonly buf = Buffer.alloc(65536);
  private readonly captured: UdpDatagram[] = [];

  constructor(t: TestContext, u: LabUplinkInfo) {
    this.ifindex = link(u.ispNetns, u.ispIfname).ifindex;
    this.fd = inNetns(u.ispNetns, () => libc.socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0x0008) as number);
    check(this.fd, 'socket(AF_PACKET)');
    t.after(() => libc.close(this.fd));
    check(libc.bind(this.fd, this.sll(false), 20) as number, 'bind');
  }

  private sll(broadcast: boolean): Buffer {
    const sa = Buffer.alloc(20);
    sa.writeUInt16LE(AF_PACKET, 0);
    sa.writeUInt16BE(ETH_P_IP, 2);
    sa.writeInt32LE(this.ifindex, 4);
    if (broadcast) {
      sa[11] = 6;
      sa.fill(0xff, 12, 18);
    }
    return sa;
  }

  /** UDP datagrams to port 67 seen on the wire so far (what reached the server's interface). */
  toServer(): UdpDatagram[] {
    const from = Buffer.alloc(20);
    for (;;) {
      const n = libc.recvfrom(this.fd, this.buf, this.buf.length, MSG_DONTWAIT, from, [20]) as number;
      if (n < 0) break;
      const r = parseIpv4Udp(Uint8Array.prototype.slice.call(this.buf, 0, n));
      if (r.ok && r.datagram.dstPort === 67) this.captured.push(r.datagram);
    }
    return this.captured;
  }

  inject(frame: Uint8Array): void {
    check(libc.sendto(this.fd, frame, frame.length, 0, this.sll(true), 20) as number, 'sendto(AF_PACKET)');
  }
}

/** A UDP socket in the ISP namespace, for datagrams the kernel builds. */
function ispUdp(t: TestContext, u: LabUplinkInfo): (payload: Uint8Array, to: string) => void {
  const fd = inNetns(u.ispNetns, () => libc.socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0) as number);
  check(fd, 'socket');
  t.after(() => libc.close(fd));
  libc.setsockopt(fd, SOL_SOCKET, SO_BROADCAST, u32(1), 4);
  const dev = Buffer.from(`${u.ispIfname}\0`);
  check(libc.setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, dev, dev.length) as number, 'SO_BINDTODEVICE');
  return (payload, to) => {
    const sa = Buffer.alloc(16);
    sa.writeUInt16LE(AF_INET, 0);
    sa.writeUInt16BE(68, 2);
    sa.set(to.split('.').map(Number), 4);
    check(libc.sendto(fd, payload, payload.length, 0, sa, 16) as number, `sendto ${to}`);
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

// ---------------------------------------------------------------------------------------

describe('DHCP client against dnsmasq in the lab', { skip }, () => {
  const name = `dh${tag}a`;
  let lab: LabInfo;
  let isp: LabUplinkInfo[];
  before(async () => {
    lab = await labUp({ name, uplinks: 3 });
    isp = lab.uplinks;
  });
  after(async () => {
    await labDown(name);
  });

  test('a lease from each of 3 ISPs at once, in well under a second; dnsmasq agrees', async (t) => {
    const probes = isp.map((u) => new Probe(t, lab, u));
    const t0 = performance.now();
    for (const p of probes) p.client.start();
    const leases = await Promise.all(probes.map((p) => p.lease(0)));
    const ms = performance.now() - t0;
    t.diagnostic(`3 leases in ${ms.toFixed(1)} ms`);
    assert.ok(ms < 1000, `${ms} ms`);
    leases.forEach((l, i) => {
      const u = isp[i]!;
      assert.equal(l.kind, 'acquired');
      assert.ok(inPool(l.address, u), `${l.address} in ${u.dhcpPool4.start}–${u.dhcpPool4.end}`);
      assert.equal(l.prefixLen, 24);
      assert.equal(l.router, u.gateway4);
      assert.deepEqual(l.dns, [u.gateway4]);
      assert.equal(l.serverId, u.gateway4);
      assert.equal(l.leaseSeconds, u.leaseSeconds);
      assert.equal(l.ifname, u.ifname);
    });
    // the server side: each dnsmasq has our MAC with exactly that address
    for (const [i, p] of probes.entries()) {
      const u = isp[i]!;
      await eventually(`${u.name} lease file lists ${p.mac}`, () =>
        leaseFile(lab, u).some((e) => e.mac === p.mac && e.address === leases[i]!.address),
      );
    }
  });

  test('renewNow: renewed with the same address, and dnsmasq extends the lease', async (t) => {
    const u = isp[0]!;
    const p = new Probe(t, lab, u);
    p.client.start();
    const first = await p.lease(0);
    configure(t, lab, u, first);
    await eventually('lease file', () => leaseFile(lab, u).some((e) => e.mac === p.mac));
    const before = leaseFile(lab, u).find((e) => e.mac === p.mac)!;
    const acks = count(dnsmasqLog(lab, u), `DHCPACK(${u.ispIfname}) ${first.address} ${p.mac}`);
    // dnsmasq keeps expiry times in whole seconds
    await sleep(1100);
    p.client.renewNow();
    const renewed = await p.lease(1, 3000);
    assert.equal(renewed.kind, 'renewed');
    assert.equal(renewed.address, first.address);
    assert.ok(renewed.expiresAt > first.expiresAt);
    await eventually('dnsmasq logged the renewal and moved the expiry', () => {
      const now = leaseFile(lab, u).find((e) => e.mac === p.mac);
      const log = dnsmasqLog(lab, u);
      return (
        now !== undefined &&
        now.address === first.address &&
        now.expiry > before.expiry &&
        count(log, `DHCPACK(${u.ispIfname}) ${first.address} ${p.mac}`) > acks
      );
    });
    assert.ok(p.logs.some((l) => /RENEWING: REQUEST .* to 192\.0\.2\.1/.test(l)), 'renewal went unicast to the server');
  });

  test('stop with release: dnsmasq removes the lease', async (t) => {
    const u = isp[1]!;
    const p = new Probe(t, lab, u);
    p.client.start();
    const l = await p.lease(0);
    configure(t, lab, u, l);
    await eventually('lease file lists us', () => leaseFile(lab, u).some((e) => e.mac === p.mac));
    p.client.stop({ release: true });
    assert.deepEqual(p.losts, [{ reason: 'released', ifname: u.ifname, address: l.address }]);
    await eventually('lease gone from dnsmasq', () => !leaseFile(lab, u).some((e) => e.mac === p.mac));
    assert.match(dnsmasqLog(lab, u), new RegExp(`DHCPRELEASE\\(${u.ispIfname}\\) ${l.address.replace(/\./g, '\\.')} ${p.mac}`));
  });

  test('stop with release from inside a lease listener: the RELEASE still goes out', async (t) => {
    const u = isp[1]!;
    const p = new Probe(t, lab, u);
    p.client.on('lease', () => p.client.stop({ release: true }));
    p.client.start();
    const l = await p.lease(0);
    assert.equal(p.client.phase, 'STOPPED');
    assert.deepEqual(p.losts.map((x) => x.reason), ['released']);
    await eventually('dnsmasq logged the RELEASE', () => dnsmasqLog(lab, u).includes(`DHCPRELEASE(${u.ispIfname}) ${l.address} ${p.mac}`));
  });

  test('dnsmasq stopped: the renewal keeps retrying without crashing, and succeeds once it is back', async (t) => {
    const u = isp[2]!;
    const p = new Probe(t, lab, u);
    p.client.start();
    const l = await p.lease(0);
    configure(t, lab, u, l);
    await labIsp(name, u.name, 'dhcp-off');
    t.after(() => labIsp(name, u.name, 'dhcp-on'));
    p.client.renewNow();
    // retries at ~1 s and ~3 s, each with up to ±0.5 s of jitter: the third is in by 4 s
    await sleep(4500);
    const tries = p.logs.filter((x) => x.includes('RENEWING: REQUEST')).length;
    assert.ok(tries >= 3, `${tries} REQUESTs in 4.5 s (at 0, ~1, ~3 s, ±0.5 s each)\n${p.logs.join('\n')}`);
    assert.equal(p.client.phase, 'RENEWING');
    assert.deepEqual(p.losts, []);
    assert.equal(p.client.lease?.address, l.address, 'the lease is kept while it is valid');
    await labIsp(name, u.name, 'dhcp-on');
    // next retry comes at most ~8.5 s after the previous one
    const back = await p.lease(1, 12_000);
    assert.equal(back.kind, 'renewed');
    assert.equal(back.address, l.address);
  });

  test('garbage to port 68 from the ISP side: ignored, and the client still works', async (t) => {
    const u = isp[0]!;
    const p = new Probe(t, lab, u);
    p.client.start();
    const l = await p.lease(0);
    configure(t, lab, u, l);
    const send = ispUdp(t, u);
    const wire = new IspWire(t, u);
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const junk = (len: number): Buffer => Buffer.from(Array.from({ length: len }, () => rand(256)));
    const reply: DhcpMessage = {
      op: 2,
      htype: 1,
      hlen: 6,
      hops: 0,
      xid: 1,
      secs: 0,
      broadcast: true,
      ciaddr: '0.0.0.0',
      yiaddr: l.address,
      siaddr: '0.0.0.0',
      giaddr: '0.0.0.0',
      chaddr: p.mac,
      options: { messageType: 'NAK', serverId: u.gateway4 },
    };
    const real = encode(reply);
    for (let i = 0; i < 200; i++) {
      const to = i % 2 ? '255.255.255.255' : l.address;
      send(junk(rand(1400)), to);
      send(real.subarray(0, rand(real.length)), to);
      const mangled = Buffer.from(real);
      for (let k = 0; k < 8; k++) mangled[rand(mangled.length)] = rand(256);
      send(mangled, to);
      // frames the kernel would never build: bad checksums, lying lengths, fragments
      const f = buildIpv4Udp({ src: u.gateway4, dst: '255.255.255.255', srcPort: 67, dstPort: 68, payload: junk(300) });
      const g = Buffer.from(f);
      const at = 20 + 8 + rand(300);
      g[at] = (g[at] ?? 0) ^ 0xff;
      wire.inject(g);
      const h = Buffer.from(f);
      h.writeUInt16BE(9999, 24);
      wire.inject(h);
    }
    // a NAK with a stranger's xid must not cost us the lease
    send(real, '255.255.255.255');
    await eventually('garbage arrived and was logged', () =>
      p.logs.some((x) => x.includes('undecodable packet ignored')) && p.logs.some((x) => x.includes('bad UDP checksum')),
    );
    await sleep(200);
    assert.deepEqual(p.losts, []);
    assert.equal(p.client.phase, 'BOUND');
    p.client.renewNow();
    const again = await p.lease(1, 3000);
    assert.equal(again.kind, 'renewed');
    assert.equal(again.address, l.address);
  });

  test('carrier lost and back: INIT-REBOOT, dnsmasq confirms the same address without a DISCOVER', async (t) => {
    const u = isp[1]!;
    const p = new Probe(t, lab, u);
    p.client.start();
    const l = await p.lease(0);
    await labLink(name, u.name, 'down');
    t.after(() => labLink(name, u.name, 'up'));
    p.client.linkDown();
    assert.equal(p.client.phase, 'WAIT-LINK');
    const discovers = count(dnsmasqLog(lab, u), `DHCPDISCOVER(${u.ispIfname}) ${p.mac}`);
    const requests = count(dnsmasqLog(lab, u), `DHCPREQUEST(${u.ispIfname}) ${l.address} ${p.mac}`);
    await labLink(name, u.name, 'up');
    p.client.linkUp();
    const back = await p.lease(1, 8000);
    assert.equal(back.kind, 'renewed');
    assert.equal(back.address, l.address);
    const log = dnsmasqLog(lab, u);
    assert.ok(count(log, `DHCPREQUEST(${u.ispIfname}) ${l.address} ${p.mac}`) > requests);
    assert.equal(count(log, `DHCPDISCOVER(${u.ispIfname}) ${p.mac}`), discovers);
    assert.deepEqual(p.losts, []);
  });

  test('start with a remembered address: INIT-REBOOT gets it; a foreign one is NAKed, then discovered', async (t) => {
    const u = isp[2]!;
    const p1 = new Probe(t, lab, u);
    p1.client.start();
    const l = await p1.lease(0);
    p1.client.stop();
    const p2 = new Probe(t, lab, u, { requestedAddress: l.address });
    p2.client.start();
    const again = await p2.lease(0);
    assert.equal(again.kind, 'acquired');
    assert.equal(again.address, l.address);
    assert.ok(p2.logs.some((x) => x.includes('REBOOTING: REQUEST')));
    assert.ok(!p2.logs.some((x) => x.includes('DISCOVER')));
    p2.client.stop();

    // an address from another network: the authoritative dnsmasq says no
    const p3 = new Probe(t, lab, u, { requestedAddress: '198.18.7.7' });
    p3.client.start();
    const fresh = await p3.lease(0);
    assert.ok(inPool(fresh.address, u));
    assert.ok(p3.logs.some((x) => x.includes('NAK from')), p3.logs.join('\n'));
    assert.match(dnsmasqLog(lab, u), new RegExp(`DHCPNAK\\(${u.ispIfname}\\) 198\\.18\\.7\\.7 ${p3.mac}`));
    assert.deepEqual(p3.losts, [], 'nothing was held, nothing is lost');
  });

  test('time from start() to lease, median of 10 (reported)', async (t) => {
    const u = isp[0]!;
    const ms: number[] = [];
    for (let i = 0; i < 10; i++) {
      const p = new Probe(t, lab, u);
      const t0 = performance.now();
      p.client.start();
      await p.lease(0);
      ms.push(performance.now() - t0);
      p.client.stop({ release: true });
    }
    const line = `start → lease: median ${median(ms).toFixed(1)} ms, min ${Math.min(...ms).toFixed(1)}, max ${Math.max(...ms).toFixed(1)} (${ms.map((x) => x.toFixed(1)).join(' ')})`;
    t.diagnostic(line);
    assert.ok(median(ms) < 500);
  });
});

describe('why a packet socket: source address and rp_filter (lab, root)', { skip }, () => {
  const name = `dh${tag}b`;
  let lab: LabInfo;
  before(async () => {
    lab = await labUp({ name, uplinks: 2 });
  });
  after(async () => {
    await labDown(name);
  });

  const dev = (...args: string[]): string => sh('ip', ['netns', 'exec', lab.device.netns, ...args]);

  test('plain namespace (rp_filter 0, no IPv4 anywhere): UDP-only mode works and sends from 0.0.0.0', async (t) => {
    const u = lab.uplinks[0]!;
    assert.equal(dev('sysctl', '-n', 'net.ipv4.conf.all.rp_filter').trim(), '0');
    const wire = new IspWire(t, u);
    const p = new Probe(t, lab, u, { transport: 'udp' });
    p.client.start();
    const l = await p.lease(0, 3000);
    assert.ok(inPool(l.address, u));
    const seen = wire.toServer();
    assert.ok(seen.length >= 2, 'DISCOVER and REQUEST on the wire');
    assert.deepEqual([...new Set(seen.map((d) => d.src))], ['0.0.0.0']);
  });

  test('another uplink has an address and rp_filter is loose: UDP-only mode leaks it and hears nothing; packet mode works', async (t) => {
    const [u0, u1] = [lab.uplinks[0]!, lab.uplinks[1]!];
    // what the daemon's world looks like: eth1 is up and configured, rp_filter loose (DESIGN.md)
    const other = '198.51.100.200';
    sh('ip', ['-n', lab.device.netns, 'address', 'add', `${other}/24`, 'dev', u1.ifname]);
    t.after(() => spawnSync('ip', ['-n', lab.device.netns, 'address', 'del', `${other}/24`, 'dev', u1.ifname]));
    dev('sysctl', '-qw', 'net.ipv4.conf.all.rp_filter=2');
    t.after(() => spawnSync('ip', ['netns', 'exec', lab.device.netns, 'sysctl', '-qw', 'net.ipv4.conf.all.rp_filter=0']));

    const wire = new IspWire(t, u0);
    const udp = new Probe(t, lab, u0, { transport: 'udp' });
    udp.client.start();
    await sleep(2500);
    const leaked = wire.toServer().map((d) => d.src);
    assert.ok(leaked.length >= 1);
    assert.ok(leaked.every((s) => s === other), `DISCOVER sources seen by the ISP: ${leaked.join(', ')}`);
    assert.equal(udp.leases.length, 0, 'the OFFERs were dropped by rp_filter');
    assert.ok(udp.logs.some((x) => x.includes('DISCOVER (try 2)')), 'the client kept trying');
    udp.client.stop();

    const n = wire.toServer().length;
    const pkt = new Probe(t, lab, u0);
    const t0 = performance.now();
    pkt.client.start();
    const l = await pkt.lease(0, 3000);
    t.diagnostic(`packet mode under rp_filter=2: lease in ${(performance.now() - t0).toFixed(1)} ms`);
    assert.ok(inPool(l.address, u0));
    const sources = wire.toServer().slice(n).map((d) => d.src);
    assert.deepEqual([...new Set(sources)], ['0.0.0.0'], 'RFC 2131 §4.1: source 0.0.0.0 before an address is bound');
  });

  test('interface missing at start(): no throw, sockets retried, lease once it appears', async (t) => {
    const u = lab.uplinks[1]!;
    const p = new Probe(t, lab, u);
    const tmp = `dh${tag}x`;
    sh('ip', ['-n', lab.device.netns, 'link', 'set', u.ifname, 'down']);
    sh('ip', ['-n', lab.device.netns, 'link', 'set', u.ifname, 'name', tmp]);
    t.after(() => {
      spawnSync('ip', ['-n', lab.device.netns, 'link', 'set', tmp, 'name', u.ifname]);
      spawnSync('ip', ['-n', lab.device.netns, 'link', 'set', u.ifname, 'up']);
    });
    p.client.start();
    await sleep(1200);
    assert.ok(p.logs.some((x) => x.includes('cannot open sockets')), p.logs.join('\n'));
    assert.equal(p.client.phase, 'SELECTING');
    sh('ip', ['-n', lab.device.netns, 'link', 'set', tmp, 'name', u.ifname]);
    sh('ip', ['-n', lab.device.netns, 'link', 'set', u.ifname, 'up']);
    const l = await p.lease(0, 10_000);
    assert.ok(inPool(l.address, u));
  });
});
