// The pure parts of the connection-manager commands: argument validation (usage errors are
// found before anything is sent) and connmanctl's output layout (checked against Debian's
// connmanctl 1.41 with a fake net.connman answering every service state).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { busAddressProblem } from '../../src/client/bus.ts';
import { errorWords } from '../../src/client/errors.ts';
import type { ServiceEntry, ServiceState } from '../../src/client/index.ts';
import { serviceProperties } from '../../src/client/connman/properties.ts';
import { variant } from '../../src/client/variant.ts';
import {
  parseBool,
  parseDomains,
  parseIpv4Args,
  parseIpv6Args,
  parseNameservers,
  parseNetmask,
  parseServiceRef,
  parseTimeservers,
  UsageError,
} from '../../src/cli/connman-args.ts';
import { eventLine, formatValue, serviceDetail, serviceFlags, serviceLine } from '../../src/cli/connman-format.ts';

test('the flags column is connmanctl’s: * favorite, A autoconnect, O R a c d by state, blank for idle and failure', () => {
  // what connmanctl 1.41 printed for these states against a fake daemon
  const expected: Record<ServiceState, string> = { idle: ' ', failure: ' ', association: 'a', configuration: 'c', ready: 'R', online: 'O', disconnect: 'd' };
  for (const [state, flag] of Object.entries(expected) as [ServiceState, string][]) {
    assert.equal(serviceFlags({ Favorite: true, AutoConnect: true, State: state }), `*A${flag}`);
    assert.equal(serviceFlags({ Favorite: false, AutoConnect: false, State: state }), `  ${flag}`);
  }
});

function entry(raw: Record<string, unknown>): ServiceEntry {
  const props = serviceProperties(variant.dict(Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, typeof v === 'boolean' ? variant.b(v) : variant.s(String(v))]))));
  return { id: 'ethernet_0a0b0c0d0e0f_cable', path: '/net/connman/service/ethernet_0a0b0c0d0e0f_cable', properties: props };
}

test('a service line pads the name to 20 like connmanctl ("%c%c%c %-20s %s")', () => {
  assert.equal(serviceLine(entry({ Name: 'Wired', State: 'online', Favorite: true, AutoConnect: true })), '*AO Wired                ethernet_0a0b0c0d0e0f_cable');
  assert.equal(serviceLine(entry({ Name: 'AVeryLongServiceNameThatExceeds20', State: 'idle' })), '    AVeryLongServiceNameThatExceeds20 ethernet_0a0b0c0d0e0f_cable');
});

test('values print as connmanctl prints them', () => {
  assert.equal(formatValue(true), 'True');
  assert.equal(formatValue([]), '[  ]');
  assert.equal(formatValue(['a', 'b']), '[ a, b ]');
  assert.equal(formatValue({}), '[  ]');
  assert.equal(formatValue({ MTU: 1500, B: true, L: ['a', 'b'], I: -3 }), '[ MTU=1500, B=True, L=[ a, b ], I=-3 ]');
  assert.equal(formatValue(1.5), '1.500000');
  const d = serviceDetail(entry({ Type: 'ethernet', Name: 'Wired', State: 'ready' }));
  assert.match(d, /^\/net\/connman\/service\/ethernet_0a0b0c0d0e0f_cable\n {2}Type = ethernet\n/);
  assert.match(d, /\n {2}State = ready\n/);
});

test('monitor lines use connmanctl’s columns', () => {
  assert.equal(eventLine({ kind: 'property-changed', object: 'service', path: '/net/connman/service/x_y', id: 'x_y', name: 'State', value: 'idle' }), `Service      ${'x_y'.padEnd(20)} State = idle`);
  assert.equal(eventLine({ kind: 'property-changed', object: 'manager', path: '/', name: 'State', value: 'online' }), `Manager      ${''.padEnd(20)} State = online`);
  assert.equal(eventLine({ kind: 'property-changed', object: 'technology', path: '/net/connman/technology/ethernet', type: 'ethernet', name: 'Powered', value: false }), `Technology   ${'ethernet'.padEnd(20)} Powered = False`);
  assert.match(eventLine({ kind: 'services-changed', changed: [{ id: 'a', path: '/net/connman/service/a' }], removed: [{ id: 'b', path: '/net/connman/service/b' }] }), /ServicesChanged +\[ a \] removed \[ b \]$/);
});

