// Sessions for real: several sessions online on different uplinks at once, traffic with a
// session's SessionMarker leaving through that session's uplink (the ISP's server says so),
// fail-closed routing, owner checks, cleanup. A lab with three uplinks and netsessiond.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import dbus from 'dbus-next';
import { labDown, labLink, labUp } from '../../src/lab/lab.ts';
import type { LabInfo } from '../../src/lab/topology.ts';
import { TestBus, waitFor } from '../helpers/connman.ts';
import { App, type Settings } from '../helpers/session-app.ts';
import { whoamiMarked } from '../helpers/marked-http.ts';
import { isRoot, routeWithMark } from '../helpers/netns.ts';

const skip = !isRoot() && 'needs root (network namespaces)';
const NAME = `ss${process.pid % 1000}`;
const V = dbus.Variant;

const errorName = (name: string) => (e: unknown) => (e as { type?: string }).type === `net.connman.Error.${name}`;
const ourRules = (ns: string): string[] =>
  [...execFileSync('ip', ['-n', ns, '-4', 'rule'], { encoding: 'utf8' }).split('\n'), ...execFileSync('ip', ['-n', ns, '-6', 'rule'], { encoding: 'utf8' }).split('\n')].filter((l) => /proto 83/.test(l));

describe('sessions', { skip }, () => {
  let lab: LabInfo;
  let app: App;
  before(async () => {
    lab = await labUp({ name: NAME, uplinks: 3, daemon: { logLevel: 'debug' } });
    const tb = new TestBus(lab.bus.address);
    await waitFor('three services online', async () => (await tb.services()).filter((s) => s.props.State === 'online').length === 3, 15_000);
    tb.close();
    app = new App(lab.bus.address);
  });
  after(async () => {
    app?.close();
    await labDown(NAME);
  });

  test('first Update: ConnMan\'s eleven keys in ConnMan\'s order for a plain client; ours only for extended ones', async () => {
    const rulesBefore = ourRules(lab.device.netns);
    await app.create('/plain', {});
    await waitFor('first Update', async () => (app.updates.get('/plain')?.length ?? 0) > 0);
    assert.deepEqual(Object.keys(app.updates.get('/plain')![0]!), ['State', 'Name', 'IPv4', 'IPv6', 'Interface', 'Bearer', 'ConnectionType', 'AllowedBearers', 'AllowedInterface', 'ContextIdentifier', 'SourceIPRule']);
    assert.deepEqual(app.view('/plain').AllowedBearers, ['*']);
    // like ConnMan's, a plain session changes nothing in the kernel: nobody learns its marker
    const nftTables = (): string => execFileSync('ip', ['netns', 'exec', lab.device.netns, 'nft', 'list', 'tables'], { encoding: 'utf8' });
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(ourRules(lab.device.netns), rulesBefore, 'no rule for a ConnMan client\'s session');
    assert.doesNotMatch(nftTables(), /netsession/, 'no nft table: nothing of it is marked or counted');
    await app.create('/ext', { AvoidHandover: new V('b', false) });
    await waitFor('first Update', async () => (app.updates.get('/ext')?.length ?? 0) > 0);
    const marker = app.view('/ext').SessionMarker;
    assert.ok(typeof marker === 'number');
    // an extended session hears of its marker once the marker's rules are in the kernel, one per family
    assert.equal(ourRules(lab.device.netns).filter((l) => l.includes(`fwmark 0x${marker.toString(16)} `)).length, 2);
    // and the first such session brings the session table (its traffic is counted)
    await waitFor('the session nft table', async () => /table inet netsession/.test(nftTables()), 3000);
  });

  test('two sessions pinned to two uplinks are online at once, and their markers route there with the right source', async () => {
    await app.create('/s1', { AllowedInterface: new V('s', 'eth1'), IdleTimeout: new V('u', 0) });
    await app.create('/s2', { AllowedInterface: new V('s', 'eth2'), IdleTimeout: new V('u', 0) });
    await waitFor('both online, with IPv6', async () => app.view('/s1').State === 'online' && app.view('/s2').State === 'online' && Boolean((app.view('/s2').IPv6 as Settings | undefined)?.Gateway), 10_000);
    const tb = new TestBus(lab.bus.address);
    const eth1 = await tb.byIfname('eth1');
    const eth2 = await tb.byIfname('eth2');
    tb.close();
    assert.equal(app.view('/s1').Interface, 'eth1');
    assert.equal(app.view('/s2').Interface, 'eth2');
    const m1 = app.view('/s1').SessionMarker as number;
    const m2 = app.view('/s2').SessionMarker as number;
    assert.notEqual(m1, m2);
    await waitFor('rules in the kernel', async () => ourRules(lab.device.netns).some((l) => l.includes(`fwmark 0x${m2.toString(16)}`)), 3000);
    const a1 = (eth1.props.IPv4 as Settings).Address;
    const a2 = (eth2.props.IPv4 as Settings).Address;
    assert.deepEqual(await whoamiMarked(lab.device.netns, lab.internet.ipv4, m1), { client: a1, isp: 'isp1' });
    assert.deepEqual(await whoamiMarked(lab.device.netns, lab.internet.ipv4, m2), { client: a2, isp: 'isp2' });
    // IPv6 too
    const v6 = await whoamiMarked(lab.device.netns, lab.internet.ipv6, m2);
    assert.equal(v6.isp, 'isp2');
    assert.equal(v6.client, (eth2.props.IPv6 as Settings).Address);
    // unmarked traffic takes the default service (the first in order)
    const tb2 = new TestBus(lab.bus.address);
    const first = (await tb2.services())[0]!;
    tb2.close();
    const defIf = String((first.props.Ethernet as Settings).Interface);
    assert.equal((await whoamiMarked(lab.device.netns, lab.internet.ipv4)).isp, `isp${defIf.slice(3)}`);
  });

  test('fail closed: no usable service, no way out — and back when the uplink returns', async () => {
    await app.create('/nowhere', { AllowedInterface: new V('s', 'eth9'), Priority: new V('b', false) });
    await waitFor('Update', async () => app.view('/nowhere').State === 'disconnected');
    const m = app.view('/nowhere').SessionMarker as number;
    await waitFor('rule', async () => ourRules(lab.device.netns).some((l) => l.includes(`fwmark 0x${m.toString(16)}`)), 3000);
    assert.equal(routeWithMark(lab.device.netns, lab.internet.ipv4, m), undefined, 'the kernel has no way for it');
    await assert.rejects(whoamiMarked(lab.device.netns, lab.internet.ipv4, m), /ENETUNREACH|EHOSTUNREACH/);
    await assert.rejects(whoamiMarked(lab.device.netns, lab.internet.ipv6, m), /ENETUNREACH|EHOSTUNREACH/);
    // a marker nobody owns fails closed as well
    await assert.rejects(whoamiMarked(lab.device.netns, lab.internet.ipv4, 0x40000000 | 0xfff), /ENETUNREACH|EHOSTUNREACH/);
    // the session pinned to eth2 loses its cable: disconnected, unreachable; cable back: online, routed
    const m2 = app.view('/s2').SessionMarker as number;
    await labLink(NAME, 'isp2', 'down');
    await waitFor('s2 disconnected', async () => app.view('/s2').State === 'disconnected', 3000);
    await waitFor('s2 unreachable', async () => routeWithMark(lab.device.netns, lab.internet.ipv4, m2) === undefined && routeWithMark(lab.device.netns, lab.internet.ipv6, m2) === undefined, 3000);
    await assert.rejects(whoamiMarked(lab.device.netns, lab.internet.ipv4, m2), /ENETUNREACH|EHOSTUNREACH/);
    await labLink(NAME, 'isp2', 'up');
    await waitFor('s2 online again', async () => app.view('/s2').State === 'online', 15_000);
    await waitFor('s2 routed again', async () => (await whoamiMarked(lab.device.netns, lab.internet.ipv4, m2).catch(() => undefined))?.isp === 'isp2', 5000);
  });

  test('settings: bad input is refused with ConnMan\'s errors and changes nothing', async () => {
    await assert.rejects(app.create('/', {}), errorName('InvalidArguments'));
    await assert.rejects(app.create('/x', { Foo: new V('s', 'bar') }), errorName('InvalidArguments'));
    await assert.rejects(app.create('/x', { AllowedBearers: new V('s', 'ethernet') }), errorName('InvalidArguments'));
    await assert.rejects(app.create('/x', { State: new V('s', 'online') }), errorName('InvalidArguments'));
    await assert.rejects(app.create('/s1', {}), errorName('AlreadyExists'));
    await assert.rejects(app.create('/x', { EmergencyCall: new V('b', true) }), errorName('PermissionDenied'));
    await assert.rejects(app.create('/x', { Priority: new V('b', true) }), errorName('PermissionDenied'));
    // unknown bearers are dropped, an invalid ConnectionType at creation is ignored
    await app.create('/lenient', { AllowedBearers: new V('as', ['foo', 'ethernet', 'wifi']), ConnectionType: new V('s', 'bogus') });
    await waitFor('Update', async () => app.view('/lenient').State !== undefined);
    assert.deepEqual(app.view('/lenient').AllowedBearers, ['ethernet', 'wifi']);
    assert.equal(app.view('/lenient').ConnectionType, 'any');
    const [path] = [`/sessions/${(app.bus as unknown as { name: string }).name.replace(/[:.]/g, '_')}/lenient`];
    await assert.rejects(app.call(path, 'net.connman.Session', 'Change', 'sv', ['ConnectionType', new V('s', 'bogus')]), errorName('InvalidArguments'));
    await assert.rejects(app.call(path, 'net.connman.Session', 'Change', 'sv', ['SessionMarker', new V('u', 5)]), errorName('InvalidArguments'));
    assert.equal(app.view('/lenient').ConnectionType, 'any');
  });

  test('only the owner may use a session; a vanished owner leaves nothing behind', async () => {
    const other = new App(lab.bus.address);
    const owner = new App(lab.bus.address);
    const path = await owner.create('/mine', { AllowedInterface: new V('s', 'eth1'), Priority: new V('b', false) });
    await waitFor('online', async () => owner.view('/mine').State === 'online');
    const marker = owner.view('/mine').SessionMarker as number;
    for (const member of ['Destroy', 'Connect', 'Disconnect']) await assert.rejects(other.call(path, 'net.connman.Session', member), errorName('PermissionDenied'), member);
    await assert.rejects(other.call(path, 'net.connman.Session', 'Change', 'sv', ['AllowedInterface', new V('s', 'eth0')]), errorName('PermissionDenied'));
    await assert.rejects(other.call('/', 'net.connman.Manager', 'DestroySession', 'o', [path]), errorName('PermissionDenied'));
    await assert.rejects(other.call('/', 'net.connman.Manager', 'DestroySession', 'o', ['/sessions/nope']), errorName('InvalidArguments'));
    other.close();
    await waitFor('rule', async () => ourRules(lab.device.netns).some((l) => l.includes(`fwmark 0x${marker.toString(16)}`)), 3000);
    owner.close();
    await waitFor('the session is gone with its owner', async () => !ourRules(lab.device.netns).some((l) => l.includes(`fwmark 0x${marker.toString(16)} `)), 3000);
  });

  test('1,000 sessions created and destroyed: the kernel is back to what it was', async () => {
    // the session rules; the services' source rules follow IPv6 addresses that come and go on their own
    const sessionRules = (): string[] => ourRules(lab.device.netns).filter((l) => !l.startsWith('10950:')).sort();
    const before = sessionRules();
    const many = new App(lab.bus.address);
    // half of them extended (marker rules); a ConnMan client's session has none
    const settingsOf = (i: number) => ({ AllowedInterface: new V('s', `eth${i % 3}`), ...(i % 2 === 0 ? { AvoidHandover: new V('b', false) } : {}) });
    const paths = await Promise.all(Array.from({ length: 1000 }, (_, i) => many.create(`/m/${i}`, settingsOf(i))));
    await waitFor('all Updates', async () => [...Array(1000).keys()].every((i) => (many.updates.get(`/m/${i}`)?.length ?? 0) > 0), 20_000, 100);
    await waitFor('rules for the extended ones', async () => ourRules(lab.device.netns).length > before.length + 1000, 10_000, 100);
    await Promise.all(paths.map((p) => many.call('/', 'net.connman.Manager', 'DestroySession', 'o', [p])));
    await waitFor('rules gone', async () => sessionRules().join('\n') === before.join('\n'), 10_000, 100).catch((e) => {
      const now = sessionRules();
      throw new Error(`${(e as Error).message}: extra ${JSON.stringify(now.filter((l) => !before.includes(l)).slice(0, 5))} missing ${JSON.stringify(before.filter((l) => !now.includes(l)).slice(0, 5))}`);
    });
    many.close();
  });
});
