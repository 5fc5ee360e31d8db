// netsessiond as a connection manager, in a lab with real dnsmasq DHCP/RA servers and a
// real internet server that reports who came through which ISP (the truth the routing
// assertions rest on), on a real private dbus-daemon.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import dbus from 'dbus-next';
import { labDaemon, labDown, labIsp, labLink, labUp } from '../../src/lab/lab.ts';
import type { LabInfo } from '../../src/lab/topology.ts';
import { type Props, TestBus, waitFor } from '../helpers/connman.ts';
import { isRoot } from '../helpers/netns.ts';

const skip = !isRoot() && 'needs root (network namespaces)';
const NAME = `co${process.pid % 1000}`;
const PROTO = 83;

type J = Record<string, unknown>;
const ipj = (ns: string, ...args: string[]): J[] => JSON.parse(execFileSync('ip', ['-n', ns, '-j', ...args], { encoding: 'utf8' }) || '[]') as J[];

/** GET /whoami from inside the device namespace, optionally bound to a source address: the server's view. */
function whoami(lab: LabInfo, source?: string, v6 = false): { client: string; isp: string } {
  const host = v6 ? `[${lab.internet.ipv6}]` : lab.internet.ipv4;
  const out = execFileSync('ip', ['netns', 'exec', lab.device.netns, 'curl', '-sS', '--max-time', '3', ...(source ? ['--interface', source] : []), `http://${host}/whoami`], { encoding: 'utf8' });
  return JSON.parse(out) as { client: string; isp: string };
}

const state = (s: { props: Props }): string => String(s.props.State);
const ipv4 = (s: { props: Props }): Props => (s.props.IPv4 ?? {}) as Props;
const ipv6 = (s: { props: Props }): Props => (s.props.IPv6 ?? {}) as Props;

/** Our kernel objects in the device namespace, as iproute2 reports them. */
function ours(ns: string): { routes: string[]; rules: string[]; addresses: string[] } {
  const routes = [...ipj(ns, '-4', 'route', 'show', 'table', 'all', 'proto', String(PROTO)), ...ipj(ns, '-6', 'route', 'show', 'table', 'all', 'proto', String(PROTO))].map((r) => `${r.dst} ${r.gateway ?? ''} ${r.dev} t=${r.table ?? 'main'}`);
  const rules = [...ipj(ns, '-4', 'rule'), ...ipj(ns, '-6', 'rule')].filter((r) => r.protocol === String(PROTO) || r.protocol === PROTO).map((r) => `${r.priority} ${r.src} ${r.table}`);
  // iproute2 6.1 does not print an address's protocol; in the device namespace every global
  // IPv4 address is netsessiond's (IPv6 ones are the kernel's SLAAC addresses)
  const addresses: string[] = [];
  for (const l of ipj(ns, 'addr')) for (const a of (l.addr_info as J[]) ?? []) if (a.family === 'inet' && a.scope === 'global') addresses.push(`${l.ifname} ${a.local}/${a.prefixlen}`);
  return { routes: routes.sort(), rules: rules.sort(), addresses: addresses.sort() };
}

