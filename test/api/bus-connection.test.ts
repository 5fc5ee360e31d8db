// The daemon's own bus connection: on a real dbus-daemon it authenticates, calls and serves
// methods, and reads what a dbus-next connection reads even when every read cuts messages
// apart; on a socket that plays a bus, it writes what it holds in one write, and a bus that
// refuses, stays silent, sends an impossible length or goes away is a clear error, never a
// hang or a crash.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import dbus, { type Message, type MessageBus } from 'dbus-next';
import { busSocketPath } from '../../src/api/bus/bus-address.ts';
import { BusConnection } from '../../src/api/bus/bus-connection.ts';
import { decodeMessage, MessageFramer } from '../../src/api/bus/wire-decoder.ts';
import { encodeMessage } from '../../src/api/bus/wire-encoder.ts';
import { waitFor } from '../helpers/connman.ts';
import { randomValues } from '../helpers/dbus-random.ts';
import { openBus, uniqueName } from '../helpers/faults.ts';

test('bus addresses: the first unix entry, path or abstract, escapes undone; anything else is an error', () => {
  assert.equal(busSocketPath('unix:path=/run/dbus/system_bus_socket'), '/run/dbus/system_bus_socket');
  assert.equal(busSocketPath('unix:path=/tmp/a%20b,guid=0123'), '/tmp/a b');
  assert.equal(busSocketPath('unix:abstract=/tmp/dbus-x,guid=1'), '\0/tmp/dbus-x');
  assert.equal(busSocketPath('tcp:host=localhost,port=1;unix:path=/b'), '/b');
  assert.equal(busSocketPath('unix:guid=1,path=/c;unix:path=/d'), '/c');
  for (const bad of ['', 'tcp:host=localhost,port=1', 'unix:', 'unix:tmpdir=/tmp', 'path=/x', 'unix:path='])
    assert.throws(() => busSocketPath(bad), /no unix socket in D-Bus address/, bad);
});

async function startBus(dir: string, name: string): Promise<{ address: string; daemon: ChildProcess }> {
  const address = `unix:path=${dir}/${name}`;
  // a session bus's policy: anyone may own names and call anyone (the lab's system policy would not let a test own x.*)
  writeFileSync(
    join(dir, `${name}.conf`),
    `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><listen>${address}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/></policy></busconfig>
`,
  );
  const daemon = spawn('dbus-daemon', [`--config-file=${dir}/${name}.conf`, '--nofork', '--nopidfile', '--nosyslog'], { stdio: 'ignore' });
  await waitFor('the bus socket', async () => existsSync(`${dir}/${name}`) && statSync(`${dir}/${name}`).isSocket(), 5000);
  return { address, daemon };
}

