// Our outgoing-message marshalling against dbus-next's own: the same bytes for every message
// the daemon sends and for random types and values, readable by dbus-next's parser, and a
// clear error (never a malformed message) for values their signature cannot hold.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import dbus, { type Message, type MessageBus } from 'dbus-next';
import { encodeMessage, useWireEncoder } from '../../src/api/bus/wire-encoder.ts';
import { renderBusConfig } from '../../src/lab/bus-config.ts';
import { waitFor } from '../helpers/connman.ts';
import { openBus, uniqueName } from '../helpers/faults.ts';
import { randomValues } from '../helpers/dbus-random.ts';

const require = createRequire(import.meta.url);
const compat = require('dbus-next/lib/marshall-compat.js') as { marshallMessage(m: Message): [Buffer, number[]]; messageToJsFmt(m: object): { body: unknown[] } };
const wire = require('dbus-next/lib/message.js') as { unmarshall(b: Buffer): object };
const V = dbus.Variant;

/** dbus-next's bytes (its marshalling rewrites the body it is given: build the message twice) */
const reference = (make: () => Message): Buffer => compat.marshallMessage(make())[0];

const same = (make: () => Message): void => {
  const ours = encodeMessage(make());
  assert.deepEqual(ours.toString('hex'), reference(make).toString('hex'));
};

describe('wire encoder', () => {
  test('the daemon\'s messages: the same bytes as dbus-next', () => {
    const call = new dbus.Message({ serial: 7, sender: ':1.5', destination: 'net.connman', path: '/', interface: 'net.connman.Manager', member: 'CreateSession', signature: 'a{sv}o', body: [{}, '/app/s1'] });
    call.serial = 7;
    const settings = () => ({
      State: new V('s', 'online'),
      Name: new V('s', 'Wired'),
      Bearer: new V('s', 'ethernet'),
      Interface: new V('s', 'eth1'),
      AllowedBearers: new V('as', ['ethernet', 'wifi']),
      ConnectionType: new V('s', 'any'),
      SessionMarker: new V('u', 65537),
      IPv4: new V('a{sv}', { Method: new V('s', 'dhcp'), Address: new V('s', '198.51.100.10'), Netmask: new V('s', '255.255.255.0'), Gateway: new V('s', '198.51.100.1') }),
      IPv6: new V('a{sv}', {}),
      IdleTimeout: new V('u', 0),
      SourceIPRule: new V('b', true),
      AvoidHandover: new V('b', false),
      Strength: new V('y', 80),
    });
    const makers: (() => Message)[] = [
      () => {
        const m = new dbus.Message({ destination: ':1.9', path: '/app/s1', interface: 'net.connman.Notification', member: 'Update', signature: 'a{sv}', body: [settings()], flags: 1 });
        m.serial = 12;
        return m;
      },
      () => dbus.Message.newMethodReturn(call, 'o', ['/sessions/1']),
      () => dbus.Message.newMethodReturn(call, 'a{sv}', [settings()]),
      () => dbus.Message.newMethodReturn(call, '', []),
      () => (dbus.Message.newError as unknown as (c: Message, n: string, t: string) => Message)(call, 'net.connman.Error.InvalidArguments', 'AllowedBearers: ünknown “bearer”'),
      () => {
        const m = dbus.Message.newSignal('/net/connman/service/ethernet_eth1', 'net.connman.Service', 'PropertyChanged', 'sv', ['State', new V('s', 'ready')]);
        m.serial = 99_999;
        return m;
      },
      () => {
        const m = dbus.Message.newSignal('/', 'net.connman.Manager', 'ServicesChanged', 'a(oa{sv})ao', [[['/net/connman/service/a', settings()], ['/net/connman/service/b', {}]], ['/net/connman/service/c']]);
        m.serial = 3;
        return m;
      },
    ];
    for (const make of makers) {
      const m = make();
      if (!m.serial) m.serial = 5;
      same(() => {
        const x = make();
        if (!x.serial) x.serial = 5;
        return x;
      });
    }
  });

  test('random types and values: the same bytes as dbus-next, and dbus-next reads them back', () => {
    const { rnd, sigOf, valueFor, reseed } = randomValues();
    for (let k = 0; k < 2000; k++) {
      const sigs = Array.from({ length: 1 + rnd(3) }, () => sigOf(0)).map((s) => (s.startsWith('a{') && s[2] !== 's' ? 'a{sv}' : s));
      const signature = sigs.join('');
      const body = () => {
        reseed(k + 1);
        return sigs.map((s) => valueFor(s, 0));
      };
      const make = (): Message => {
        const m = new dbus.Message({ destination: ':1.1', path: '/p', interface: 'x.y', member: 'M', signature, body: body() });
        m.serial = k + 1;
        return m;
      };
      const ours = encodeMessage(make());
      assert.equal(ours.toString('hex'), reference(make).toString('hex'), `signature ${signature}`);
      const back = compat.messageToJsFmt(wire.unmarshall(ours));
      assert.equal(back.body.length, sigs.length);
    }
  });

  test('values a signature cannot hold: an error, not a malformed message', () => {
    const msg = (signature: string, body: unknown[]): Message => {
      const m = new dbus.Message({ path: '/p', interface: 'x.y', member: 'M', signature, body });
      m.serial = 1;
      return m;
    };
    assert.throws(() => encodeMessage(msg('s', ['a\0b'])), /NUL/);
    assert.throws(() => encodeMessage(msg('u', [-1])), RangeError);
    assert.throws(() => encodeMessage(msg('y', [256])), RangeError);
    assert.throws(() => encodeMessage(msg('i', [2 ** 31])), RangeError);
    assert.throws(() => encodeMessage(msg('s', [5])), TypeError);
    assert.throws(() => encodeMessage(msg('v', ['plain'])), /Variant/);
    assert.throws(() => encodeMessage(msg('v', [new V('ss', 'x')])), /one complete type/);
    assert.throws(() => encodeMessage(msg('(ss)', [['a']])), /struct/);
    assert.throws(() => encodeMessage(msg('as', ['x'])), /array/);
    assert.throws(() => encodeMessage(msg('a{sv', [{}])), /signature/);
    assert.throws(() => encodeMessage(msg('ss', ['x'])), /body of 1/);
    const noSerial = new dbus.Message({ path: '/p', interface: 'x.y', member: 'M' });
    assert.throws(() => encodeMessage(noSerial), /serial/);
  });
});

