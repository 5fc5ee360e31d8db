// Our incoming-message reader against dbus-next's own: the same Message for every kind of
// message the daemon receives and for random types and values, whole or cut into any chunks;
// a clear error for a malformed message; and on a real dbus-daemon, a connection that reads
// with it sees what a plain dbus-next connection sees.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import dbus, { type Message, type MessageBus } from 'dbus-next';
import { decodeMessage, decodeWithDbusNext, MessageFramer, useWireDecoder } from '../../src/api/bus/wire-decoder.ts';
import { encodeMessage } from '../../src/api/bus/wire-encoder.ts';
import { renderBusConfig } from '../../src/lab/bus-config.ts';
import { waitFor } from '../helpers/connman.ts';
import { randomValues } from '../helpers/dbus-random.ts';
import { uniqueName } from '../helpers/faults.ts';

const V = dbus.Variant;

/** what dbus-next's connection emits for these bytes */
const reference = (bytes: Buffer): Message => decodeWithDbusNext(bytes);

/** everything a Message says (dbus-next keeps the serial in _serial) */
const view = (m: Message | undefined) =>
  m && { type: m.type, flags: m.flags, serial: m.serial, path: m.path, interface: m.interface, member: m.member, errorName: m.errorName, replySerial: m.replySerial, destination: m.destination, sender: m.sender, signature: m.signature, body: m.body, proto: Object.getPrototypeOf(m) };

const same = (bytes: Buffer, what: string): void => {
  const ours = decodeMessage(bytes);
  assert.ok(ours instanceof dbus.Message, `${what}: a dbus-next Message`);
  assert.deepStrictEqual(view(ours), view(reference(bytes)), what);
};

const withSerial = (m: Message, serial: number): Message => {
  m.serial = serial;
  return m;
};

/** A method call in big-endian byte order (dbus-next writes only little-endian): path "/x", member "M", body "s" "hi". */
function bigEndianCall(): Buffer {
  const fields = Buffer.from([1, 1, 0x6f, 0, 0, 0, 0, 2, 0x2f, 0x78, 0, 0, 0, 0, 0, 0, 3, 1, 0x73, 0, 0, 0, 0, 1, 0x4d, 0, 0, 0, 0, 0, 0, 0, 8, 1, 0x67, 0, 1, 0x73, 0]);
  const body = Buffer.from([0, 0, 0, 2, 0x68, 0x69, 0]);
  const head = Buffer.alloc(16);
  head.write('B', 0, 'latin1');
  head[1] = 1;
  head[3] = 1;
  head.writeUInt32BE(body.length, 4);
  head.writeUInt32BE(77, 8);
  head.writeUInt32BE(fields.length, 12);
  const pad = Buffer.alloc((8 - (fields.length % 8)) % 8);
  return Buffer.concat([head, fields, pad, body]);
}

