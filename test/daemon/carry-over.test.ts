// What a daemon restarted after a crash goes on with: the leases and IPv6 routers of the last
// run whose addresses and routes the kernel still holds for us — and nothing else.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Lease } from '../../src/bearers/dhcp/machine.ts';
import { defaultConfig } from '../../src/daemon/config.ts';
import { KEPT_LEASE_MARGIN_MS, leasesToGoOnWith, routersToHold } from '../../src/daemon/carry-over.ts';
import { command, createState, type EngineEvent, reduce } from '../../src/engine/engine.ts';
import type { EngineState } from '../../src/engine/types.ts';
import type { Address, Route } from '../../src/kernel/rtnetlink/types.ts';

const OURS = 83;
const NOW = 1_700_000_000_000;
const id = (i: number): string => `ethernet_02000000000${i}_cable`;
const link = (i: number, carrier = true): EngineEvent => ({ kind: 'link', link: { ifindex: 10 + i, ifname: `eth${i}`, mac: `02:00:00:00:00:0${i}`, mtu: 1500, carrier } });

/** eth0, eth1 connected; eth2 without carrier; eth3 disconnected by the user; eth4 manual IPv4, IPv6 off */
function state(): EngineState {
  let st = [0, 1, 3, 4].map((i) => link(i)).concat(link(2, false)).reduce((s, e) => reduce(s, e, 1000), createState(defaultConfig().engine));
  for (const cmd of [
    { kind: 'disconnect', id: id(3) },
    { kind: 'set-ipv4', id: id(4), config: { method: 'manual', address: '203.0.113.9', netmask: '255.255.255.0' } },
    { kind: 'set-ipv6', id: id(4), config: { method: 'off' } },
  ] as const) {
    const r = command(st, cmd, 1000);
    assert.equal(r.error, undefined);
    st = r.state;
  }
  return st;
}

function lease(i: number, o: Partial<Lease> = {}): Lease {
  const acquiredAt = NOW - 600_000;
  return {
    address: `192.0.2.${50 + i}`, prefixLen: 24, router: '192.0.2.1', dns: [], searchDomains: [], ntp: [], leaseSeconds: 3600, t1: 1800, t2: 3150,
    serverId: '192.0.2.1', acquiredAt, renewAt: acquiredAt + 1_800_000, rebindAt: acquiredAt + 3_150_000, expiresAt: acquiredAt + 3_600_000, ...o,
  };
}

const addr = (i: number, address = `192.0.2.${50 + i}`, protocol = OURS, prefixLen = 24): Address =>
  ({ family: 2, index: 10 + i, address, prefixLen, scope: 0, flags: 0, validLifetime: 0xffffffff, preferredLifetime: 0xffffffff, protocol }) as Address;

test('a lease goes on only while its address is ours on its link, unexpired, for a service to be connected by DHCP', () => {
  const st = state();
  const kept = new Map<string, Lease>([
    [id(0), lease(0)], // goes on
    [id(1), lease(1)], // its address is not there: a clean stop, a carrier loss, a reboot
    [id(2), lease(2)], // no carrier now
    [id(3), lease(3)], // disconnected by the user: not to be connected
    [id(4), lease(4)], // manual IPv4 now
    ['ethernet_0200000000ff_cable', lease(5)], // no such service
  ]);
  const addresses = [addr(0), addr(2), addr(3), addr(4)];
  const r = leasesToGoOnWith(kept, st, addresses, OURS, NOW);
  assert.deepEqual(r.goOn.map((g) => [g.service.id, g.lease.address]), [[id(0), '192.0.2.50']]);
  assert.deepEqual(r.void, [id(1), id(2), id(3), id(4), 'ethernet_0200000000ff_cable']);
});

test('a lease whose address is there but not as ours (another protocol, another prefix, another link) is void', () => {
  const st = state();
  const kept = new Map([[id(0), lease(0)]]);
  for (const a of [addr(0, undefined, 4), addr(0, undefined, OURS, 25), { ...addr(0), index: 11 }, addr(0, '192.0.2.99')]) {
    assert.deepEqual(leasesToGoOnWith(kept, st, [a], OURS, NOW).void, [id(0)], JSON.stringify(a));
  }
});

test('time: expired, expiring within the margin, or begun after now (a clock that went back) is void', () => {
  const st = state();
  const go = (l: Lease): boolean => leasesToGoOnWith(new Map([[id(0), l]]), st, [addr(0)], OURS, NOW).goOn.length === 1;
  assert.ok(go(lease(0, { expiresAt: NOW + KEPT_LEASE_MARGIN_MS + 1 })));
  assert.ok(!go(lease(0, { expiresAt: NOW + KEPT_LEASE_MARGIN_MS })));
  assert.ok(!go(lease(0, { expiresAt: NOW - 1 })));
  assert.ok(!go(lease(0, { acquiredAt: NOW + 1 })));
  assert.ok(go(lease(0, { leaseSeconds: Infinity, renewAt: Infinity, rebindAt: Infinity, expiresAt: Infinity })), 'an infinite lease');
});

test('routers held: the gateways of our IPv6 default routes in the table of each service to be connected with automatic IPv6', () => {
  const st = state();
  const table = (i: number): number => st.services.get(id(i))!.settings.table;
  const route = (i: number, o: Partial<Route> = {}): Route =>
    ({ family: 10, table: table(i), dst: '::', dstLen: 0, protocol: OURS, gateway: `fe80::${i + 1}`, oif: 10 + i, ...o }) as Route;
  const routes = [
    route(0),
    route(0, { gateway: 'fe80::aa' }), // a second router of eth0
    route(0, { table: 254 }), // main's copy: not the service's table
    route(1, { protocol: 9 }), // the kernel's RA route: not ours
    route(1, { dstLen: 64, dst: '2001:db8::' }), // not a default route
    route(2), // no carrier now
    route(3), // not to be connected
    route(4), // IPv6 off
    route(1, { family: 2, gateway: '192.0.2.1' }), // IPv4
    route(1, { oif: 10 }), // another link
  ];
  const held = routersToHold(st, routes, OURS).map((h) => [h.service.ifname, h.routers]);
  assert.deepEqual(held, [['eth0', ['fe80::1', 'fe80::aa']]]);
  assert.deepEqual(routersToHold(st, [], OURS), []);
});