test('IPv4 arguments: dhcp, off, manual with a netmask or prefix length; anything else is a usage error', () => {
  assert.deepEqual(parseIpv4Args(['dhcp']), { Method: 'dhcp' });
  assert.deepEqual(parseIpv4Args(['off']), { Method: 'off' });
  assert.deepEqual(parseIpv4Args(['manual', '198.51.100.200', '255.255.255.0', '198.51.100.1']), { Method: 'manual', Address: '198.51.100.200', Netmask: '255.255.255.0', Gateway: '198.51.100.1' });
  assert.deepEqual(parseIpv4Args(['manual', '198.51.100.200', '24']), { Method: 'manual', Address: '198.51.100.200', Netmask: '255.255.255.0' });
  for (const bad of [[], ['auto'], ['dhcp', 'x'], ['manual'], ['manual', '198.51.100.300', '24'], ['manual', '198.51.100.2', '255.0.255.0'], ['manual', '198.51.100.2', '33'], ['manual', '198.51.100.2', '24', 'gw'], ['manual', '1.2.3.4', '24', '1.2.3.1', 'x']]) {
    assert.throws(() => parseIpv4Args(bad), UsageError, JSON.stringify(bad));
  }
  assert.equal(parseNetmask('/0'), '0.0.0.0');
  assert.equal(parseNetmask('32'), '255.255.255.255');
  assert.equal(parseNetmask('255.255.254.0'), '255.255.254.0');
});

test('IPv6 arguments: auto, off, manual ADDRESS PREFIXLEN [GATEWAY]', () => {
  assert.deepEqual(parseIpv6Args(['auto']), { Method: 'auto' });
  assert.deepEqual(parseIpv6Args(['manual', '2001:db8::5', '64', '2001:db8::1']), { Method: 'manual', Address: '2001:db8::5', PrefixLength: 64, Gateway: '2001:db8::1' });
  for (const bad of [['manual', '2001:db8::5'], ['manual', '2001:db8::5', '129'], ['manual', '192.0.2.1', '64'], ['dhcp']]) {
    assert.throws(() => parseIpv6Args(bad), UsageError, JSON.stringify(bad));
  }
});

test('lists: no values clears; bad entries are usage errors', () => {
  assert.deepEqual(parseNameservers(true), []);
  assert.deepEqual(parseNameservers(['192.0.2.53', '2001:db8::53']), ['192.0.2.53', '2001:db8::53']);
  assert.throws(() => parseNameservers(['ns.example']), UsageError);
  assert.deepEqual(parseTimeservers(['ntp.example.test', '192.0.2.123']), ['ntp.example.test', '192.0.2.123']);
  assert.throws(() => parseTimeservers(['bad name']), UsageError);
  assert.deepEqual(parseDomains(['example.test']), ['example.test']);
  assert.throws(() => parseDomains(['192.0.2.1']), UsageError);
  assert.equal(parseBool('YES', 'x'), true);
  assert.equal(parseBool('off', 'x'), false);
  assert.throws(() => parseBool('maybe', 'x'), UsageError);
});

test('SERVICE is an id, an object path or an interface name', () => {
  for (const ok of ['ethernet_0a0b0c0d0e0f_cable', '/net/connman/service/ethernet_0a0b0c0d0e0f_cable', 'eth1', 'wlan0']) assert.equal(parseServiceRef(ok), ok);
  for (const bad of ['', 'a b', '/net/connman/technology/ethernet', '../x', 'x'.repeat(16) + '-']) assert.throws(() => parseServiceRef(bad), UsageError, bad);
});

test('bus addresses are checked before connecting', () => {
  assert.equal(busAddressProblem('unix:path=/run/dbus/system_bus_socket'), undefined);
  assert.equal(busAddressProblem('tcp:host=localhost,port=1234'), undefined);
  for (const bad of ['', 'bogus', 'unix:', 'unix:abstract=/x', 'tcp:host=x', 'tcp:port=99999', 'launchd:env=X']) assert.ok(busAddressProblem(bad), bad);
});

test('D-Bus error names in words', () => {
  assert.equal(errorWords('net.connman.Error.NotConnected'), 'not connected');
  assert.equal(errorWords('net.connman.Error.InvalidArguments'), 'invalid arguments');
  assert.equal(errorWords('org.freedesktop.DBus.Error.UnknownObject'), 'unknown object');
  assert.equal(errorWords('net.connman.Error.AlreadyEnabled'), 'already enabled');
});

test('typed service properties: wrong-typed known keys are dropped and required ones defaulted; unknown keys are kept', () => {
  const p = serviceProperties(variant.dict({ State: variant.s('bogus'), Favorite: variant.s('yes'), Future: variant.dict({ X: variant.y(7) }), IPv4: variant.dict({ Address: variant.b(true), Method: variant.s('dhcp') }) }));
  assert.equal(p.State, 'idle');
  assert.equal(p.Favorite, false);
  assert.deepEqual(p.Future, { X: 7 });
  assert.deepEqual(p.IPv4, { Method: 'dhcp' });
  assert.deepEqual(p.Nameservers, []);
});