describe('wire encoder on a real dbus-daemon', () => {
  let dir = '';
  let daemon: ChildProcess | undefined;
  let sender: MessageBus;
  let receiver: MessageBus;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'netsession-wire-'));
    const address = `unix:path=${dir}/bus`;
    writeFileSync(join(dir, 'bus.conf'), renderBusConfig({ labName: 'wire-test', listenAddress: address }));
    daemon = spawn('dbus-daemon', [`--config-file=${dir}/bus.conf`, '--nofork', '--nopidfile', '--nosyslog'], { stdio: 'ignore' });
    await waitFor('the bus socket', async () => existsSync(`${dir}/bus`) && statSync(`${dir}/bus`).isSocket(), 5000);
    sender = await openBus(address);
    receiver = await openBus(address);
    assert.ok(useWireEncoder(sender), 'dbus-next has the internals the encoder replaces');
  });
  after(() => {
    sender?.disconnect();
    receiver?.disconnect();
    daemon?.kill();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the bus takes 500 random signals (it drops a connection that sends a malformed one) and the receiver reads the values sent', async () => {
    const { twoValues } = randomValues();
    const got: Message[] = [];
    receiver.on('message', (m: Message) => {
      if (m.interface === 'x.wire') got.push(m);
    });
    const sent: { signature: string; body: unknown[] }[] = [];
    for (let k = 0; k < 500; k++) {
      const { signature, body } = twoValues(1000 + k);
      sent.push({ signature, body });
      const m = dbus.Message.newSignal('/x', 'x.wire', 'S', signature, body);
      m.destination = uniqueName(receiver);
      sender.send(m);
    }
    await waitFor('all 500 arrived', async () => got.length === 500, 10_000);
    for (const [k, m] of got.entries()) {
      assert.equal(m.signature, sent[k]?.signature);
      // dbus-next reads ay as Buffer, x/t as bigint: compare through its own marshalling
      const again = dbus.Message.newSignal('/x', 'x.wire', 'S', m.signature, m.body);
      const orig = dbus.Message.newSignal('/x', 'x.wire', 'S', sent[k]?.signature ?? '', sent[k]?.body ?? []);
      again.serial = orig.serial = 1;
      assert.equal(encodeMessage(again).toString('hex'), encodeMessage(orig).toString('hex'), `signal ${k} (${m.signature})`);
    }
  });
});