describe('netsessiond in a lab of three uplinks', { skip }, () => {
  let lab: LabInfo;
  let bus: TestBus;

  before(async () => {
    lab = await labUp({
      name: NAME,
      uplinks: [{}, { mode: 'portal' }, { mode: 'no-upstream' }],
      daemon: { logLevel: 'debug', netsession: ['OnlineRecheckInterval=3'] },
    });
    bus = new TestBus(lab.bus.address);
  });
  after(async () => {
    bus?.close();
    await labDown(NAME);
  });

  test('every uplink comes up at once: online, behind a portal, without internet', async () => {
    const all = await waitFor('three services settled', async () => {
      const s = await bus.services();
      const by = (i: string) => s.find((x) => (x.props.Ethernet as Props).Interface === i);
      const settled = s.length === 3 && s.every((x) => ipv4(x).Address && ipv6(x).Address && ipv6(x).Gateway);
      return settled && state(by('eth0')!) === 'online' && state(by('eth1')!) === 'ready' && by('eth1')!.props.CaptivePortal && state(by('eth2')!) === 'ready' ? s : undefined;
    });
    const eth1 = all.find((x) => (x.props.Ethernet as Props).Interface === 'eth1')!;
    assert.equal(eth1.props.CaptivePortal, `http://${lab.internet.ipv4}/login`);
    for (const s of all) {
      assert.equal(ipv4(s).Method, 'dhcp');
      assert.match(String(ipv6(s).Address), /^2001:db8:/);
    }
    // the first in order is the default service, and it is the online one
    assert.equal((all[0]!.props.Ethernet as Props).Interface, 'eth0');
  });

  test('each service has its own table (v4 and v6), source rules, and main carries only the default service', async () => {
    const ns = lab.device.netns;
    // the kernel follows the daemon's reconcile a moment after the D-Bus properties
    await waitFor('IPv6 tables', async () => ipj(ns, '-6', 'rule').filter((r) => String(r.protocol) === String(PROTO)).length >= 3, 3000);
    const rules4 = ipj(ns, '-4', 'rule').filter((r) => String(r.protocol) === String(PROTO));
    for (const u of lab.uplinks) {
      const s = await bus.byIfname(u.ifname);
      const addr = String(ipv4(s).Address);
      const rule = rules4.find((r) => r.src === addr);
      assert.ok(rule, `a rule from ${addr}`);
      const table = String(rule.table);
      const routes = ipj(ns, '-4', 'route', 'show', 'table', table);
      assert.ok(routes.some((r) => r.dst === 'default' && r.gateway === u.gateway4 && r.dev === u.ifname), `${u.ifname}: default via ${u.gateway4} in table ${table}`);
      assert.ok(routes.some((r) => r.dst === u.prefix4 && r.dev === u.ifname), `${u.ifname}: ${u.prefix4} in table ${table}`);
      const routes6 = ipj(ns, '-6', 'route', 'show', 'table', table);
      assert.ok(routes6.some((r) => r.dst === 'default' && String(r.gateway).startsWith('fe80:') && r.dev === u.ifname), `${u.ifname}: IPv6 default in table ${table}`);
      assert.ok(routes6.some((r) => r.dst === u.prefix6 && r.dev === u.ifname), `${u.ifname}: ${u.prefix6} in table ${table}`);
    }
    const main4 = ipj(ns, '-4', 'route', 'show', 'table', 'main').filter((r) => r.dst === 'default');
    assert.deepEqual(main4.map((r) => r.dev), ['eth0'], 'one IPv4 default route in main: the default service');
    const main6 = ipj(ns, '-6', 'route', 'show', 'table', 'main').filter((r) => r.dst === 'default');
    assert.deepEqual(main6.map((r) => `${r.dev} ${r.protocol}`), [`eth0 ${PROTO}`], 'one IPv6 default route in main, ours (no RA default routes left)');
  });

  test('traffic: a socket bound to a service address leaves through that ISP (v4 and v6); unbound goes the default way', async () => {
    for (const u of lab.uplinks) {
      const s = await bus.byIfname(u.ifname);
      if (u.name === 'isp1' || u.name === 'isp2') continue; // portal / no upstream: no internet there
      const addr = String(ipv4(s).Address);
      assert.deepEqual(whoami(lab, addr), { client: addr, isp: u.name });
      const addr6 = String(ipv6(s).Address);
      assert.deepEqual(whoami(lab, addr6, true), { client: addr6, isp: u.name });
    }
    assert.equal(whoami(lab).isp, 'isp0');
  });

  test('no internet, then internet: the failed service is checked again and becomes online', async () => {
    await labIsp(NAME, 'isp2', 'online');
    await waitFor('eth2 online', async () => state(await bus.byIfname('eth2')) === 'online', 15_000);
  });

  test('cable out: the service leaves ready within a second; the default and main routes move; cable back: online again', async () => {
    const watcher = new TestBus(lab.bus.address);
    const eth0 = await bus.byIfname('eth0');
    const changes: [number, string][] = [];
    watcher.bus.on('message', (m: dbus.Message) => {
      if (m.member === 'PropertyChanged' && m.path === eth0.path && m.body?.[0] === 'State') changes.push([performance.now(), String((m.body[1] as dbus.Variant).value)]);
    });
    await watcher.call('/org/freedesktop/DBus', 'org.freedesktop.DBus', 'AddMatch', 's', [`type='signal',interface='net.connman.Service',path='${eth0.path}'`]).catch(() => undefined);
    await watcher.bus.call(new dbus.Message({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'AddMatch', signature: 's', body: [`type='signal',interface='net.connman.Service',path='${eth0.path}'`] }));
    const t0 = performance.now();
    await labLink(NAME, 'isp0', 'down');
    await waitFor('eth0 left ready', async () => changes.some(([, st]) => st === 'idle'), 3000, 5);
    const left = changes.find(([, st]) => st === 'idle')![0] - t0;
    assert.ok(left < 1000, `left ready after ${left.toFixed(0)} ms`);
    await waitFor('main default moved to eth2', async () => {
      const d = ipj(lab.device.netns, '-4', 'route', 'show', 'table', 'main').filter((r) => r.dst === 'default');
      return d.length === 1 && d[0]!.dev === 'eth2';
    }, 2000);
    assert.equal(whoami(lab).isp, 'isp2', 'unbound traffic follows the new default service');
    assert.equal((await bus.services())[0]!.id, (await bus.byIfname('eth2')).id);
    await labLink(NAME, 'isp0', 'up');
    await waitFor('eth0 online again', async () => state(await bus.byIfname('eth0')) === 'online', 10_000);
    watcher.close();
  });

  test('static IPv4 configuration: the kernel gets the address and routes, traffic uses it; back to DHCP', async () => {
    const s = await bus.byIfname('eth2');
    const V = dbus.Variant;
    const manual = { Method: new V('s', 'manual'), Address: new V('s', '203.0.113.200'), Netmask: new V('s', '255.255.255.0'), Gateway: new V('s', '203.0.113.1') };
    // the manual address comes beside the leased one of the same prefix, then the leased one
    // goes: the kernel must not take the manual one with it (promote_secondaries)
    const monitor = spawn('ip', ['-n', lab.device.netns, 'monitor', 'address'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let events = '';
    monitor.stdout.on('data', (d: Buffer) => {
      events += d.toString();
    });
    await new Promise((r) => setTimeout(r, 200));
    await bus.call(s.path, 'net.connman.Service', 'SetProperty', 'sv', ['IPv4.Configuration', new V('a{sv}', manual)]);
    await waitFor('manual address in the kernel', async () => ours(lab.device.netns).addresses.includes('eth2 203.0.113.200/24'), 3000);
    await waitFor('the leased address gone', async () => ours(lab.device.netns).addresses.filter((a) => a.startsWith('eth2 203.0.113.')).length === 1, 3000);
    await new Promise((r) => setTimeout(r, 300));
    monitor.kill();
    assert.deepEqual(events.split('\n').filter((l) => l.startsWith('Deleted') && l.includes('203.0.113.200')), [], 'the manual address never left the kernel');
    assert.ok(events.split('\n').some((l) => l.startsWith('Deleted') && / inet 203\.0\.113\./.test(l)), 'the leased address was deleted (seen by the monitor)');
    const after1 = await bus.byIfname('eth2');
    assert.deepEqual(ipv4(after1), { Method: 'manual', Address: '203.0.113.200', Netmask: '255.255.255.0', Gateway: '203.0.113.1' });
    await waitFor('whoami via the manual address', async () => whoami(lab, '203.0.113.200').isp === 'isp2', 3000);
    // bad input: the right error, nothing changed
    const error = (name: string) => (e: unknown) => (e as { type?: string }).type === `net.connman.Error.${name}`;
    await assert.rejects(bus.call(s.path, 'net.connman.Service', 'SetProperty', 'sv', ['IPv4.Configuration', new V('a{sv}', { Method: new V('s', 'manual'), Address: new V('s', '999.1.1.1'), Netmask: new V('s', '255.255.255.0') })]), error('InvalidArguments'));
    await assert.rejects(bus.call(s.path, 'net.connman.Service', 'SetProperty', 'sv', ['Bogus', new V('b', true)]), error('InvalidProperty'));
    await assert.rejects(bus.call(s.path, 'net.connman.Service', 'SetProperty', 'sv', ['AutoConnect', new V('s', 'yes')]), error('InvalidArguments'));
    await assert.rejects(bus.call(s.path, 'net.connman.Service', 'SetProperty', 'ss', ['AutoConnect', 'yes']), (e: unknown) => (e as { type?: string }).type === 'org.freedesktop.DBus.Error.UnknownMethod');
    await assert.rejects(bus.call('/net/connman/service/nope', 'net.connman.Service', 'Connect'), (e: unknown) => /UnknownObject/.test(String((e as { type?: string }).type)));
    // SessionMode: kept and reported as ConnMan does (no effect), typed
    const sessionMode = async () => ((await bus.call('/', 'net.connman.Manager', 'GetProperties'))[0] as Record<string, InstanceType<typeof V>>).SessionMode?.value;
    await bus.call('/', 'net.connman.Manager', 'SetProperty', 'sv', ['SessionMode', new V('b', true)]);
    assert.equal(await sessionMode(), true);
    await assert.rejects(bus.call('/', 'net.connman.Manager', 'SetProperty', 'sv', ['SessionMode', new V('s', 'on')]), error('InvalidArguments'));
    await bus.call('/', 'net.connman.Manager', 'SetProperty', 'sv', ['SessionMode', new V('b', false)]);
    assert.equal(await sessionMode(), false);
    assert.ok(ours(lab.device.netns).addresses.includes('eth2 203.0.113.200/24'));
    await bus.call(s.path, 'net.connman.Service', 'SetProperty', 'sv', ['IPv4.Configuration', new V('a{sv}', { Method: new V('s', 'dhcp') })]);
    await waitFor('DHCP again', async () => {
      const x = await bus.byIfname('eth2');
      return ipv4(x).Method === 'dhcp' && String(ipv4(x).Address).startsWith('203.0.113.') && !ours(lab.device.netns).addresses.includes('eth2 203.0.113.200/24');
    }, 5000);
  });

  test('restart after SIGKILL: the leases and IPv6 routers of the last run go on (their addresses and routes never leave the kernel), an expired lease does not; the kernel converges to exactly what the services need, settings kept; a clean stop leaves nothing', async () => {
    const ns = lab.device.netns;
    const eth0 = await bus.byIfname('eth0');
    await bus.call(eth0.path, 'net.connman.Service', 'SetProperty', 'sv', ['Nameservers.Configuration', new dbus.Variant('as', ['192.0.2.53'])]);
    await labIsp(NAME, 'isp1', 'online');
    await waitFor('all online', async () => (await bus.services()).every((s) => state(s) === 'online'), 10_000);
    const before = ours(ns);
    const eth1Id = (await bus.byIfname('eth1')).path.split('/').pop()!;
    const addrOf = (ifname: string): string => before.addresses.find((a) => a.startsWith(`${ifname} `))!.split(' ')[1]!;
    // every address and route event in the device namespace from now until the restarted daemon has settled
    const monitor = spawn('ip', ['-n', ns, 'monitor', 'address', 'route'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let events = '';
    monitor.stdout.on('data', (d: Buffer) => {
      events += d.toString();
    });
    await new Promise((r) => setTimeout(r, 200));
    await labDaemon(NAME, 'kill');
    // eth2's server goes silent while we are down: its lease is still valid, so it is gone on
    // with (RFC 2131 §3.2) until the server says otherwise or it expires; its IPv6 router
    // (the same dnsmasq) is held for 10 s while solicitations ask for it: its route stays too
    await labIsp(NAME, 'isp2', 'dhcp-off');
    // eth1's lease expired while we were down (its file says so): its address goes, and DHCP starts over
    const leaseFile = `${lab.dir}/netsessiond-state/leases/${eth1Id}.json`;
    const rec = JSON.parse(readFileSync(leaseFile, 'utf8')) as Record<string, number>;
    const back = rec.expiresAt! - Date.now() + 1000;
    for (const k of ['acquiredAt', 'renewAt', 'rebindAt', 'expiresAt']) rec[k] = rec[k]! - back;
    writeFileSync(leaseFile, JSON.stringify(rec));
    await labDaemon(NAME, 'start', { logLevel: 'debug' });
    bus.close();
    bus = new TestBus(lab.bus.address);
    await waitFor('all three back', async () => {
      const s = await bus.services();
      return s.filter((x) => ['online', 'ready'].includes(state(x))).length === 3 && ours(ns).addresses.length === 3;
    }, 10_000);
    monitor.kill();
    // addresses, and routes of the services' own tables (main's default follows whichever service
    // is the default, which may change while the restarted daemon checks who is online again)
    const deleted = events.split('\n').filter((l) => l.startsWith('Deleted') && (/ inet6? /.test(l) || / table 655\d\d /.test(l)));
    assert.deepEqual(deleted.filter((l) => !/ eth1 /.test(l)), [], `eth0's and eth2's addresses and routes never left the kernel:\n${events}`);
    assert.ok(deleted.some((l) => l.includes(addrOf('eth1'))), `eth1's address went with its expired lease:\n${events}`);
    const now = ours(ns);
    assert.deepEqual(now.addresses, before.addresses, 'every address as before (eth1 got its own again from the server)');
    // IPv4 only: SLAAC may still be adding an address (and its rule) when `before` is taken;
    // that no IPv6 route of eth0 and eth2 left is the monitor's finding above
    const v4 = (rs: string[]): string[] => rs.filter((r) => !r.includes(':'));
    const own = (rs: string[]): string[] => v4(rs).filter((r) => !r.endsWith(' t=main'));
    assert.deepEqual(own(now.routes), own(before.routes), 'every IPv4 route of the services\' tables as before');
    assert.deepEqual(v4(now.rules), v4(before.rules), 'every IPv4 rule as before');
    const log = readFileSync(`${lab.dir}/netsessiond.log`, 'utf8');
    assert.match(log, new RegExp(`dhcp/eth0.*going on with ${addrOf('eth0').replace(/\./g, '\\.')} of the last run`));
    assert.match(log, /dhcp\/eth0.*REBOOTING: ACK .*\(renewed\)/, 'eth0: the server confirmed the lease');
    assert.match(log, new RegExp(`dhcp/eth2.*going on with ${addrOf('eth2').replace(/\./g, '\\.')} of the last run`));
    assert.doesNotMatch(log, /dhcp\/eth1.*going on with/, 'not with an expired lease');
    const e0 = await bus.byIfname('eth0');
    assert.deepEqual(e0.props['Nameservers.Configuration'], ['192.0.2.53'], 'persisted setting kept');
    assert.deepEqual(e0.props.Nameservers, ['192.0.2.53']);
    await labIsp(NAME, 'isp2', 'dhcp-on');
    await labDaemon(NAME, 'stop');
    assert.deepEqual(ours(ns), { routes: [], rules: [], addresses: [] }, 'a clean stop removes every kernel object of ours');
    assert.deepEqual(readdirSync(`${lab.dir}/netsessiond-state/leases`), [], 'and releases every lease: none is gone on with');
    await labDaemon(NAME, 'start');
  });
});
