// The client library (src/client) against a real netsessiond in a lab (root): typed
// properties, handles, events, errors that keep their D-Bus names, and what happens when the
// daemon or the bus goes away (calls reject, they never hang).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ClientUsageError,
  ConnmanClient,
  type ConnmanEvent,
  DaemonError,
  DaemonUnavailableError,
  variant,
} from '../../src/client/index.ts';
import { labDaemon, labDown } from '../../src/lab/lab.ts';
import { eventually, kernelAddresses, rootSkip, startLab, type TestLab } from './lab-helpers.ts';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

describe('ConnmanClient against netsessiond', { skip: rootSkip }, () => {
  let lab: TestLab;
  const allOnline = async (): Promise<boolean> => (await lab.client.services()).every((s) => s.properties.State === 'online');

  before(async () => {
    lab = await startLab('cc');
  });
  after(async () => {
    await lab?.down();
  });

  it('reads typed properties: manager, technologies, services in order with id and path', async () => {
    const c = lab.client;
    assert.deepEqual(await c.getProperties(), { State: 'online', OfflineMode: false, SessionMode: false });
    const techs = await c.technologies();
    assert.deepEqual(
      techs.map((t) => [t.type, t.path, t.properties.Type, t.properties.Powered, t.properties.Connected]),
      [['ethernet', '/net/connman/technology/ethernet', 'ethernet', true, true]],
    );
    // IPv6 (router advertisements) may come a little after the service is online over IPv4
    const services = await eventually('IPv6 on every service', async () => {
      const all = await c.services();
      return all.every((s) => s.properties.IPv6.Address !== undefined) ? all : undefined;
    });
    assert.equal(services.length, 3);
    for (const s of services) {
      assert.equal(s.path, `/net/connman/service/${s.id}`);
      const p = s.properties;
      assert.equal(p.Type, 'ethernet');
      assert.equal(p.State, 'online');
      assert.equal(p.Name, 'Wired');
      assert.equal(p.Favorite, true);
      assert.equal(p.AutoConnect, true);
      assert.equal(p.Immutable, false);
      assert.equal(p.Ethernet.MTU, 1500);
      const ifname = p.Ethernet.Interface ?? '';
      assert.match(ifname, /^eth[0-2]$/);
      // what the daemon reports is what the kernel has
      assert.deepEqual([`${p.IPv4.Address}/24`], kernelAddresses(lab.netns, ifname, 'inet'));
      assert.equal(p.IPv4.Netmask, '255.255.255.0');
      assert.equal(p.IPv4.Method, 'dhcp');
      assert.equal(typeof p.IPv6.PrefixLength, 'number');
      assert.deepEqual(p['IPv4.Configuration'], { Method: 'dhcp' });
      assert.ok(Array.isArray(p.Nameservers) && p.Nameservers.length > 0);
      // unknown keys are kept, unwrapped
      assert.equal(p['mDNS.Configuration'], false);
      assert.deepEqual(p.Provider, {});
    }
    // GetProperties of one service agrees with GetServices
    const one = services[1];
    assert.ok(one);
    assert.deepEqual(await c.service(one.id).getProperties(), one.properties);
  });

  it('finds a service by id, object path or interface name; bad references are usage errors', async () => {
    const c = lab.client;
    const s = await lab.serviceOn('eth1');
    assert.equal((await c.findService(s.id))?.id, s.id);
    assert.equal((await c.findService(s.path))?.id, s.id);
    assert.equal((await c.findService('eth1'))?.id, s.id);
    assert.equal(await c.findService('eth7'), undefined);
    assert.equal(c.service(s.path).id, s.id);
    assert.throws(() => c.service('no/such'), ClientUsageError);
    assert.throws(() => c.technology('Ether net'), ClientUsageError);
  });

  it('delivers service, technology and manager signals as typed events', async () => {
    const c = lab.client;
    const s = await lab.serviceOn('eth2');
    const events: ConnmanEvent[] = [];
    const sub = await c.subscribe((ev) => events.push(ev));
    try {
      await c.service(s.id).disconnect();
      await eventually('State idle event', () =>
        events.some((e) => e.kind === 'property-changed' && e.object === 'service' && e.id === s.id && e.path === s.path && e.name === 'State' && e.value === 'idle'),
      );
      assert.ok(events.some((e) => e.kind === 'property-changed' && e.object === 'service' && e.id === s.id && e.name === 'IPv4' && JSON.stringify(e.value) === '{}'));
      await c.service(s.id).connect();
      assert.equal(await c.service(s.id).waitForState(['online'], 10_000), 'online');

      await c.technology('ethernet').setPowered(false);
      await eventually('Powered false event', () => events.some((e) => e.kind === 'property-changed' && e.object === 'technology' && e.type === 'ethernet' && e.name === 'Powered' && e.value === false));
      await eventually('manager State idle event', () => events.some((e) => e.kind === 'property-changed' && e.object === 'manager' && e.name === 'State' && e.value === 'idle'));
      await c.technology('ethernet').setPowered(true);
      await eventually('all online', allOnline, 15_000);

      const order = (await c.services()).map((x) => x.id);
      const [first, second] = order;
      assert.ok(first && second);
      events.length = 0;
      await c.service(first).moveAfter(second);
      const changed = await eventually('ServicesChanged', () => events.find((e) => e.kind === 'services-changed'));
      assert.ok(changed.kind === 'services-changed');
      assert.deepEqual(
        changed.changed.map((x) => x.id),
        [second, first, ...order.slice(2)],
      );
      assert.deepEqual(changed.removed, []);
      await c.service(first).moveBefore(c.service(second));
      assert.deepEqual(
        (await c.services()).map((x) => x.id),
        order,
      );
    } finally {
      await sub.close();
    }
  });

  it('events() is an async iterator of the same events', async () => {
    const c = lab.client;
    const s = await lab.serviceOn('eth0');
    const it = await c.events();
    await c.service(s.id).setDomains(['example.test']);
    let seen: ConnmanEvent | undefined;
    for await (const ev of it) {
      if (ev.kind === 'property-changed' && ev.name === 'Domains.Configuration') {
        seen = ev;
        break; // calls return(): the match rules go
      }
    }
    assert.deepEqual(seen && seen.kind === 'property-changed' ? seen.value : undefined, ['example.test']);
    await c.service(s.id).setDomains([]);
  });

  it('writes with ConnMan’s signatures: IPv4/IPv6 configuration, lists, AutoConnect', async () => {
    const h = lab.client.service((await lab.serviceOn('eth1')).id);
    await h.setIPv4({ Method: 'manual', Address: '198.51.100.201', Netmask: '255.255.255.0', Gateway: '198.51.100.1' });
    await eventually('198.51.100.201 in the kernel', () => kernelAddresses(lab.netns, 'eth1', 'inet')[0] === '198.51.100.201/24');
    await h.setIPv6({ Method: 'manual', Address: '2001:db8:2::201', PrefixLength: 64, Gateway: '2001:db8:2::1' });
    // PrefixLength goes out as a byte and comes back as a number
    assert.deepEqual((await h.getProperties())['IPv6.Configuration'], { Method: 'manual', Address: '2001:db8:2::201', PrefixLength: 64, Gateway: '2001:db8:2::1', Privacy: 'disabled' });
    await h.setIPv6({ Method: 'auto' });
    await h.setIPv4({ Method: 'dhcp' });
    await h.setNameservers(['192.0.2.53']);
    await h.setTimeservers(['192.0.2.123']);
    const p = await h.getProperties();
    assert.deepEqual(p['Nameservers.Configuration'], ['192.0.2.53']);
    assert.deepEqual(p['Timeservers.Configuration'], ['192.0.2.123']);
    assert.deepEqual(p.Nameservers, ['192.0.2.53']);
    await h.setNameservers([]);
    await h.setTimeservers([]);
    await eventually('eth1 back on DHCP', () => kernelAddresses(lab.netns, 'eth1', 'inet')[0]?.startsWith('198.51.100.') && kernelAddresses(lab.netns, 'eth1', 'inet')[0] !== '198.51.100.201/24');
    await eventually('all online', allOnline, 15_000);
  });

  it('errors keep the D-Bus name: NotConnected, InvalidArguments, InvalidProperty, NotSupported, UnknownObject', async () => {
    const c = lab.client;
    const s = await lab.serviceOn('eth2');
    const h = c.service(s.id);
    const rejects = async (p: Promise<unknown>, dbusName: string): Promise<DaemonError> => {
      try {
        await p;
      } catch (e) {
        assert.ok(e instanceof DaemonError, String(e));
        assert.equal(e.dbusName, dbusName, e.message);
        return e;
      }
      assert.fail(`expected ${dbusName}`);
    };
    await h.disconnect();
    const e = await rejects(h.disconnect(), 'net.connman.Error.NotConnected');
    assert.equal(e.shortName, 'NotConnected');
    assert.equal(e.call.member, 'Disconnect');
    assert.equal(e.call.path, s.path);
    assert.match(e.message, /^not connected: .*\(net\.connman\.Error\.NotConnected\)$/);
    await h.connect();
    await rejects(h.setRawProperty('AutoConnect', variant.s('yes')), 'net.connman.Error.InvalidArguments');
    await rejects(h.setRawProperty('Name', variant.s('x')), 'net.connman.Error.InvalidProperty');
    await rejects(h.clearProperty('Name'), 'net.connman.Error.InvalidProperty');
    await h.clearProperty('Error');
    await rejects(h.remove(), 'net.connman.Error.NotSupported');
    await rejects(c.service('ethernet_000000000000_cable').getProperties(), 'org.freedesktop.DBus.Error.UnknownObject');
    await rejects(c.technology('wifi').setPowered(true), 'org.freedesktop.DBus.Error.UnknownObject');
    await eventually('eth2 online', async () => (await h.getProperties()).State === 'online');
  });

  it('waitForState gives up with a timeout error', async () => {
    const h = lab.client.service((await lab.serviceOn('eth0')).id);
    await assert.rejects(h.waitForState(['failure'], 200), (e) => e instanceof DaemonUnavailableError && e.reason === 'timeout');
  });

  it('round trips are fast: connect, GetServices, SetProperty (medians)', async (t) => {
    const connect: number[] = [];
    const list: number[] = [];
    const set: number[] = [];
    const s = await lab.serviceOn('eth0');
    for (let i = 0; i < 20; i++) {
      let t0 = performance.now();
      const c = await ConnmanClient.connect(lab.bus);
      connect.push(performance.now() - t0);
      t0 = performance.now();
      await c.services();
      list.push(performance.now() - t0);
      t0 = performance.now();
      await c.service(s.id).setAutoConnect(true);
      set.push(performance.now() - t0);
      c.close();
    }
    const r = `connect+Hello+GetNameOwner ${median(connect).toFixed(1)} ms, GetServices ${median(list).toFixed(1)} ms, SetProperty ${median(set).toFixed(1)} ms`;
    t.diagnostic(r);
    process.stdout.write(`# client latency (median of 20): ${r}\n`);
    assert.ok(median(list) < 200, r);
  });

  it('no daemon: connect and calls fail with DaemonUnavailableError; events say it left and came back', async () => {
    const c = lab.client;
    const events: ConnmanEvent[] = [];
    const sub = await c.subscribe((ev) => events.push(ev));
    await labDaemon(lab.name, 'stop');
    await eventually('daemon left', () => events.some((e) => e.kind === 'daemon' && !e.present));
    await assert.rejects(c.services(), (e) => e instanceof DaemonUnavailableError && e.reason === 'no-daemon');
    await assert.rejects(ConnmanClient.connect(lab.bus), (e) => e instanceof DaemonUnavailableError && e.reason === 'no-daemon' && /net\.connman is not on the bus/.test(e.message));
    const lenient = await ConnmanClient.connect(lab.bus, { requireDaemon: false });
    assert.equal(lenient.daemonOwner, undefined);
    lenient.close();

    await labDaemon(lab.name, 'start');
    await eventually('daemon back', () => events.some((e) => e.kind === 'daemon' && e.present && e.owner.startsWith(':')));
    await eventually('services online again', async () => (await c.services()).length === 3 && (await allOnline()), 20_000);
    // signals of the new daemon come through (the owner changed)
    events.length = 0;
    const s = await lab.serviceOn('eth1');
    await c.service(s.id).disconnect();
    await eventually('State idle from the new daemon', () => events.some((e) => e.kind === 'property-changed' && e.object === 'service' && e.name === 'State' && e.value === 'idle'));
    await c.service(s.id).connect();
    await sub.close();
  });

  it('bad addresses are usage errors; a missing bus is DaemonUnavailableError(no-bus)', async () => {
    await assert.rejects(ConnmanClient.connect('nonsense'), ClientUsageError);
    await assert.rejects(ConnmanClient.connect('unix:abstract=/x'), ClientUsageError);
    await assert.rejects(ConnmanClient.connect(`unix:path=${lab.info.dir}/bus/absent`), (e) => e instanceof DaemonUnavailableError && e.reason === 'no-bus');
  });

  it('the bus going away ends the events and fails calls instead of hanging', async () => {
    const c = await ConnmanClient.connect(lab.bus);
    const events: ConnmanEvent[] = [];
    await c.subscribe((ev) => events.push(ev));
    await labDown(lab.name);
    await eventually('bus-lost event', () => events.some((e) => e.kind === 'bus-lost'));
    const t0 = Date.now();
    await assert.rejects(c.services(), (e) => e instanceof DaemonUnavailableError && e.reason === 'bus-lost');
    assert.ok(Date.now() - t0 < 1000);
    c.close();
    await sleep(10);
  });
});
