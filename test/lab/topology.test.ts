// The lab's pure parts: topology, ip batches, dnsmasq argv, bus config, the internet's HTTP
// behaviour. No root needed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { renderBusConfig } from '../../src/lab/bus-config.ts';
import { dnsmasqArgv } from '../../src/lab/dnsmasq.ts';
import { parseServeSpec, plainAddress, route } from '../../src/lab/internet-server.ts';
import {
  deviceBatch,
  ispBatch,
  ispShellScript,
  LabUsageError,
  labInfo,
  parseIspAction,
  parseLinkState,
  parseUplinkRef,
  resolveTopology,
  rootBatch,
  topologyFromJson,
  uplinkFiles,
  validateLabName,
} from '../../src/lab/topology.ts';

const DOC4 = [/^192\.0\.2\./, /^198\.51\.100\./, /^203\.0\.113\./, /^198\.1[89]\./];

describe('topology', () => {
  it('defaults to lab "lab" with 3 uplinks on the three TEST-NETs', () => {
    const t = resolveTopology();
    assert.equal(t.name, 'lab');
    assert.equal(t.dir, '/tmp/netsession-lab/lab');
    assert.equal(t.device.netns, 'nsl-lab-dev');
    assert.equal(t.bus.address, 'unix:path=/tmp/netsession-lab/lab/bus/system_bus_socket');
    assert.deepEqual(
      t.uplinks.map((u) => [u.name, u.ifname, u.ispNetns, u.ispIfname, u.gateway4, u.prefix4, u.gateway6, u.prefix6]),
      [
        ['isp0', 'eth0', 'nsl-lab-isp0', 'gw0', '192.0.2.1', '192.0.2.0/24', '2001:db8:1::1', '2001:db8:1::/64'],
        ['isp1', 'eth1', 'nsl-lab-isp1', 'gw1', '198.51.100.1', '198.51.100.0/24', '2001:db8:2::1', '2001:db8:2::/64'],
        ['isp2', 'eth2', 'nsl-lab-isp2', 'gw2', '203.0.113.1', '203.0.113.0/24', '2001:db8:3::1', '2001:db8:3::/64'],
      ],
    );
    for (const u of t.uplinks) {
      assert.equal(u.leaseSeconds, 3600);
      assert.equal(u.dhcpPool4.start.replace(/\.50$/, '.1'), u.gateway4);
      assert.equal(u.dhcpPool4.end.replace(/\.99$/, '.1'), u.gateway4);
    }
  });

  it('uplinks 3..63 use 198.19.<i>.0/24 and 2001:db8:<i+1>::/64; every address is a documentation one', () => {
    const t = resolveTopology({ name: 'x1', uplinks: 64 });
    assert.equal(t.uplinks.length, 64);
    assert.equal(t.uplinks[3]?.prefix4, '198.19.3.0/24');
    assert.equal(t.uplinks[7]?.gateway4, '198.19.7.1');
    assert.equal(t.uplinks[7]?.prefix6, '2001:db8:8::/64');
    assert.equal(t.uplinks[63]?.prefix4, '198.19.63.0/24');
    assert.equal(t.uplinks[63]?.prefix6, '2001:db8:40::/64');
    assert.equal(t.uplinks[63]?.ispNetns, 'nsl-x1-isp63');
    assert.equal(t.uplinks[63]?.ifname, 'eth63');
    assert.equal(new Set(t.uplinks.map((u) => u.prefix4)).size, 64, 'no two uplinks share a prefix');
    assert.equal(new Set(t.uplinks.map((u) => u.prefix6)).size, 64);
    for (const u of t.uplinks) {
      assert.ok(DOC4.some((r) => r.test(u.gateway4)), u.gateway4);
      assert.ok(u.gateway6.startsWith('2001:db8:'), u.gateway6);
      assert.ok(!u.prefix4.startsWith('198.18.0.'), 'does not overlap the internet address');
    }
  });

  it('takes per-uplink specs (lease, dhcp, mode, link)', () => {
    const t = resolveTopology({
      name: 'spec',
      leaseSeconds: 600,
      uplinks: [{}, { leaseSeconds: 120, dhcp: false, mode: 'portal', link: 'down' }],
    });
    assert.equal(t.uplinks[0]?.leaseSeconds, 600);
    assert.deepEqual(
      [t.uplinks[1]?.leaseSeconds, t.uplinks[1]?.dhcp, t.uplinks[1]?.mode, t.uplinks[1]?.link],
      [120, false, 'portal', 'down'],
    );
  });

  it('refuses bad specs with LabUsageError', () => {
    for (const spec of [
      { name: 'a-b' },
      { name: '' },
      { name: 'abcdefghi' },
      { name: 'a b' },
      { name: '../x' },
      { uplinks: 0 },
      { uplinks: 65 },
      { uplinks: 2.5 },
      { uplinks: [] },
      { leaseSeconds: 60 },
      { uplinks: [{ leaseSeconds: 119 }] },
    ]) {
      assert.throws(() => resolveTopology(spec), LabUsageError, JSON.stringify(spec));
    }
    assert.equal(validateLabName('Ab12'), 'Ab12');
  });

  it('parses uplink references, modes and link states', () => {
    assert.equal(parseUplinkRef('isp1'), 1);
    assert.equal(parseUplinkRef('eth2'), 2);
    assert.equal(parseUplinkRef('eth2', 3), 2);
    assert.equal(parseUplinkRef('isp63'), 63);
    assert.throws(() => parseUplinkRef('isp64'), LabUsageError);
    assert.throws(() => parseUplinkRef('eth3', 3), /unknown uplink "eth3" \(expected isp0\.\.isp2/);
    for (const bad of ['isp', 'wlan0', 'isp-1', 'isp01', '1', 'isp99', '']) {
      assert.throws(() => parseUplinkRef(bad), LabUsageError, bad);
    }
    assert.equal(parseIspAction('no-upstream'), 'no-upstream');
    assert.throws(() => parseIspAction('offline'), LabUsageError);
    assert.equal(parseLinkState('down'), 'down');
    assert.throws(() => parseLinkState('off'), LabUsageError);
  });

  it('creates veth ends directly inside their namespaces (nothing in the root namespace)', () => {
    const t = resolveTopology({ name: 'b', uplinks: 2 });
    assert.equal(
      rootBatch(t),
      [
        'netns add nsl-b-dev',
        'netns add nsl-b-isp0',
        'netns add nsl-b-isp1',
        'link add eth0 netns nsl-b-dev type veth peer name gw0 netns nsl-b-isp0',
        'link add eth1 netns nsl-b-dev type veth peer name gw1 netns nsl-b-isp1',
        '',
      ].join('\n'),
    );
    assert.match(deviceBatch(t), /link set eth1 up/);
    assert.doesNotMatch(deviceBatch(resolveTopology({ name: 'b', deviceLinksUp: false })), /eth0/);
    const isp = ispBatch(t, t.uplinks[1]!);
    assert.match(isp, /address add 198\.51\.100\.1\/24 dev gw1\n/);
    assert.match(isp, /address add 2001:db8:2::1\/64 dev gw1 nodad\n/);
    assert.match(isp, /address add 198\.18\.0\.1\/32 dev lo\n/);
    assert.match(isp, /address add 2001:db8:ffff::1\/128 dev lo\n/);
    const script = ispShellScript(t.uplinks[1]!);
    assert.match(script, /ethtool -K gw1 tx off/);
    assert.match(script, /net\.ipv6\.conf\.gw1\.accept_dad=0/);
    assert.match(script, /ip -batch -$/);
  });

  it('builds the dnsmasq argv of an ISP', () => {
    const t = resolveTopology({ name: 'd', leaseSeconds: 300 });
    const u = t.uplinks[2]!;
    const argv = dnsmasqArgv(t, u, uplinkFiles(t.dir, 2));
    for (const a of [
      '--keep-in-foreground',
      '--interface=gw2',
      '--dhcp-range=203.0.113.50,203.0.113.99,255.255.255.0,300',
      '--dhcp-option=option:router,203.0.113.1',
      '--dhcp-option=option:dns-server,203.0.113.1',
      '--enable-ra',
      '--dhcp-range=2001:db8:3::,ra-only,64',
      '--address=/#/198.18.0.1',
      '--address=/#/2001:db8:ffff::1',
      '--dhcp-leasefile=/tmp/netsession-lab/d/isp2.leases',
      '--conf-file=/dev/null',
    ]) {
      assert.ok(argv.includes(a), `${a} in ${argv.join(' ')}`);
    }
    assert.equal(argv[0], 'dnsmasq');
  });

  it('renders a bus config that listens on the lab socket and allows net.connman', () => {
    const xml = renderBusConfig({
      labName: 'q',
      listenAddress: 'unix:path=/tmp/netsession-lab/q/bus/system_bus_socket',
      includes: ['/usr/share/dbus-1/system.d/connman.conf'],
    });
    assert.match(xml, /<listen>unix:path=\/tmp\/netsession-lab\/q\/bus\/system_bus_socket<\/listen>/);
    assert.match(xml, /<include ignore_missing="yes">\/usr\/share\/dbus-1\/system.d\/connman.conf<\/include>/);
    assert.match(xml, /<allow own="net.connman"\/>/);
    assert.match(xml, /<allow send_destination="net.connman"\/>/);
    assert.match(xml, /<limit name="max_replies_per_connection">100000<\/limit>/);
    assert.match(xml, /<type>system<\/type>/);
  });

  it('round-trips through lab.json', () => {
    const t = resolveTopology({ name: 'rt', uplinks: [{ leaseSeconds: 200 }, {}], leaseSeconds: 900 });
    const info = labInfo(t);
    assert.equal(info.kind, 'netsession-lab');
    assert.deepEqual(Object.keys(info.internet).sort(), ['echoPort', 'httpPort', 'ipv4', 'ipv6']);
    const back = topologyFromJson(JSON.stringify(info));
    assert.deepEqual(labInfo(back), info);
    assert.throws(() => topologyFromJson('{"name":"a-b","uplinks":[{}]}'), LabUsageError);
    assert.throws(() => topologyFromJson('[]'), /lab.json/);
  });
});

describe('internet server routes', () => {
  it('answers whoami, the status page (empty body) and login; 404 otherwise', () => {
    const w = route('online', '/whoami', '192.0.2.50', '198.18.0.1', 'isp0');
    assert.equal(w.status, 200);
    assert.deepEqual(JSON.parse(w.body), { client: '192.0.2.50', isp: 'isp0' });
    const s = route('online', '/online/status.html', 'x', 'h', 'isp0');
    assert.equal(s.status, 200);
    assert.equal(s.headers['X-ConnMan-Status'], 'online');
    assert.equal(s.body, '');
    assert.equal(route('online', '/login', 'x', 'h', 'isp1').status, 200);
    assert.equal(route('online', '/nope', 'x', 'h', 'isp1').status, 404);
  });

  it('redirects everything but /login to the login page in portal mode', () => {
    const s = route('portal', '/online/status.html', 'x', '[2001:db8:ffff::1]', 'isp0');
    assert.equal(s.status, 302);
    assert.equal(s.headers.Location, 'http://[2001:db8:ffff::1]/login');
    assert.equal(s.headers['X-ConnMan-Status'], undefined);
    assert.equal(route('portal', '/whoami', 'x', 'h', 'isp0').status, 302);
    assert.equal(route('portal', '/login', 'x', 'h', 'isp0').status, 200);
  });

  it('parses --serve NAME:NETNS:MODEFILE', () => {
    assert.deepEqual(parseServeSpec('isp3:nsl-a-isp3:/tmp/x/isp3.mode'), {
      isp: 'isp3',
      netns: 'nsl-a-isp3',
      modeFile: '/tmp/x/isp3.mode',
    });
    assert.deepEqual(parseServeSpec('isp0:'), { isp: 'isp0' });
    assert.deepEqual(parseServeSpec('isp0:ns:/a:b'), { isp: 'isp0', netns: 'ns', modeFile: '/a:b' });
    assert.throws(() => parseServeSpec('isp0'), /bad --serve/);
    assert.throws(() => parseServeSpec('isp0:../x:/m'), /bad --serve/);
  });

  it('strips the v4-mapped prefix from client addresses', () => {
    assert.equal(plainAddress('::ffff:192.0.2.7'), '192.0.2.7');
    assert.equal(plainAddress('2001:db8:1::9'), '2001:db8:1::9');
  });
});
