// The pure parts of sessions in the client library and the CLI (no root, no bus): settings
// to D-Bus and back, session paths, introspection, the CLI's arguments, stdin commands and
// output lines.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import dbus from 'dbus-next';
import { ClientUsageError } from '../../src/client/index.ts';
import { parseIntrospection, parseSessionPath } from '../../src/client/session/list.ts';
import { orderedKeys, parseSessionUpdate, sessionConfigDict, sessionConfigVariant, setsExtendedKey } from '../../src/client/session/types.ts';
import { UsageError } from '../../src/cli/connman-args.ts';
import { createConfig, parseStdinCommand, transitionLine, updateBlock } from '../../src/cli/session-args.ts';

const V = dbus.Variant;

describe('session settings (client library)', () => {
  it('encodes each setting with its D-Bus type and refuses wrong types and unknown keys before sending', () => {
    const d = sessionConfigDict({ AllowedBearers: ['wifi', '*'], ConnectionType: 'internet', SourceIPRule: true, IdleTimeout: 30, RoamingPolicy: 'national' });
    assert.deepEqual(
      Object.entries(d).map(([k, v]) => [k, v.signature, v.value]),
      [
        ['AllowedBearers', 'as', ['wifi', '*']],
        ['ConnectionType', 's', 'internet'],
        ['SourceIPRule', 'b', true],
        ['IdleTimeout', 'u', 30],
        ['RoamingPolicy', 's', 'national'],
      ],
    );
    assert.throws(() => sessionConfigVariant('State', 'online'), ClientUsageError);
    assert.throws(() => sessionConfigVariant('SourceIPRule', 'yes'), ClientUsageError);
    assert.throws(() => sessionConfigVariant('PeriodicConnect', 1.5), ClientUsageError);
    assert.throws(() => sessionConfigVariant('PeriodicConnect', 2 ** 32), ClientUsageError);
    assert.throws(() => sessionConfigVariant('AllowedBearers', ['wifi', 3]), ClientUsageError);
    assert.throws(() => sessionConfigDict({ Bogus: 1 } as never), ClientUsageError);
    assert.equal(setsExtendedKey({ AllowedInterface: 'eth0' }), false);
    assert.equal(setsExtendedKey({ StayConnected: false }), true);
  });

  it('unwraps Updates, typed; keeps keys it does not know', () => {
    const u = parseSessionUpdate({
      State: new V('s', 'online'),
      IPv4: new V('a{sv}', { Address: new V('s', '192.0.2.5') }),
      IPv6: new V('a{sv}', { PrefixLength: new V('y', 64) }),
      AllowedBearers: new V('as', ['ethernet']),
      SessionMarker: new V('u', 0x40000001),
      Future: new V('s', 'x'),
    });
    assert.deepEqual(u, { State: 'online', IPv4: { Address: '192.0.2.5' }, IPv6: { PrefixLength: 64 }, AllowedBearers: ['ethernet'], SessionMarker: 0x40000001, Future: 'x' });
    assert.deepEqual(orderedKeys(['Future', 'SessionMarker', 'SourceIPRule', 'State']), ['State', 'SourceIPRule', 'SessionMarker', 'Future']);
  });

  it('reads session paths and introspection', () => {
    assert.deepEqual(parseSessionPath('/sessions/_1_25/net/connman/connmanctl18176'), { owner: ':1.25', notifier: '/net/connman/connmanctl18176' });
    assert.equal(parseSessionPath('/sessions/_1_25'), undefined);
    assert.equal(parseSessionPath('/net/connman/service/x'), undefined);
    const xml = '<node><interface name="org.freedesktop.DBus.Introspectable"></interface><interface name="net.connman.Session"><method name="Connect"/></interface><node name="a"/><node name="b_c"/></node>';
    assert.deepEqual(parseIntrospection(xml), { nodes: ['a', 'b_c'], interfaces: ['org.freedesktop.DBus.Introspectable', 'net.connman.Session'] });
  });
});

