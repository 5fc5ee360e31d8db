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
    const { sigOf, valueFor, reseed } = randomValues();
    const got: Message[] = [];
    receiver.on('message', (m: Message) => {
      if (m.interface === 'x.wire') got.push(m);
    });
    const sent: { signature: string; body: unknown[] }[] = [];
    for (let k = 0; k < 500; k++) {
      reseed(1000 + k);
      const signature = Array.from({ length: 2 }, () => sigOf(0))
        .map((x) => (x.startsWith('a{') && x[2] !== 's' ? 'a{sv}' : x))
        .join('');
      const types = signature.length > 0 ? splitTypes(signature) : [];
      const body = types.map((t) => valueFor(t, 0));
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

/** Random D-Bus types and values of them, from a seed (the same seed, the same values). */
function randomValues() {
let seed = 0x5eed;
const reseed = (n: number): void => {
  seed = n;
};
  // mulberry32: small, and well spread over every range asked of it
  const rnd = (n: number): number => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
  const basic = ['y', 'b', 'n', 'q', 'i', 'u', 'x', 't', 'd', 's', 'o', 'g'];
  const sigOf = (depth: number): string => {
    const r = rnd(depth > 2 ? 12 : 16);
    if (r < 12) return basic[r] as string;
    if (r === 12) return `a${sigOf(depth + 1)}`;
    if (r === 13) return `a{${basic[rnd(basic.length)]}${sigOf(depth + 1)}}`;
    if (r === 14) return 'v';
    return `(${sigOf(depth + 1)}${sigOf(depth + 1)})`;
  };
  const valueFor = (sig: string, depth: number): unknown => {
    const c = sig[0];
    switch (c) {
      case 'y':
        return rnd(256);
      case 'b':
        return rnd(2) === 1;
      case 'n':
        return rnd(65536) - 32768;
      case 'q':
        return rnd(65536);
      case 'i':
        return rnd(2 ** 31) - 2 ** 30;
      case 'u':
        return rnd(2 ** 31) * 2 + rnd(2);
      case 'x':
        return BigInt(rnd(2 ** 31)) * BigInt(rnd(2 ** 31)) - 2n ** 40n;
      case 't':
        return BigInt(rnd(2 ** 31)) * BigInt(rnd(2 ** 31));
      case 'd':
        return rnd(1e6) / 7;
      case 's':
        return ['', 'eth1', 'wlan0 ✓', 'ä'.repeat(rnd(40))][rnd(4)];
      case 'o':
        return ['/', '/net/connman/service/ethernet_eth1', '/a/b_9'][rnd(3)];
      case 'g':
        return ['', 'a{sv}', 's', '(ii)'][rnd(4)];
      case 'v': {
        const inner = depth > 3 ? 's' : sigOf(depth + 1);
        return new V(inner, valueFor(inner, depth + 1));
      }
      case 'a': {
        const rest = sig.slice(1);
        const n = rnd(4);
        if (rest[0] === '{') {
          const kt = rest[1] as string;
          const vt = rest.slice(2, -1);
          const o: Record<string, unknown> = {};
          // dbus-next's dicts are objects: string keys only
          for (let k = 0; k < n; k++) o[kt === 's' ? `k${k}` : String(k)] = valueFor(vt, depth + 1);
          return kt === 's' ? o : {};
        }
        return Array.from({ length: n }, () => valueFor(rest, depth + 1));
      }
      case '(': {
        // the two members, split at the first complete type
        const inner = sig.slice(1, -1);
        const first = completeType(inner);
        return [valueFor(first, depth + 1), valueFor(inner.slice(first.length), depth + 1)];
      }
      default:
        throw new Error(`no value for ${sig}`);
    }
  };
  return { rnd, sigOf, valueFor, reseed };
}

/** A signature's complete types. */
function splitTypes(sig: string): string[] {
  const out: string[] = [];
  for (let rest = sig; rest.length > 0; ) {
    const t = completeType(rest);
    out.push(t);
    rest = rest.slice(t.length);
  }
  return out;
}

/** The first complete type of a signature. */
function completeType(sig: string): string {
  let depth = 0;
  for (let i = 0; i < sig.length; i++) {
    const c = sig[i];
    if (c === '(' || c === '{') depth++;
    else if (c === ')' || c === '}') depth--;
    else if (c === 'a') continue;
    if (depth === 0) return sig.slice(0, i + 1);
  }
  return sig;
}
