// netsessionctl's connection-manager commands against a real netsessiond in a lab (root).
// Every command is checked for its output and for its effect: the daemon's properties, and
// where the command changes the network, the kernel of the device namespace (`ip -j`) or
// the resolv.conf the daemon writes.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ServiceState } from '../../src/client/index.ts';
import { labDaemon, labDown } from '../../src/lab/lab.ts';
import { CLI, childEnv, ctl, eventually, kernelAddresses, kernelDefaultRoutes, type RunResult, rootSkip, start, startLab, type TestLab } from './lab-helpers.ts';

const SERVICE_LINE = /^\*AO Wired {16}ethernet_[0-9a-f]{12}_cable$/;
const latencies = new Map<string, number[]>();

function ok(r: RunResult, what: string): void {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
}

describe('netsessionctl against netsessiond', { skip: rootSkip }, () => {
  let lab: TestLab;
  /** `netsessionctl --bus LAB ARGS…`, timed per command */
  const nctl = async (...args: string[]): Promise<RunResult> => {
    const r = await ctl(['--bus', lab.bus, ...args]);
    const key = args.filter((a) => !a.startsWith('-'))[0] ?? args[0] ?? '';
    latencies.set(key, [...(latencies.get(key) ?? []), r.ms]);
    return r;
  };
  const stateOf = async (ifname: string): Promise<ServiceState> => (await lab.serviceOn(ifname)).properties.State;
  const allIdle = async (): Promise<boolean> => (await lab.client.services()).every((s) => s.properties.State === 'idle');
  const allOnline = async (): Promise<boolean> => (await lab.client.services()).every((s) => s.properties.State === 'online');

  before(async () => {
    lab = await startLab('cl');
  });
  after(async () => {
    const rows = [...latencies].map(([k, v]) => `${k} ${Math.round(v.reduce((a, b) => a + b, 0) / v.length)} ms (n=${v.length})`);
    process.stdout.write(`# netsessionctl wall time per command (node + tsx start included): ${rows.join(', ')}\n`);
    await lab?.down();
  });

  it('state, technologies and services print connmanctl’s layout; --json is one document', async () => {
    const st = await nctl('state');
    ok(st, 'state');
    assert.equal(st.stdout, '  State = online\n  OfflineMode = False\n  SessionMode = False\n');
    assert.deepEqual(JSON.parse((await nctl('state', '--json')).stdout), { State: 'online', OfflineMode: false, SessionMode: false });

    const tech = await nctl('technologies');
    ok(tech, 'technologies');
    assert.match(tech.stdout, /^\/net\/connman\/technology\/ethernet\n {2}Name = Wired\n {2}Type = ethernet\n {2}Powered = True\n {2}Connected = True\n/);
    const techJson = JSON.parse((await nctl('technologies', '--json')).stdout) as { type: string; properties: { Powered: boolean } }[];
    assert.deepEqual(
      techJson.map((t) => [t.type, t.properties.Powered]),
      [['ethernet', true]],
    );

    const sv = await nctl('services');
    ok(sv, 'services');
    const lines = sv.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 3);
    for (const l of lines) assert.match(l, SERVICE_LINE);
    const order = (await lab.client.services()).map((s) => s.id);
    assert.deepEqual(
      lines.map((l) => l.slice(l.lastIndexOf(' ') + 1)),
      order,
    );
    const json = JSON.parse((await nctl('services', '--json')).stdout) as { id: string; path: string; properties: { State: string; Ethernet: { Interface: string } } }[];
    assert.deepEqual(
      json.map((s) => s.id),
      order,
    );
    assert.deepEqual(json.map((s) => s.properties.Ethernet.Interface).sort(), ['eth0', 'eth1', 'eth2']);
  });

  it('services SERVICE takes an id, an object path or an interface name and prints every property', async () => {
    const s = await lab.serviceOn('eth1');
    const byIf = await nctl('services', 'eth1');
    ok(byIf, 'services eth1');
    assert.equal((await nctl('services', s.id)).stdout, byIf.stdout);
    assert.equal((await nctl('services', s.path)).stdout, byIf.stdout);
    const lines = byIf.stdout.trimEnd().split('\n');
    assert.equal(lines[0], s.path);
    assert.ok(lines.includes('  State = online'), byIf.stdout);
    assert.ok(lines.some((l) => /^ {2}Ethernet = \[ Method=auto, Interface=eth1, Address=[0-9A-F:]{17}, MTU=1500 \]$/.test(l)), byIf.stdout);
    const v4 = kernelAddresses(lab.netns, 'eth1', 'inet')[0] ?? '';
    assert.ok(lines.includes(`  IPv4 = [ Method=dhcp, Address=${v4.split('/')[0]}, Netmask=255.255.255.0, Gateway=198.51.100.1 ]`), byIf.stdout);
    const j = JSON.parse((await nctl('services', 'eth1', '--json')).stdout) as { id: string; properties: Record<string, unknown> };
    assert.equal(j.id, s.id);
    assert.deepEqual(j.properties['IPv4.Configuration'], { Method: 'dhcp' });
  });

  it('disconnect: idle, and its IPv4 address leaves the kernel; connect brings it back', async () => {
    const s = await lab.serviceOn('eth2');
    assert.equal(kernelAddresses(lab.netns, 'eth2', 'inet').length, 1);
    const d = await nctl('disconnect', 'eth2');
    ok(d, 'disconnect');
    assert.equal(d.stdout, `Disconnected ${s.id}\n`);
    assert.equal(await stateOf('eth2'), 'idle');
    await eventually('no IPv4 address on eth2', () => kernelAddresses(lab.netns, 'eth2', 'inet').length === 0);

    const again = await nctl('disconnect', s.id);
    assert.equal(again.code, 1);
    assert.equal(again.stderr, `netsessionctl: disconnect ${s.id}: not connected (net.connman.Error.NotConnected)\n`);
    const againJson = await nctl('disconnect', s.id, '--json');
    assert.equal(againJson.code, 1);
    assert.deepEqual(JSON.parse(againJson.stdout), { error: { message: 'not connected (net.connman.Error.NotConnected)', dbusName: 'net.connman.Error.NotConnected', exitCode: 1 } });

    const c = await nctl('connect', 'eth2', '--json');
    ok(c, 'connect');
    assert.deepEqual(JSON.parse(c.stdout), { ok: true, command: 'connect', service: { id: s.id, path: s.path } });
    await eventually('eth2 online', async () => (await stateOf('eth2')) === 'online');
    const [addr] = await eventually('an IPv4 address on eth2', () => {
      const a = kernelAddresses(lab.netns, 'eth2', 'inet');
      return a.length === 1 ? a : undefined;
    });
    assert.match(addr ?? '', /^203\.0\.113\.[0-9]+\/24$/);

    const dup = await nctl('connect', 'eth2');
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /^netsessionctl: connect eth2: already connected.*\(net\.connman\.Error\.AlreadyConnected\)\n$/);
  });

  it('connect --wait returns once the service is ready or online', async () => {
    ok(await nctl('disconnect', 'eth2'), 'disconnect');
    const r = await nctl('connect', 'eth2', '--wait', '10', '--json');
    ok(r, 'connect --wait');
    const j = JSON.parse(r.stdout) as { state: string };
    assert.ok(['ready', 'online'].includes(j.state), r.stdout);
    assert.ok(['ready', 'online'].includes(await stateOf('eth2')));
    await eventually('eth2 online', async () => (await stateOf('eth2')) === 'online');
  });

  it('config --ipv4 manual puts that address on the interface; --ipv4 dhcp leases again', async () => {
    const r = await nctl('config', 'eth1', '--ipv4', 'manual', '198.51.100.200', '255.255.255.0', '198.51.100.1');
    ok(r, 'config --ipv4 manual');
    assert.equal(r.stdout, '');
    await eventually('198.51.100.200/24 on eth1 (and only it)', () => {
      const a = kernelAddresses(lab.netns, 'eth1', 'inet');
      return a.length === 1 && a[0] === '198.51.100.200/24';
    });
    const p = (await lab.serviceOn('eth1')).properties;
    assert.deepEqual(p['IPv4.Configuration'], { Method: 'manual', Address: '198.51.100.200', Netmask: '255.255.255.0', Gateway: '198.51.100.1' });
    await eventually('IPv4 in use is manual', async () => (await lab.serviceOn('eth1')).properties.IPv4.Address === '198.51.100.200');

    ok(await nctl('config', 'eth1', '--ipv4', 'dhcp'), 'config --ipv4 dhcp');
    await eventually('a DHCP address on eth1 again', () => {
      const a = kernelAddresses(lab.netns, 'eth1', 'inet');
      return a.length === 1 && a[0] !== '198.51.100.200/24' && a[0]?.startsWith('198.51.100.');
    });
    assert.deepEqual((await lab.serviceOn('eth1')).properties['IPv4.Configuration'], { Method: 'dhcp' });
    await eventually('eth1 online', async () => (await stateOf('eth1')) === 'online');
  });

  it('config --ipv4 off removes the IPv4 address from the kernel', async () => {
    ok(await nctl('config', 'eth1', '--ipv4', 'off'), 'config --ipv4 off');
    await eventually('no IPv4 on eth1', () => kernelAddresses(lab.netns, 'eth1', 'inet').length === 0);
    ok(await nctl('config', 'eth1', '--ipv4', 'dhcp'), 'config --ipv4 dhcp');
    await eventually('IPv4 back on eth1', () => kernelAddresses(lab.netns, 'eth1', 'inet').length === 1);
    await eventually('eth1 online', async () => (await stateOf('eth1')) === 'online');
  });

  it('disconnect also takes the IPv6 addresses off the interface (ConnMan disables IPv6 on it)', async () => {
    // IPv6 may still be coming back from an earlier test (SLAAC needs a fresh RA after IPv6 is re-enabled)
    await eventually('a global IPv6 address on eth2', () => kernelAddresses(lab.netns, 'eth2', 'inet6').length === 1, 5000);
    try {
      ok(await nctl('disconnect', 'eth2'), 'disconnect');
      await eventually('no global IPv6 on eth2', () => kernelAddresses(lab.netns, 'eth2', 'inet6').length === 0, 3000);
    } finally {
      await nctl('connect', 'eth2');
      await eventually('eth2 online', async () => (await stateOf('eth2')) === 'online');
    }
  });

  it('config --ipv6 manual puts that address on the interface; --ipv6 off removes IPv6 addresses', async () => {
    try {
      ok(await nctl('config', 'eth2', '--ipv6', 'manual', '2001:db8:3::200', '64', '2001:db8:3::1'), 'config --ipv6 manual');
      assert.equal((await lab.serviceOn('eth2')).properties.IPv6.Address, '2001:db8:3::200');
      await eventually('2001:db8:3::200/64 on eth2', () => kernelAddresses(lab.netns, 'eth2', 'inet6').includes('2001:db8:3::200/64'), 3000);
      ok(await nctl('config', 'eth2', '--ipv6', 'off'), 'config --ipv6 off');
      await eventually('no global IPv6 on eth2', () => kernelAddresses(lab.netns, 'eth2', 'inet6').length === 0, 3000);
    } finally {
      await nctl('config', 'eth2', '--ipv6', 'auto');
      await eventually('eth2 online', async () => (await stateOf('eth2')) === 'online');
    }
  });

  it('config --nameservers and --domains of the default service end up in resolv.conf; no values clears them', async () => {
    const resolv = lab.info.daemon?.resolvConf ?? '';
    const def = (await lab.client.services())[0];
    assert.ok(def);
    const ifname = def.properties.Ethernet.Interface ?? '';
    ok(await nctl('config', ifname, '--nameservers', '192.0.2.53', '2001:db8::53', '--domains', 'example.test', 'lab.test'), 'config --nameservers');
    const p = (await lab.serviceOn(ifname)).properties;
    assert.deepEqual(p['Nameservers.Configuration'], ['192.0.2.53', '2001:db8::53']);
    assert.deepEqual(p['Domains.Configuration'], ['example.test', 'lab.test']);
    await eventually('resolv.conf has them', () => {
      const text = readFileSync(resolv, 'utf8');
      return /^nameserver 192\.0\.2\.53$/m.test(text) && /^nameserver 2001:db8::53$/m.test(text) && /^search example\.test lab\.test$/m.test(text);
    });
    ok(await nctl('config', ifname, '--nameservers', '--domains'), 'config --nameservers (clear)');
    const q = (await lab.serviceOn(ifname)).properties;
    assert.deepEqual(q['Nameservers.Configuration'], []);
    assert.deepEqual(q['Domains.Configuration'], []);
    await eventually('resolv.conf back to the ISP’s server', () => {
      const text = readFileSync(resolv, 'utf8');
      return !text.includes('192.0.2.53') && !text.includes('example.test');
    });
  });

  it('config --timeservers and --autoconnect change those properties (the flags column shows it)', async () => {
    const s = await lab.serviceOn('eth0');
    ok(await nctl('config', s.id, '--timeservers', 'ntp.example.test', '192.0.2.123', '--autoconnect', 'no'), 'config');
    const p = (await lab.serviceOn('eth0')).properties;
    assert.deepEqual(p['Timeservers.Configuration'], ['ntp.example.test', '192.0.2.123']);
    assert.equal(p.AutoConnect, false);
    // favorite, not autoconnect; the state column is not asserted here (see the todo below)
    assert.match((await nctl('services')).stdout, new RegExp(`^\\* [ ORacd] Wired {16}${s.id}$`, 'm'));
    ok(await nctl('config', s.id, '--timeservers', '--autoconnect', 'yes', '--json'), 'config back');
    const q = (await lab.serviceOn('eth0')).properties;
    assert.deepEqual(q['Timeservers.Configuration'], []);
    assert.equal(q.AutoConnect, true);
    await eventually('all online', allOnline, 15_000);
  });

  it('config --autoconnect no leaves a connected service connected (ConnMan: it only stops automatic connections)', async () => {
    await eventually('all online', allOnline, 15_000);
    try {
      ok(await nctl('config', 'eth0', '--autoconnect', 'no'), 'config');
      await sleep(500);
      assert.equal(await stateOf('eth0'), 'online');
    } finally {
      await nctl('config', 'eth0', '--autoconnect', 'yes');
      await eventually('all online', allOnline, 15_000);
    }
  });

  it('move-before / move-after reorder the services, and the default route follows the first', async () => {
    const first = (await lab.client.services())[0];
    assert.ok(first);
    const firstIf = first.properties.Ethernet.Interface ?? '';
    const other = firstIf === 'eth2' ? 'eth1' : 'eth2';
    ok(await nctl('move-after', firstIf, other), 'move-after');
    const order = (await lab.client.services()).map((s) => s.properties.Ethernet.Interface);
    assert.ok(order.indexOf(firstIf) > order.indexOf(other), order.join(','));
    await eventually('default route via the new first service', () => {
      const r = kernelDefaultRoutes(lab.netns);
      const want = (order[0] === 'eth0' ? '192.0.2.1' : order[0] === 'eth1' ? '198.51.100.1' : '203.0.113.1') + ` ${order[0]}`;
      return r.length === 1 && r[0] === want;
    });
    ok(await nctl('move-before', firstIf, order[0] ?? ''), 'move-before');
    assert.equal((await lab.client.services())[0]?.properties.Ethernet.Interface, firstIf);
    await eventually('default route back', () => kernelDefaultRoutes(lab.netns)[0]?.endsWith(` ${firstIf}`));
    const self = await nctl('move-before', 'eth1', 'eth1');
    assert.equal(self.code, 1);
    assert.match(self.stderr, /\(net\.connman\.Error\.InvalidService\)\n$/);
  });

  it('disable ethernet: every service idle, no addresses; enable: online again; twice is not an error', async () => {
    const d = await nctl('disable', 'ethernet');
    ok(d, 'disable');
    assert.equal(d.stdout, 'Disabled ethernet\n');
    const t = (await lab.client.technologies())[0];
    assert.equal(t?.properties.Powered, false);
    await eventually('all idle', allIdle);
    await eventually('no IPv4 addresses', () => ['eth0', 'eth1', 'eth2'].every((i) => kernelAddresses(lab.netns, i, 'inet').length === 0));
    const again = await nctl('disable', 'ethernet');
    ok(again, 'disable again');
    assert.equal(again.stdout, 'ethernet is already disabled\n');
    const e = await nctl('enable', 'ethernet', '--json');
    ok(e, 'enable');
    assert.deepEqual(JSON.parse(e.stdout), { ok: true, command: 'enable', technology: 'ethernet' });
    await eventually('all online', allOnline, 15_000);
    assert.ok(['eth0', 'eth1', 'eth2'].every((i) => kernelAddresses(lab.netns, i, 'inet').length === 1));
  });

  it('offline on: every service idle and the manager offline; off: online again', async () => {
    const on = await nctl('offline', 'on');
    ok(on, 'offline on');
    assert.equal(on.stdout, 'Offline mode on\n');
    await eventually('all idle', allIdle);
    assert.deepEqual(await lab.client.getProperties(), { State: 'offline', OfflineMode: true, SessionMode: false });
    await eventually('no IPv4 addresses', () => ['eth0', 'eth1', 'eth2'].every((i) => kernelAddresses(lab.netns, i, 'inet').length === 0));
    ok(await nctl('offline', 'off'), 'offline off');
    await eventually('all online', allOnline, 15_000);
    assert.equal((await lab.client.getProperties()).State, 'online');
  });

  it('bad input exits 2 and sends nothing: no call reaches the daemon, no setting changes', async () => {
    const settings = async (): Promise<unknown[]> =>
      (await lab.client.services()).map((s) => Object.entries(s.properties).filter(([k]) => k.endsWith('.Configuration') || k === 'AutoConnect'));
    const before = await settings();
    // the bus's own view of every call to net.connman while the bad commands run
    const spy = start('dbus-monitor', ['--address', lab.bus, "type='method_call',destination='net.connman'"]);
    try {
      await eventually('dbus-monitor attached', () => spy.out().includes('NameAcquired'));
      const bad: string[][] = [
        ['config', 'eth1', '--ipv4', 'manual', '198.51.100.300', '255.255.255.0', '198.51.100.1'],
        ['config', 'eth1', '--ipv4', 'manual', '198.51.100.200', '255.0.255.0'],
        ['config', 'eth1', '--ipv4', 'manual', '198.51.100.200', '255.255.255.0', '--nameservers', 'not-an-ip'],
        ['config', 'eth1', '--ipv6', 'manual', '2001:db8:2::5', '200'],
        ['config', 'eth1', '--autoconnect', 'maybe'],
        ['config', 'eth1'],
        ['config', 'eth1', '--bogus'],
        ['connect'],
        ['connect', 'a b'],
        ['services', 'eth1', 'eth2'],
        ['offline', 'maybe'],
        ['enable', 'Ether net'],
        ['move-before', 'eth1'],
        ['connect', 'eth1', '--wait', 'soon'],
        ['nosuchcommand'],
      ];
      for (const args of bad) {
        const r = await nctl(...args);
        assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
        assert.notEqual(r.stderr, '', args.join(' '));
      }
      const j = await nctl('config', 'eth1', '--ipv4', 'bogus', '--json');
      assert.equal(j.code, 2);
      assert.equal((JSON.parse(j.stdout) as { error: { exitCode: number } }).error.exitCode, 2);
      const badBus = await ctl(['--bus', 'bogus', 'state']);
      assert.equal(badBus.code, 2);
      assert.match(badBus.stderr, /bad bus address/);
      await sleep(300);
    } finally {
      spy.child.kill('SIGTERM');
      await spy.exited;
    }
    assert.doesNotMatch(spy.out(), /method call/, spy.out());
    assert.deepEqual(await settings(), before);
  });

  it('daemon errors exit 1: no such service', async () => {
    const r = await nctl('connect', 'eth9');
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'netsessionctl: connect eth9: no such service "eth9" (see netsessionctl services)\n');
  });

  it('monitor prints each signal with a time stamp until SIGINT; --json one object per line', async () => {
    const text = start(process.execPath, [CLI, '--bus', lab.bus, 'monitor']);
    const json = start(process.execPath, [CLI, '--bus', lab.bus, 'monitor', '--json']);
    try {
      await eventually('both monitors listening', () => text.err().includes('monitoring') && json.err().includes('monitoring'));
      const s = await lab.serviceOn('eth2');
      await lab.client.service(s.id).disconnect();
      await eventually('State = idle printed', () => new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3} Service {6}${s.id} State = idle$`, 'm').test(text.out()));
      await eventually('json State idle', () => json.out().includes('"name":"State","value":"idle"'));
      await lab.client.service(s.id).connect();
      await eventually('State = online printed', () => new RegExp(`Service {6}${s.id} State = online$`, 'm').test(text.out()));
      await eventually('json State online', () => json.out().includes('"name":"State","value":"online"'));
    } finally {
      text.child.kill('SIGINT');
      json.child.kill('SIGTERM');
    }
    assert.equal(await text.exited, 0);
    assert.equal(await json.exited, 0);
    const lines = json
      .out()
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { time: string; kind: string; id?: string; name?: string; value?: unknown });
    assert.ok(lines.every((l) => !Number.isNaN(Date.parse(l.time))));
    const states = lines.filter((l) => l.kind === 'property-changed' && l.name === 'State' && l.id !== undefined).map((l) => l.value);
    assert.equal(states[0], 'idle');
    assert.equal(states.at(-1), 'online');
    await eventually('eth2 online', async () => (await stateOf('eth2')) === 'online');
  });

  it('no daemon or no bus: exit 3 with a message saying so; a running monitor reports the daemon leaving', async () => {
    const mon = start(process.execPath, [CLI, '--bus', lab.bus, 'monitor']);
    await eventually('monitor listening', () => mon.err().includes('monitoring'));
    await labDaemon(lab.name, 'stop');
    await eventually('monitor saw net.connman leave', () => /Bus +net\.connman +left the bus$/m.test(mon.out()));

    const r = await nctl('state');
    assert.equal(r.code, 3);
    assert.match(r.stderr, /^netsessionctl: state: netsessiond is not reachable: net\.connman is not on the bus at .* \(is netsessiond running\?\)\n$/);
    const j = await nctl('services', '--json');
    assert.equal(j.code, 3);
    assert.equal((JSON.parse(j.stdout) as { error: { exitCode: number } }).error.exitCode, 3);
    const noBus = await ctl(['--bus', `unix:path=${lab.info.dir}/bus/no-such-socket`, 'services']);
    assert.equal(noBus.code, 3);
    assert.match(noBus.stderr, /netsessiond is not reachable: cannot connect to the bus at .*no such socket \(ENOENT\)/);
    // the default address comes from DBUS_SYSTEM_BUS_ADDRESS
    const env = await ctl(['state'], childEnv({ DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${lab.info.dir}/bus/no-such-socket` }));
    assert.equal(env.code, 3);
    assert.ok(env.stderr.includes('no-such-socket'), env.stderr);

    // the monitor outlives the daemon, not the bus: exit 3 when the bus goes
    assert.equal(mon.child.exitCode, null);
    await labDown(lab.name);
    assert.equal(await mon.exited, 3);
    assert.match(mon.err(), /netsessionctl: monitor: lost the bus: /);
  });
});
