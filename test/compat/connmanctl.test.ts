// Debian's connmanctl (its connmand is never started) against netsessiond on a lab bus
// (root): every command a user would type gives ConnMan's answers, with the effect in the
// kernel of the device namespace. connmanctl exits 0 even on errors, so its error text is
// what is asserted. Where our own CLI prints the same thing, the two outputs are compared.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { labLink } from '../../src/lab/lab.ts';
import { childEnv, CLI, ctl, eventually, kernelAddresses, type RunResult, rootSkip, run, start, startLab, type TestLab } from '../cli/lab-helpers.ts';

describe('connmanctl against netsessiond', { skip: rootSkip }, () => {
  let lab: TestLab;
  let env: NodeJS.ProcessEnv;
  const connmanctl = (...args: string[]): Promise<RunResult> => run('connmanctl', args, env);
  const ours = (...args: string[]): Promise<RunResult> => ctl(['--bus', lab.bus, ...args]);
  const stateOf = async (ifname: string): Promise<string> => (await lab.serviceOn(ifname)).properties.State;
  const allOnline = async (): Promise<boolean> => (await lab.client.services()).every((s) => s.properties.State === 'online');
  /** connmanctl reports errors on stderr and may still exit 0 */
  const failed = (r: RunResult, text: RegExp): void => {
    assert.ok(r.code === 0 || r.code === 1, `exit ${r.code}`);
    assert.match(r.stderr, text);
  };

  before(async () => {
    lab = await startLab('cm');
    env = childEnv({ DBUS_SYSTEM_BUS_ADDRESS: lab.bus });
    // IPv6 details arrive a little after online; the outputs compared below include them
    await eventually('IPv6 on every service', async () => (await lab.client.services()).every((s) => s.properties.IPv6.Address !== undefined));
  });
  after(async () => {
    await lab?.down();
  });

  it('state, technologies, services and services <id> print what ConnMan would, and what netsessionctl prints', async () => {
    const st = await connmanctl('state');
    assert.equal(st.code, 0);
    assert.equal(st.stdout, '  State = online\n  OfflineMode = False\n  SessionMode = False\n');

    const tech = await connmanctl('technologies');
    assert.equal(tech.stdout, '/net/connman/technology/ethernet\n  Name = Wired\n  Type = ethernet\n  Powered = True\n  Connected = True\n  Tethering = False\n  TetheringFreq = 0\n');

    const sv = await connmanctl('services');
    const ids = (await lab.client.services()).map((s) => s.id);
    assert.equal(sv.stdout, ids.map((id) => `*AO Wired                ${id}\n`).join(''));

    const s = await lab.serviceOn('eth1');
    const detail = await connmanctl('services', s.id);
    const lines = detail.stdout.trimEnd().split('\n');
    assert.equal(lines[0], s.path);
    assert.ok(lines.includes('  State = online'));
    assert.ok(lines.includes('  Type = ethernet'));
    assert.ok(lines.some((l) => l.startsWith('  Ethernet = [ Method=auto, Interface=eth1, ')));
    const v4 = kernelAddresses(lab.netns, 'eth1', 'inet')[0]?.split('/')[0];
    assert.ok(lines.includes(`  IPv4 = [ Method=dhcp, Address=${v4}, Netmask=255.255.255.0, Gateway=198.51.100.1 ]`), detail.stdout);

    // our CLI is a drop-in for these four
    for (const args of [['state'], ['technologies'], ['services'], ['services', s.id]]) {
      const [a, b] = [await connmanctl(...args), await ours(...args)];
      assert.equal(b.stdout, a.stdout, args.join(' '));
    }
  });

  it('disconnect <id>: idle and the IPv4 address leaves the kernel; connect <id> brings it back; errors in ConnMan’s words', async () => {
    const s = await lab.serviceOn('eth2');
    const d = await connmanctl('disconnect', s.id);
    assert.equal(d.stdout, `Disconnected ${s.id}\n`);
    assert.equal(await stateOf('eth2'), 'idle');
    await eventually('no IPv4 on eth2', () => kernelAddresses(lab.netns, 'eth2', 'inet').length === 0);
    assert.match((await connmanctl('services')).stdout, new RegExp(`^\\*A  Wired {16}${s.id}$`, 'm'));
    failed(await connmanctl('disconnect', s.id), new RegExp(`^Error ${s.path}: .*not connected`));

    const c = await connmanctl('connect', s.id);
    assert.equal(c.stdout, `Connected ${s.id}\n`);
    await eventually('eth2 online', async () => (await stateOf('eth2')) === 'online');
    await eventually('IPv4 on eth2', () => kernelAddresses(lab.netns, 'eth2', 'inet')[0]?.startsWith('203.0.113.'));
    failed(await connmanctl('connect', s.id), new RegExp(`^Error ${s.path}: `));
    failed(await connmanctl('connect', 'ethernet_000000000000_cable'), /^Error \/net\/connman\/service\/ethernet_000000000000_cable: /);
  });

  it('config <id> --ipv4 manual A M G puts the address on the interface; --ipv4 dhcp leases again', async () => {
    const s = await lab.serviceOn('eth1');
    const r = await connmanctl('config', s.id, '--ipv4', 'manual', '198.51.100.210', '255.255.255.0', '198.51.100.1');
    assert.equal(r.stderr, '');
    await eventually('198.51.100.210/24 on eth1', () => {
      const a = kernelAddresses(lab.netns, 'eth1', 'inet');
      return a.length === 1 && a[0] === '198.51.100.210/24';
    });
    const lines = (await connmanctl('services', s.id)).stdout.split('\n');
    assert.ok(lines.includes('  IPv4.Configuration = [ Method=manual, Address=198.51.100.210, Netmask=255.255.255.0, Gateway=198.51.100.1 ]'), lines.join('\n'));
    assert.ok(lines.includes('  IPv4 = [ Method=manual, Address=198.51.100.210, Netmask=255.255.255.0, Gateway=198.51.100.1 ]'), lines.join('\n'));
    failed(await connmanctl('config', s.id, '--ipv4', 'bogus'), /^Error ethernet_[0-9a-f]{12}_cable: .*Method/);
    await connmanctl('config', s.id, '--ipv4', 'dhcp');
    await eventually('DHCP address on eth1', () => {
      const a = kernelAddresses(lab.netns, 'eth1', 'inet');
      return a.length === 1 && a[0] !== '198.51.100.210/24' && a[0]?.startsWith('198.51.100.');
    });
    await eventually('eth1 online', async () => (await stateOf('eth1')) === 'online');
  });

  it('config <id> --nameservers: the default service’s servers go to resolv.conf; without values they are cleared', async () => {
    const def = (await lab.client.services())[0];
    assert.ok(def);
    const resolv = lab.info.daemon?.resolvConf ?? '';
    await connmanctl('config', def.id, '--nameservers', '192.0.2.53', '2001:db8::53');
    assert.ok((await connmanctl('services', def.id)).stdout.includes('  Nameservers.Configuration = [ 192.0.2.53, 2001:db8::53 ]\n'));
    assert.ok((await connmanctl('services', def.id)).stdout.includes('  Nameservers = [ 192.0.2.53, 2001:db8::53 ]\n'));
    await eventually('resolv.conf has them', () => /^nameserver 192\.0\.2\.53$/m.test(readFileSync(resolv, 'utf8')));
    await connmanctl('config', def.id, '--nameservers');
    assert.deepEqual((await lab.client.service(def.id).getProperties())['Nameservers.Configuration'], []);
    await eventually('resolv.conf without them', () => !readFileSync(resolv, 'utf8').includes('192.0.2.53'));
  });

  it('config <id> --ipv6 manual, --domains, --timeservers, --autoconnect: connmanctl reads back what it wrote', async () => {
    const s = await lab.serviceOn('eth2');
    const show = async (): Promise<string> => (await connmanctl('services', s.id)).stdout;
    try {
      await connmanctl('config', s.id, '--ipv6', 'manual', '2001:db8:3::77', '64', '2001:db8:3::1');
      assert.ok((await show()).includes('  IPv6.Configuration = [ Method=manual, Address=2001:db8:3::77, PrefixLength=64, Gateway=2001:db8:3::1, Privacy=disabled ]\n'));
      await connmanctl('config', s.id, '--ipv6', 'auto');
      assert.ok((await show()).includes('  IPv6.Configuration = [ Method=auto, Privacy=disabled ]\n'));
      await connmanctl('config', s.id, '--domains', 'a.test', 'b.test');
      await connmanctl('config', s.id, '--timeservers', '192.0.2.9');
      await connmanctl('config', s.id, '--autoconnect', 'no');
      const text = await show();
      assert.ok(text.includes('  Domains.Configuration = [ a.test, b.test ]\n'), text);
      assert.ok(text.includes('  Timeservers.Configuration = [ 192.0.2.9 ]\n'), text);
      assert.ok(text.includes('  AutoConnect = False\n'), text);
      assert.match((await connmanctl('services')).stdout, new RegExp(`^\\* . Wired {16}${s.id}$`, 'm'));
    } finally {
      await connmanctl('config', s.id, '--domains');
      await connmanctl('config', s.id, '--timeservers');
      await connmanctl('config', s.id, '--autoconnect', 'yes');
      await connmanctl('config', s.id, '--ipv6', 'auto');
    }
    const p = await lab.client.service(s.id).getProperties();
    assert.deepEqual([p['Domains.Configuration'], p['Timeservers.Configuration'], p.AutoConnect], [[], [], true]);
    await eventually('all online', allOnline, 15_000);
  });

  it('move-before / move-after reorder the list connmanctl prints', async () => {
    const [a, b] = (await lab.client.services()).map((s) => s.id);
    assert.ok(a && b);
    await connmanctl('move-after', a, b);
    const ids = (s: string): string[] => s.trimEnd().split('\n').map((l) => l.slice(l.lastIndexOf(' ') + 1));
    assert.deepEqual(ids((await connmanctl('services')).stdout).slice(0, 2), [b, a]);
    await connmanctl('move-before', a, b);
    assert.deepEqual(ids((await connmanctl('services')).stdout).slice(0, 2), [a, b]);
    failed(await connmanctl('move-before', a, a), new RegExp(`^Error /net/connman/service/${a}: `));
  });

  it('disable / enable ethernet power the technology off and on', async () => {
    const d = await connmanctl('disable', 'ethernet');
    // Debian's 1.41 prints "Disable ethernet" here (sic)
    assert.match(d.stdout, /^Disabled? ethernet\n$/);
    assert.ok((await connmanctl('technologies')).stdout.includes('  Powered = False\n'));
    await eventually('all idle', async () => (await lab.client.services()).every((s) => s.properties.State === 'idle'));
    assert.ok(['eth0', 'eth1', 'eth2'].every((i) => kernelAddresses(lab.netns, i, 'inet').length === 0));
    failed(await connmanctl('disable', 'ethernet'), /^ethernet is already disabled$/m);
    const e = await connmanctl('enable', 'ethernet');
    assert.equal(e.stdout, 'Enabled ethernet\n');
    await eventually('all online', allOnline, 15_000);
    assert.ok((await connmanctl('technologies')).stdout.includes('  Powered = True\n'));
    failed(await connmanctl('enable', 'ethernet'), /^ethernet is already enabled$/m);
  });

  it('enable / disable offline', async () => {
    assert.equal((await connmanctl('enable', 'offline')).stdout, 'Enabled offline\n');
    await eventually('all idle', async () => (await lab.client.services()).every((s) => s.properties.State === 'idle'));
    assert.equal((await connmanctl('state')).stdout, '  State = offline\n  OfflineMode = True\n  SessionMode = False\n');
    await connmanctl('disable', 'offline');
    await eventually('all online', allOnline, 15_000);
  });

  it('monitor shows the State changes of a cable pulled and plugged back in', async () => {
    const s = await lab.serviceOn('eth1');
    // connmanctl writes to a pipe through stdio buffers: line buffering makes lines arrive as they happen
    const mon = start('stdbuf', ['-oL', 'connmanctl', 'monitor'], env);
    const ourMon = start(process.execPath, [CLI, '--bus', lab.bus, 'monitor']);
    try {
      await eventually('our monitor listening', () => ourMon.err().includes('monitoring'));
      // connmanctl says nothing when it is ready: give it a moment to add its match rules
      await new Promise((r) => setTimeout(r, 700));
      await labLink(lab.name, 'isp1', 'down');
      await eventually('State = idle from connmanctl', () => mon.out().includes(`Service      ${s.id} State = idle\n`));
      await eventually('kernel address gone', () => kernelAddresses(lab.netns, 'eth1', 'inet').length === 0);
      await labLink(lab.name, 'isp1', 'up');
      await eventually('State = online from connmanctl', () => mon.out().includes(`Service      ${s.id} State = online\n`), 15_000);
    } finally {
      mon.child.kill('SIGINT');
      ourMon.child.kill('SIGINT');
      await labLink(lab.name, 'isp1', 'up');
    }
    await mon.exited;
    assert.equal(await ourMon.exited, 0);
    const states = mon
      .out()
      .split('\n')
      .filter((l) => l.startsWith(`Service      ${s.id} State = `))
      .map((l) => l.slice(l.lastIndexOf(' ') + 1));
    assert.equal(states[0], 'idle');
    assert.equal(states.at(-1), 'online');
    assert.ok(states.indexOf('ready') > 0 || states.includes('configuration'), states.join(','));
    // ours saw the same sequence of states, with time stamps
    const oursStates = ourMon
      .out()
      .split('\n')
      .filter((l) => l.includes(`Service      ${s.id} State = `))
      .map((l) => l.slice(l.lastIndexOf(' ') + 1));
    assert.deepEqual(oursStates, states);
    assert.ok(ourMon.out().split('\n').filter(Boolean).every((l) => /^\d\d:\d\d:\d\d\.\d{3} /.test(l)));
    await eventually('all online', allOnline, 15_000);
  });
});