const DBUS = { destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus' };

describe('BusConnection on a real dbus-daemon', () => {
  let dir = '';
  let address = '';
  let daemon: ChildProcess | undefined;
  const conns: BusConnection[] = [];
  const clients: MessageBus[] = [];
  const ours = async (opts: { readBufferBytes?: number } = {}): Promise<BusConnection> => {
    const c = await BusConnection.connect(address, opts);
    conns.push(c);
    return c;
  };
  const client = async (): Promise<MessageBus> => {
    const b = await openBus(address);
    clients.push(b);
    return b;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'netsession-busconn-'));
    ({ address, daemon } = await startBus(dir, 'bus'));
  });
  after(() => {
    for (const c of conns) c.disconnect();
    for (const b of clients) b.disconnect();
    daemon?.kill();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('Hello gives a unique name the bus lists; a call is answered, an error reply is a DBusError with its name', async () => {
    const c = await ours();
    assert.match(c.name, /^:\d+\.\d+$/);
    const names = await c.call({ ...DBUS, member: 'ListNames' });
    assert.ok((names.body[0] as string[]).includes(c.name));
    await assert.rejects(c.call({ ...DBUS, member: 'GetNameOwner', signature: 's', body: ['x.nobody.here'] }), (e: unknown) => e instanceof dbus.DBusError && e.type === 'org.freedesktop.DBus.Error.NameHasNoOwner');
    assert.equal(await c.requestName('x.netsession.Test', 0x4), 1);
    assert.equal(await c.requestName('x.netsession.Test', 0x4), 4, 'already the owner');
    assert.equal(await c.releaseName('x.netsession.Test'), 1);
  });

  test('methods: handlers in order, a reply or an error; Peer answered on any path; what no handler takes is UnknownObject; no reply when none is asked for', async () => {
    const c = await ours();
    const seen: string[] = [];
    c.addMethodHandler((m) => {
      seen.push(`first ${m.member}`);
      if (m.member !== 'Echo') return false;
      c.reply(m, m.signature, m.body);
      return true;
    });
    const second = (m: Message): boolean => {
      seen.push(`second ${m.member}`);
      if (m.member !== 'Fail') return false;
      c.replyError(m, 'x.netsession.Error.Nope', 'no, really');
      return true;
    };
    c.addMethodHandler(second);
    const b = await client();
    const call = (member: string, extra: Partial<dbus.MessageLike> = {}) => b.call(new dbus.Message({ destination: c.name, path: '/x', interface: 'x.netsession.T', member, ...extra }));
    const echo = await call('Echo', { signature: 'sa{sv}', body: ['hi', { a: new dbus.Variant('u', 7) }] });
    assert.deepEqual(echo?.body, ['hi', { a: new dbus.Variant('u', 7) }]);
    await assert.rejects(call('Fail'), (e: unknown) => e instanceof dbus.DBusError && e.type === 'x.netsession.Error.Nope' && e.text === 'no, really');
    await assert.rejects(call('Other'), (e: unknown) => e instanceof dbus.DBusError && e.type === 'org.freedesktop.DBus.Error.UnknownObject');
    const ping = await b.call(new dbus.Message({ destination: c.name, path: '/x', interface: 'org.freedesktop.DBus.Peer', member: 'Ping' }));
    assert.equal(ping?.signature, '');
    const id = await b.call(new dbus.Message({ destination: c.name, path: '/', interface: 'org.freedesktop.DBus.Peer', member: 'GetMachineId' })).catch((e: unknown) => e);
    if (existsSync('/etc/machine-id') || existsSync('/var/lib/dbus/machine-id')) assert.match(String((id as Message).body[0]), /^[0-9a-f]{32}$/);
    else assert.ok(id instanceof dbus.DBusError && id.type === 'org.freedesktop.DBus.Error.FileNotFound');
    const intro = await b.call(new dbus.Message({ destination: c.name, path: '/nothing', interface: 'org.freedesktop.DBus.Introspectable', member: 'Introspect' }));
    assert.match(String(intro?.body[0]), /<node\/>/);
    assert.deepEqual(seen, ['first Echo', 'first Fail', 'second Fail', 'first Other', 'second Other', 'first Introspect', 'second Introspect'], 'Peer is the connection\'s');
    // NO_REPLY_EXPECTED: the handler runs, nothing is sent back (the next call's reply is the next thing the client reads)
    c.removeMethodHandler(second);
    seen.length = 0;
    const quiet = new dbus.Message({ destination: c.name, path: '/x', interface: 'x.netsession.T', member: 'Echo', signature: 's', body: ['q'] });
    quiet.flags = 0x1;
    const replies: (string | number)[] = [];
    b.on('message', (m: Message) => {
      if (m.type === 2 || m.type === 3) replies.push(m.replySerial);
    });
    b.send(quiet);
    const after = new dbus.Message({ destination: c.name, path: '/x', interface: 'x.netsession.T', member: 'Echo', signature: 's', body: ['after'] });
    await b.call(after);
    assert.deepEqual(seen, ['first Echo', 'first Echo']);
    assert.deepEqual(replies, [after.serial], 'the reply to the second call only');
  });

  test('a handler that throws: the caller gets Failed, the connection goes on', async () => {
    const c = await ours();
    const errors: unknown[] = [];
    c.on('error', (e) => errors.push(e));
    c.addMethodHandler((m) => {
      if (m.member === 'Boom') throw new Error('bug');
      c.reply(m, '', []);
      return true;
    });
    const b = await client();
    await assert.rejects(b.call(new dbus.Message({ destination: c.name, path: '/x', interface: 'x.t', member: 'Boom' })), (e: unknown) => e instanceof dbus.DBusError && e.type === 'org.freedesktop.DBus.Error.Failed');
    await b.call(new dbus.Message({ destination: c.name, path: '/x', interface: 'x.t', member: 'Fine' }));
    assert.equal(errors.length, 1);
  });

  test('500 random signals read through a 61-byte buffer (every message cut apart): what a dbus-next connection reads', async () => {
    const c = await ours({ readBufferBytes: 61 });
    const plain = await client();
    const sender = await client();
    const got = { ours: [] as Message[], plain: [] as Message[] };
    c.on('message', (m) => {
      if (m.interface === 'x.wire') got.ours.push(m);
    });
    plain.on('message', (m: Message) => {
      if (m.interface === 'x.wire') got.plain.push(m);
    });
    const rule = "type='signal',interface='x.wire'";
    await c.addMatch(rule);
    await plain.call(new dbus.Message({ ...DBUS, member: 'AddMatch', signature: 's', body: [rule] }));
    const { twoValues } = randomValues();
    for (let k = 0; k < 500; k++) {
      const { signature, body } = twoValues(7000 + k);
      sender.send(dbus.Message.newSignal('/x', 'x.wire', 'S', signature, body));
    }
    await waitFor('all 500 arrived at both', async () => got.ours.length === 500 && got.plain.length === 500, 10_000);
    const view = (m: Message | undefined) => m && { serial: m.serial, path: m.path, member: m.member, sender: m.sender, signature: m.signature, body: m.body };
    for (let k = 0; k < 500; k++) assert.deepStrictEqual(view(got.ours[k]), view(got.plain[k]), `signal ${k}`);
  });

  test('sent to a client: what a dbus-next connection sends (a dict of variants, a signal)', async () => {
    const c = await ours();
    const b = await client();
    const got: Message[] = [];
    b.on('message', (m: Message) => {
      if (m.interface === 'x.out') got.push(m);
    });
    c.send({ type: 1, flags: 0x1, destination: uniqueName(b), path: '/n', interface: 'x.out', member: 'Update', signature: 'a{sv}', body: [{ State: new dbus.Variant('s', 'online'), IPv4: new dbus.Variant('a{sv}', { Address: new dbus.Variant('s', '192.0.2.7') }) }] });
    await waitFor('the Update', async () => got.length === 1, 2000);
    assert.deepEqual(got[0]?.body, [{ State: new dbus.Variant('s', 'online'), IPv4: new dbus.Variant('a{sv}', { Address: new dbus.Variant('s', '192.0.2.7') }) }]);
    assert.equal(got[0]?.sender, c.name);
  });

  test('the bus goes away: calls waiting fail, the connection says it closed, a send throws', async () => {
    const other = await startBus(dir, 'bus2');
    const c = await BusConnection.connect(other.address);
    const closed = new Promise<Error>((resolve) => c.once('close', resolve));
    c.on('error', () => {});
    // a call the bus will not answer before it dies: to a name that holds the call (our own, unanswered)
    c.addMethodHandler(() => true);
    const waiting = c.call({ destination: c.name, path: '/x', interface: 'x.t', member: 'NeverAnswered' });
    other.daemon.kill('SIGKILL');
    await assert.rejects(waiting, /closed|ECONNRESET|EPIPE/);
    assert.match((await closed).message, /closed|ECONNRESET|EPIPE/);
    assert.throws(() => c.send({ type: 4, path: '/x', interface: 'x.t', member: 'S' }), /cannot send on the bus/);
    c.disconnect();
  });
});