describe('wire decoder', () => {
  test("the daemon's incoming messages: the same Message as dbus-next's", () => {
    const settings = { AllowedBearers: new V('as', ['ethernet', 'wifi']), ConnectionType: new V('s', 'internet'), AllowedInterface: new V('s', 'eth1'), SourceIPRule: new V('b', true), IdleTimeout: new V('u', 30), Nested: new V('a{sv}', { x: new V('v', new V('i', -5)) }) };
    const call = (member: string, signature: string, body: unknown[]) => withSerial(new dbus.Message({ sender: ':1.42', destination: 'net.connman', path: '/', interface: 'net.connman.Manager', member, signature, body }), 9);
    const cases: [string, Message][] = [
      ['CreateSession', call('CreateSession', 'a{sv}o', [settings, '/app/s1'])],
      ['CreateSession {}', call('CreateSession', 'a{sv}o', [{}, '/app/s2'])],
      ['GetProperties', call('GetProperties', '', [])],
      ['Change', withSerial(new dbus.Message({ sender: ':1.42', destination: ':1.3', path: '/sessions/1', interface: 'net.connman.Session', member: 'Change', signature: 'sv', body: ['AllowedBearers', new V('as', ['*'])], flags: 1 }), 10)],
      ['credentials reply', withSerial(new dbus.Message({ type: 2, sender: 'org.freedesktop.DBus', destination: ':1.3', replySerial: 4 as unknown as string, signature: 'a{sv}', body: [{ UnixUserID: new V('u', 1000), ProcessID: new V('u', 4242), UnixGroupIDs: new V('au', [1000, 27]), LinuxSecurityLabel: new V('ay', Buffer.from('unconfined\0')) }] }), 11)],
      ['error', withSerial(new dbus.Message({ type: 3, sender: ':1.9', destination: ':1.3', replySerial: 5 as unknown as string, errorName: 'org.freedesktop.DBus.Error.ServiceUnknown', signature: 's', body: ['gone “away”'] }), 12)],
      ['NameOwnerChanged', withSerial(dbus.Message.newSignal('/org/freedesktop/DBus', 'org.freedesktop.DBus', 'NameOwnerChanged', 'sss', [':1.42', ':1.42', '']), 13)],
      ['int64 and double', call('X', 'xtd(yn)', [-(2n ** 62n), 2n ** 63n + 5n, -0.125, [255, -2]])],
    ];
    for (const [what, m] of cases) same(encodeMessage(m), what);
  });

  test('random types and values: the same Message as dbus-next reads', () => {
    const { rnd, sigOf, valueFor, reseed } = randomValues();
    for (let k = 0; k < 2000; k++) {
      reseed(k + 7);
      const types = Array.from({ length: rnd(4) }, () => sigOf(0)).map((s) => (s.startsWith('a{') && s[2] !== 's' ? 'a{sv}' : s));
      const m = new dbus.Message({ type: 4, sender: ':1.1', path: '/p', interface: 'x.y', member: 'S', signature: types.join(''), body: types.map((t) => valueFor(t, 0)) });
      same(encodeMessage(withSerial(m, k + 1)), `signature "${types.join('')}"`);
    }
  });

  test('a stream cut anywhere, read into one buffer used again for every chunk: every message, in order, as when whole', () => {
    const { rnd, sigOf, valueFor, reseed } = randomValues();
    const whole: Buffer[] = [];
    for (let k = 0; k < 300; k++) {
      reseed(5000 + k);
      const sig = sigOf(0);
      whole.push(encodeMessage(withSerial(new dbus.Message({ type: 4, path: '/p', interface: 'x.y', member: 'S', signature: sig, body: [valueFor(sig, 0)] }), k + 1)));
    }
    // and one large message (a body of 200 kB)
    whole.push(encodeMessage(withSerial(new dbus.Message({ type: 4, path: '/p', interface: 'x.y', member: 'Big', signature: 'ay', body: [Buffer.alloc(200_000, 7)] }), 999)));
    const stream = Buffer.concat(whole);
    for (const maxChunk of [1, 7, 16, 17, 300, 70_000]) {
      const framer = new MessageFramer();
      const got: Buffer[] = [];
      // as the daemon's socket reads: every chunk into the same memory, overwritten after
      const readBuffer = Buffer.alloc(maxChunk);
      for (let at = 0; at < stream.length; ) {
        const n = Math.min(1 + rnd(maxChunk), stream.length - at);
        stream.copy(readBuffer, 0, at, at + n);
        framer.push(readBuffer.subarray(0, n), (m) => got.push(Buffer.from(m)));
        readBuffer.fill(0xee);
        at += n;
      }
      assert.equal(got.length, whole.length, `chunks of at most ${maxChunk}`);
      for (const [k, b] of got.entries()) assert.ok(b.equals(whole[k] as Buffer), `message ${k}, chunks of at most ${maxChunk}`);
    }
  });

  test('what dbus-next handles itself, what is ignored, and malformed messages', () => {
    // big-endian: through dbus-next's parser
    const be = decodeMessage(bigEndianCall());
    assert.equal(be?.member, 'M');
    assert.deepEqual(be?.body, ['hi']);
    // a type this protocol does not know: ignored, as the specification says
    const unknown = encodeMessage(withSerial(new dbus.Message({ path: '/p', interface: 'x.y', member: 'M' }), 1));
    unknown[1] = 9;
    assert.equal(decodeMessage(unknown), undefined);
    // a dict key "__proto__" is a key, not the dict's prototype
    const proto = decodeMessage(encodeMessage(withSerial(new dbus.Message({ path: '/p', interface: 'x.y', member: 'M', signature: 'a{sv}', body: [{ ['__proto__']: new V('s', 'x'), a: new V('b', true) }] }), 1)));
    const dict = proto?.body[0] as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(dict), Object.prototype);
    assert.deepEqual(Object.keys(dict), ['__proto__', 'a']);
    // shorter than its signature says, longer than its signature says
    const full = encodeMessage(withSerial(new dbus.Message({ path: '/p', interface: 'x.y', member: 'M', signature: 'su', body: ['hello', 5] }), 1));
    const short = Buffer.from(full.subarray(0, full.length - 4));
    short.writeUInt32LE(short.readUInt32LE(4) - 4, 4);
    assert.throws(() => decodeMessage(short), RangeError);
    const long = Buffer.concat([full, Buffer.alloc(4)]);
    long.writeUInt32LE(long.readUInt32LE(4) + 4, 4);
    assert.throws(() => decodeMessage(long), /longer than its signature/);
    // a length no message can have
    const huge = Buffer.from(full);
    huge.writeUInt32LE(1 << 28, 4);
    assert.throws(() => new MessageFramer().push(huge, () => {}), /at most/);
    // an ay read from a buffer that is used again keeps its bytes
    const bytes = encodeMessage(withSerial(new dbus.Message({ path: '/p', interface: 'x.y', member: 'M', signature: 'ay', body: [Buffer.from('label')] }), 1));
    const read = decodeMessage(bytes);
    bytes.fill(0);
    assert.equal(String(read?.body[0]), 'label');
  });
});