describe('netsessionctl session (arguments and output)', () => {
  it('create options: connmanctl’s, checked before anything is sent', () => {
    assert.deepEqual(createConfig({ bearers: ['ethernet', 'wifi'], type: 'local', ifname: 'eth0', srciprule: 'yes', ctxid: 'foo' }), {
      AllowedBearers: ['ethernet', 'wifi'],
      ConnectionType: 'local',
      AllowedInterface: 'eth0',
      SourceIPRule: true,
      ContextIdentifier: 'foo',
    });
    assert.deepEqual(createConfig({ bearers: true, srciprule: true }), { AllowedBearers: [], SourceIPRule: true });
    assert.deepEqual(createConfig({ srciprule: 'off', ifname: '*' }), { SourceIPRule: false, AllowedInterface: '*' });
    assert.deepEqual(createConfig({}), {});
    for (const bad of [{ type: 'online' }, { bearers: ['foo'] }, { srciprule: 'maybe' }, { ifname: 'a/b' }, { ifname: 'x'.repeat(16) }]) assert.throws(() => createConfig(bad), UsageError, JSON.stringify(bad));
  });

  it('stdin commands: connect, disconnect, change KEY VALUE… (D-Bus names or connmanctl’s words), quit', () => {
    assert.deepEqual(parseStdinCommand('connect'), { kind: 'connect' });
    assert.deepEqual(parseStdinCommand('  disconnect  '), { kind: 'disconnect' });
    assert.deepEqual(parseStdinCommand('change AllowedBearers wifi ethernet'), { kind: 'change', key: 'AllowedBearers', value: ['wifi', 'ethernet'] });
    assert.deepEqual(parseStdinCommand('change bearers'), { kind: 'change', key: 'AllowedBearers', value: [] });
    assert.deepEqual(parseStdinCommand('config --type internet'), { kind: 'change', key: 'ConnectionType', value: 'internet' });
    assert.deepEqual(parseStdinCommand('change ifname'), { kind: 'change', key: 'AllowedInterface', value: '' });
    assert.deepEqual(parseStdinCommand('change srciprule yes'), { kind: 'change', key: 'SourceIPRule', value: true });
    assert.deepEqual(parseStdinCommand('change idletimeout 30'), { kind: 'change', key: 'IdleTimeout', value: 30 });
    assert.deepEqual(parseStdinCommand('quit'), { kind: 'quit' });
    assert.deepEqual(parseStdinCommand(''), { kind: 'empty' });
    assert.deepEqual(parseStdinCommand('# a comment'), { kind: 'empty' });
    for (const bad of ['connect now', 'change', 'change Bogus 1', 'change State online', 'change IdleTimeout -1', 'change SourceIPRule', 'change ConnectionType a b', 'fly']) {
      assert.throws(() => parseStdinCommand(bad), UsageError, bad);
    }
  });

  it('output: connmanctl’s Update block and connected/disconnected lines', () => {
    assert.equal(
      updateBlock({ SessionMarker: 7, State: 'online', IPv6: {}, IPv4: { Method: 'dhcp', Address: '192.0.2.5' }, AllowedBearers: ['ethernet', 'wifi'], SourceIPRule: true, ContextIdentifier: '' }),
      'Session      Update               = {\nState = online\nIPv4 = [ Method=dhcp, Address=192.0.2.5 ]\nIPv6 = [  ]\nAllowedBearers = [ ethernet, wifi ]\nContextIdentifier = \nSourceIPRule = True\nSessionMarker = 7\n}',
    );
    assert.deepEqual(transitionLine('/s', false, 'online'), { line: 'Session /s connected', connected: true });
    assert.equal(transitionLine('/s', true, 'connected'), undefined);
    assert.deepEqual(transitionLine('/s', true, 'disconnected'), { line: 'Session /s disconnected', connected: false });
    assert.equal(transitionLine('/s', false, 'disconnected'), undefined);
  });
});