/** A socket that plays the bus: takes any EXTERNAL credentials, answers Hello, records what arrives after. */
async function fakeBus(dir: string, behave: { auth?: string; silent?: boolean } = {}) {
  const path = join(dir, `fake-${Math.random().toString(36).slice(2)}`);
  const chunks: Buffer[] = [];
  const peers: net.Socket[] = [];
  const server = net.createServer((s) => {
    peers.push(s);
    let stage: 'auth' | 'begin' | 'messages' = 'auth';
    let text = '';
    let answered = false;
    const framer = new MessageFramer();
    s.on('data', (d: Buffer) => {
      if (behave.silent) return;
      if (stage !== 'messages') {
        text += d.toString('latin1');
        if (stage === 'auth' && text.includes('\r\n')) {
          s.write(behave.auth ?? 'OK 0123456789abcdef0123456789abcdef\r\n');
          stage = 'begin';
          text = text.slice(text.indexOf('\r\n') + 2);
        }
        if (stage === 'begin' && text.includes('BEGIN\r\n')) {
          stage = 'messages';
          d = Buffer.from(text.slice(text.indexOf('BEGIN\r\n') + 7), 'latin1');
        } else return;
      }
      if (stage !== 'messages' || d.length === 0) return;
      // what follows Hello: recorded as the chunks it came in
      if (answered) chunks.push(Buffer.from(d));
      framer.push(d, (bytes) => {
        const m = decodeMessage(bytes);
        if (m?.member !== 'Hello') return;
        answered = true;
        s.write(encodeMessage({ type: 2, serial: 1, replySerial: m.serial ?? 0, destination: ':1.1', sender: 'org.freedesktop.DBus', signature: 's', body: [':1.1'] }));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    address: `unix:path=${path}`,
    /** what arrived after Hello, one entry per read */
    after: () => chunks,
    peers,
    close: () => {
      for (const p of peers) p.destroy();
      server.close();
    },
  };
}

describe('BusConnection on a socket that plays the bus', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'netsession-fakebus-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const messagesIn = (chunks: Buffer[]): string[] => {
    const out: string[] = [];
    const framer = new MessageFramer();
    for (const c of chunks) framer.push(c, (b) => out.push(String(decodeMessage(b)?.member)));
    return out;
  };

  test('hold: what is sent until the running code (and what it queues) is done leaves in one write; then each at once', async () => {
    const bus = await fakeBus(dir);
    const c = await BusConnection.connect(bus.address);
    try {
      const sig = (member: string) => c.signal('/x', 'x.t', member, '', []);
      for (const m of ['one', 'two', 'three']) {
        c.hold();
        sig(m);
      }
      queueMicrotask(() => sig('four'));
      await waitFor('four messages', async () => messagesIn(bus.after()).length === 4, 2000);
      assert.equal(bus.after().length, 1, 'one write');
      assert.deepEqual(messagesIn(bus.after()), ['one', 'two', 'three', 'four']);
      sig('five');
      await waitFor('five', async () => messagesIn(bus.after()).length === 5, 2000);
      sig('six');
      await waitFor('six', async () => messagesIn(bus.after()).length === 6, 2000);
      assert.equal(bus.after().length, 3, 'without a hold, each message is a write of its own');
    } finally {
      c.disconnect();
      bus.close();
    }
  });

  test('sendBatch: messages leave a few at a time, the first ones while the rest are made; inside a hold, with it', async () => {
    const bus = await fakeBus(dir);
    const c = await BusConnection.connect(bus.address);
    const socket = net.Socket.prototype;
    const write = socket.write;
    let writes = 0;
    try {
      socket.write = function (this: net.Socket, ...args: Parameters<typeof write>) {
        writes++;
        return write.apply(this, args);
      } as typeof write;
      const made: string[] = [];
      c.sendBatch((sent) => {
        for (const m of ['a', 'b', 'c', 'd', 'e']) {
          c.signal('/x', 'x.t', m, '', []);
          made.push(`${m} (${writes} writes)`);
          sent();
        }
      }, 2);
      assert.deepEqual(made, ['a (0 writes)', 'b (0 writes)', 'c (1 writes)', 'd (1 writes)', 'e (2 writes)']);
      assert.equal(writes, 3);
      writes = 0;
      c.hold();
      c.sendBatch((sent) => {
        for (const m of ['f', 'g', 'h']) {
          c.signal('/x', 'x.t', m, '', []);
          sent();
        }
      }, 2);
      assert.equal(writes, 0, 'held');
      await new Promise((r) => setImmediate(r));
      assert.equal(writes, 1);
      socket.write = write;
      await waitFor('all eight', async () => messagesIn(bus.after()).length === 8, 2000);
      assert.deepEqual(messagesIn(bus.after()), ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']);
    } finally {
      socket.write = write;
      c.disconnect();
      bus.close();
    }
  });

  test('a bus that refuses our credentials, or says nothing: connect fails with a clear error, within its time', async () => {
    const refusing = await fakeBus(dir, { auth: 'REJECTED EXTERNAL\r\n' });
    await assert.rejects(BusConnection.connect(refusing.address), /did not take our credentials: REJECTED EXTERNAL/);
    refusing.close();
    const silent = await fakeBus(dir, { silent: true });
    const t0 = performance.now();
    await assert.rejects(BusConnection.connect(silent.address, { timeoutMs: 300 }), /no answer within 300 ms/);
    assert.ok(performance.now() - t0 < 2000);
    silent.close();
    await assert.rejects(BusConnection.connect(`unix:path=${dir}/no-such-socket`), /ENOENT/);
    await assert.rejects(BusConnection.connect('tcp:host=localhost,port=1'), /no unix socket/);
  });

  test('an impossible length from the bus ends the connection (said); a message that cannot be read is said and skipped', async () => {
    const bus = await fakeBus(dir);
    const c = await BusConnection.connect(bus.address);
    const errors: unknown[] = [];
    c.on('error', (e) => errors.push(e));
    const got: string[] = [];
    c.on('message', (m) => got.push(m.member));
    const peer = bus.peers[0] as net.Socket;
    const good = (member: string, serial: number) => encodeMessage({ type: 4, serial, path: '/x', interface: 'x.t', member, signature: 's', body: ['v'] });
    // a body shorter than its signature says, between two good ones
    const bad = Buffer.from(good('Bad', 3));
    bad.writeUInt32LE(bad.readUInt32LE(4) - 4, 4);
    const cut = bad.subarray(0, bad.length - 4);
    peer.write(Buffer.concat([good('A', 2), cut, good('B', 4)]));
    await waitFor('A and B', async () => got.length === 2, 2000);
    assert.deepEqual(got, ['A', 'B']);
    assert.equal(errors.length, 1);
    const closed = new Promise<Error>((resolve) => c.once('close', resolve));
    const huge = Buffer.from(good('Huge', 5));
    huge.writeUInt32LE(1 << 28, 4);
    peer.write(huge);
    assert.match((await closed).message, /at most/);
    bus.close();
  });
});