describe('wire decoder on a real dbus-daemon', () => {
  let dir = '';
  let daemon: ChildProcess | undefined;
  const buses: MessageBus[] = [];

  const open = async (address: string, decoder: boolean): Promise<MessageBus> => {
    const b = dbus.sessionBus({ busAddress: address });
    if (decoder) assert.ok(useWireDecoder(b), 'dbus-next has the internals the decoder replaces');
    await new Promise<void>((resolve, reject) => {
      b.once('connect', () => resolve());
      b.once('error', reject);
    });
    buses.push(b);
    return b;
  };

  let address = '';
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'netsession-wire-'));
    address = `unix:path=${dir}/bus`;
    writeFileSync(join(dir, 'bus.conf'), renderBusConfig({ labName: 'wire-test', listenAddress: address }));
    daemon = spawn('dbus-daemon', [`--config-file=${dir}/bus.conf`, '--nofork', '--nopidfile', '--nosyslog'], { stdio: 'ignore' });
    await waitFor('the bus socket', async () => existsSync(`${dir}/bus`) && statSync(`${dir}/bus`).isSocket(), 5000);
  });
  after(() => {
    for (const b of buses) b.disconnect();
    daemon?.kill();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('500 random signals: the connection that reads with it gets what a plain dbus-next connection gets', async () => {
    const sender = await open(address, false);
    const ours = await open(address, true);
    const plain = await open(address, false);
    const got = new Map<MessageBus, Message[]>([
      [ours, []],
      [plain, []],
    ]);
    for (const [b, list] of got) {
      b.on('message', (m: Message) => {
        if (m.interface === 'x.wire') list.push(m);
      });
      // a match rule: the bus routes the signals to both
      await b.call(new dbus.Message({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'AddMatch', signature: 's', body: ["type='signal',interface='x.wire'"] }));
    }
    const { twoValues } = randomValues();
    for (let k = 0; k < 500; k++) {
      const { signature, body } = twoValues(9000 + k);
      sender.send(dbus.Message.newSignal('/x', 'x.wire', 'S', signature, body));
    }
    await waitFor('all 500 arrived at both', async () => got.get(ours)?.length === 500 && got.get(plain)?.length === 500, 10_000);
    const a = got.get(ours) ?? [];
    const b = got.get(plain) ?? [];
    for (let k = 0; k < 500; k++) assert.deepStrictEqual(view(a[k]), view(b[k]), `signal ${k}`);
  });

  test('calls and their replies go through it: a method served and a call made on a decoding connection', async () => {
    const server = await open(address, true);
    const client = await open(address, false);
    server.addMethodHandler((m: Message) => {
      if (m.member !== 'Echo') return false;
      server.send(dbus.Message.newMethodReturn(m, m.signature, m.body));
      return true;
    });
    const body = [{ k: new V('as', ['a', 'b']) }, 2n ** 40n];
    const reply = await client.call(new dbus.Message({ destination: uniqueName(server), path: '/e', interface: 'net.connman.Notification', member: 'Echo', signature: 'a{sv}t', body }));
    assert.deepStrictEqual(reply?.body, body);
    // and a call the decoding connection makes: its reply is read by the decoder
    const id = await server.call(new dbus.Message({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'GetId' }));
    assert.match(String(id?.body[0]), /^[0-9a-f]{32}$/);
  });
});
