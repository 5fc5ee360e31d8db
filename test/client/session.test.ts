// The session part of the client library against a real netsessiond in a lab (root):
// sessions pinned to two uplinks, TCP and HTTP through each (the lab's servers say which ISP
// and which source address they saw), fail-closed sessions, Updates as events, Release when
// the daemon stops, errors, a shared bus connection, and two measurements.
// Every socket is created inside the lab's device namespace (SessionOptions.netns): nothing
// leaves the lab, and every answer must carry the lab server's `isp` field.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { type AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import dbus from 'dbus-next';
import {
  ClientUsageError,
  DaemonError,
  DaemonUnavailableError,
  listSessions,
  Session,
  type SessionSettings,
} from '../../src/client/index.ts';
import { NO_REPLY_EXPECTED, SessionBus } from '../../src/client/session/session-bus.ts';
import { libc, SOCK_CLOEXEC, SOCK_STREAM } from '../../src/kernel/sys/libc.ts';
import { inNetns } from '../../src/kernel/sys/netns.ts';
import { labDaemon } from '../../src/lab/lab.ts';
import { eventually, rootSkip, startLab, type TestLab } from '../cli/lab-helpers.ts';
import { routeWithMark } from '../helpers/netns.ts';

const INTERNET4 = '198.18.0.1';
const INTERNET6 = '2001:db8:ffff::1';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

/** Established TCP connections to the echo port, as the ISP's namespace sees them: the peers' addresses. */
function echoPeers(ispNetns: string): string[] {
  const out = execFileSync('ip', ['netns', 'exec', ispNetns, 'ss', '-Htn', 'state', 'established', '( sport = :7 )'], { encoding: 'utf8' });
  return out
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const peer = l.trim().split(/\s+/).at(-1) ?? '';
      return peer.slice(0, peer.lastIndexOf(':')).replace(/^\[|\]$/g, '').replace(/^::ffff:/, '');
    });
}

async function echo(sock: Socket, text: string): Promise<string> {
  sock.write(text);
  let got = '';
  while (got.length < text.length) {
    const [d] = (await once(sock, 'data')) as [Buffer];
    got += d.toString('utf8');
  }
  return got;
}

/**
 * Retries what fails with ENETUNREACH for a moment: netsessiond sends the Update that says a
 * session is online a few milliseconds before the kernel routes its marker there (see the
 * todo test below). Anything else fails at once.
 */
async function settled<T>(f: () => Promise<T>, ms = 1000): Promise<T> {
  const deadline = performance.now() + ms;
  for (;;) {
    try {
      return await f();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENETUNREACH' || performance.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

/** Waits until the kernel of the device namespace routes a session's marker to a table (or has a rule for it at all). */
/** Waits until the kernel routes the marker (`lookup`: somewhere; `any`: its rule exists). */
async function ruled(netns: string, marker: number, to: 'lookup' | 'any' = 'lookup'): Promise<void> {
  const ok = (): boolean => (to === 'lookup' ? routeWithMark(netns, INTERNET4, marker) !== undefined : execFileSync('ip', ['-n', netns, 'rule'], { encoding: 'utf8' }).includes(`fwmark 0x${marker.toString(16)} `));
  await eventually('the marker rule in the kernel', ok, 3000, 5);
}

async function whoami(r: Response): Promise<{ client: string; isp: string }> {
  assert.equal(r.status, 200);
  const body = (await r.json()) as { client?: unknown; isp?: unknown };
  // the lab's server, nobody else, answered
  assert.equal(typeof body.isp, 'string', `not the lab server: ${JSON.stringify(body)}`);
  return body as { client: string; isp: string };
}

describe('Session (client library) against netsessiond', { skip: rootSkip }, () => {
  let lab: TestLab;
  const open: Session[] = [];
  const create = async (settings: Parameters<typeof Session.create>[0] = {}, opts: Parameters<typeof Session.create>[1] = {}): Promise<Session> => {
    const s = await Session.create(settings, { bus: lab.bus, netns: lab.netns, ...opts });
    open.push(s);
    return s;
  };
  let s1: Session;
  let s2: Session;
  let addr: Record<string, { v4: string; v6: string }>;

  before(async () => {
    lab = await startLab('sc');
    const services = await eventually(
      'IPv6 on every service',
      async () => {
        const all = await lab.client.services();
        return all.every((s) => s.properties.IPv6.Address !== undefined) ? all : undefined;
      },
      15_000,
    );
    addr = {};
    for (const s of services) addr[s.properties.Ethernet.Interface ?? ''] = { v4: s.properties.IPv4.Address ?? '', v6: s.properties.IPv6.Address ?? '' };
  });
  after(async () => {
    for (const s of open) s.close();
    await lab?.down();
  });

  it('create: resolves with the first Update merged; pinned sessions are online on their uplinks and know their SessionMarker', async () => {
    s1 = await create({ AllowedInterface: 'eth1' });
    s2 = await create({ AllowedInterface: 'eth2' });
    for (const [s, ifname] of [
      [s1, 'eth1'],
      [s2, 'eth2'],
    ] as const) {
      const st = s.settings;
      assert.equal(st.State, 'online');
      assert.equal(st.Interface, ifname);
      assert.equal(st.Bearer, 'ethernet');
      assert.equal(st.AllowedInterface, ifname);
      assert.deepEqual(st.AllowedBearers, ['*']);
      assert.equal(st.IPv4.Address, addr[ifname]?.v4);
      // the library asked for seed 001's keys (AvoidHandover: false) to learn the marker
      assert.equal(st.AvoidHandover, false);
      assert.equal(typeof st.SessionMarker, 'number');
      assert.equal(s.marker, st.SessionMarker);
      assert.match(s.path, /^\/sessions\/_1_[0-9]+\/net\/netsession\/client\/p[0-9]+_[0-9]+_[0-9a-f]+$/);
      assert.equal(s.path, `/sessions/${s.owner.replace(/[:.]/g, '_')}${s.notifierPath}`);
      assert.equal(s.bindAddress(4), addr[ifname]?.v4);
    }
    assert.notEqual(s1.marker, s2.marker);
    // traffic waits for the kernel: netsessiond's Update may come a few ms before the rules (todo tests below)
    await ruled(lab.netns, s1.marker!);
    await ruled(lab.netns, s2.marker!);
    await s1.waitFor((x) => x.IPv6.Address !== undefined, 10_000);
    await s2.waitFor((x) => x.IPv6.Address !== undefined, 10_000);
  });

  it('connectTcp: the echo server in ISP 1 (resp. 2) sees the connection from that uplink’s address', async () => {
    const a = await s1.connectTcp({ host: INTERNET4, port: 7 });
    const b = await s2.connectTcp({ host: INTERNET4, port: 7 });
    try {
      assert.equal(a.localAddress, addr.eth1?.v4);
      assert.equal(b.localAddress, addr.eth2?.v4);
      assert.equal(await echo(a, 'through isp1'), 'through isp1');
      assert.equal(await echo(b, 'through isp2'), 'through isp2');
      // the server side: each connection arrived at its own ISP, none at the other
      const peers1 = echoPeers(lab.info.uplinks[1]!.ispNetns);
      const peers2 = echoPeers(lab.info.uplinks[2]!.ispNetns);
      assert.ok(peers1.includes(addr.eth1!.v4), JSON.stringify(peers1));
      assert.ok(peers2.includes(addr.eth2!.v4), JSON.stringify(peers2));
      assert.ok(!peers1.includes(addr.eth2!.v4) && !peers2.includes(addr.eth1!.v4));
      assert.deepEqual(echoPeers(lab.info.uplinks[0]!.ispNetns), []);
    } finally {
      a.destroy();
      b.destroy();
    }
    // IPv6 too
    const c = await s2.connectTcp({ host: `[${INTERNET6}]`, port: 7 });
    try {
      assert.equal(await echo(c, 'v6'), 'v6');
      assert.ok(echoPeers(lab.info.uplinks[2]!.ispNetns).includes(s2.settings.IPv6.Address!));
    } finally {
      c.destroy();
    }
  });

  it('fetch and request: /whoami says isp1 / isp2 and the uplink’s address, over IPv4 and IPv6', async () => {
    assert.deepEqual(await whoami(await s1.fetch(`http://${INTERNET4}/whoami`)), { client: addr.eth1?.v4, isp: 'isp1' });
    assert.deepEqual(await whoami(await s2.fetch(`http://${INTERNET4}/whoami`)), { client: addr.eth2?.v4, isp: 'isp2' });
    assert.deepEqual(await whoami(await s1.fetch(`http://[${INTERNET6}]/whoami`)), { client: s1.settings.IPv6.Address, isp: 'isp1' });
    assert.deepEqual(await whoami(await s2.fetch(`http://[${INTERNET6}]/whoami`)), { client: s2.settings.IPv6.Address, isp: 'isp2' });
    // a 404 is a Response too, with its headers
    const nf = await s1.fetch(`http://${INTERNET4}/nothing`);
    assert.equal(nf.status, 404);
    assert.equal(nf.headers.get('content-type'), 'text/plain');
    assert.equal(await nf.text(), 'not found\n');
    // http.request's shape
    const body = await new Promise<string>((resolve, reject) => {
      const req = s2.request(`http://${INTERNET4}/whoami`, { method: 'GET' }, (res) => {
        let b = '';
        res.setEncoding('utf8').on('data', (d: string) => {
          b += d;
        });
        res.on('end', () => resolve(b));
      });
      req.on('error', reject);
      req.end();
    });
    assert.deepEqual(JSON.parse(body), { client: addr.eth2?.v4, isp: 'isp2' });
    // bind-before-connect (SourceIPRule style): no mark, the service's address as source
    assert.deepEqual(await whoami(await s2.fetch(`http://${INTERNET4}/whoami`, { mark: false, localAddress: s2.bindAddress(4)! })), { client: addr.eth2?.v4, isp: 'isp2' });
  });

  it('https: TLS on top of the marked socket (a TLS server on loopback inside the device namespace)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nsc-tls-'));
    try {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=lab.test', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
      const cert = readFileSync(join(dir, 'cert.pem'));
      const server = createHttpsServer({ key: readFileSync(join(dir, 'key.pem')), cert }, (req, res) => {
        res.end(JSON.stringify({ tls: 'encrypted' in req.socket, path: req.url, host: req.headers.host }));
      });
      // without a host, listen() binds at once: inside the namespace inNetns enters
      inNetns(lab.netns, () => server.listen({ port: 0 }));
      await once(server, 'listening');
      try {
        const port = (server.address() as AddressInfo).port;
        const r = await s1.fetch(`https://127.0.0.1:${port}/secure?x=1`, { tls: { ca: cert } });
        assert.equal(r.status, 200);
        assert.deepEqual(await r.json(), { tls: true, path: '/secure?x=1', host: `127.0.0.1:${port}` });
        // an unknown CA is refused
        await assert.rejects(s1.fetch(`https://127.0.0.1:${port}/`), /self[- ]signed|unable to verify|certificate/i);
      } finally {
        server.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a session pinned to a missing interface is disconnected and fails closed: ENETUNREACH at once', async () => {
    const s = await create({ AllowedInterface: 'eth9' });
    assert.equal(s.state, 'disconnected');
    assert.equal(s.settings.Interface, '');
    assert.equal(s.bindAddress(), undefined);
    const t0 = performance.now();
    await assert.rejects(s.connectTcp({ host: INTERNET4, port: 7 }), (e: NodeJS.ErrnoException) => e.code === 'ENETUNREACH');
    const ms = performance.now() - t0;
    assert.ok(ms < 1000, `${ms} ms`);
    await assert.rejects(s.connectTcp({ host: INTERNET6, port: 7 }), (e: NodeJS.ErrnoException) => e.code === 'ENETUNREACH' || e.code === 'EHOSTUNREACH');
    await assert.rejects(s.fetch(`http://${INTERNET4}/whoami`), (e: NodeJS.ErrnoException) => e.code === 'ENETUNREACH');
    // it comes online once the interface is allowed that has a service
    await s.change('AllowedInterface', 'eth0');
    await s.waitForState('online', 5000);
    assert.equal((await whoami(await settled(() => s.fetch(`http://${INTERNET4}/whoami`)))).isp, 'isp0');
    await s.destroy();
    assert.equal(s.ended, 'destroyed');
    await assert.rejects(s.connect(), ClientUsageError);
  });

  it('update events carry what changed and the merged view; Change is checked before it is sent', async () => {
    const s = await create({ AllowedInterface: 'eth1' });
    const seen: [Partial<SessionSettings>, SessionSettings][] = [];
    s.on('update', (changed, settings) => seen.push([changed, settings]));
    await s.change('ConnectionType', 'local');
    await eventually('the Update', () => seen.length > 0, 3000);
    const [changed, merged] = seen[0]!;
    assert.deepEqual(changed, { State: 'connected', ConnectionType: 'local' });
    assert.equal(merged.State, 'connected');
    assert.equal(merged.ConnectionType, 'local');
    assert.equal(merged.Interface, 'eth1');
    assert.equal(merged.IPv4.Address, addr.eth1?.v4);
    assert.deepEqual(s.settings, merged);
    await s.change('AllowedBearers', ['wifi', 'ethernet']);
    const after = await s.waitFor((x) => x.AllowedBearers.length === 2, 3000);
    // netsessiond keeps the application's order (ConnMan would report ethernet, wifi)
    assert.deepEqual(after.AllowedBearers, ['wifi', 'ethernet']);
    await s.change('ConnectionType', 'any');
    await s.waitForState('online', 3000);
    // refused by the library (nothing sent) and by the daemon
    await assert.rejects(s.change('IdleTimeout', -1), ClientUsageError);
    await assert.rejects(s.change('SourceIPRule', 'yes' as unknown as boolean), ClientUsageError);
    await assert.rejects(s.change('State' as 'ConnectionType', 'online' as 'any'), ClientUsageError);
    await assert.rejects(s.change('ConnectionType', 'bogus' as 'any'), (e: unknown) => e instanceof DaemonError && e.shortName === 'InvalidArguments');
    await assert.rejects(s.change('EmergencyCall', true), (e: unknown) => e instanceof DaemonError && e.shortName === 'PermissionDenied');
    assert.equal(s.settings.ConnectionType, 'any');
    await s.destroy();
  });

  it('errors: bad settings send nothing, the daemon’s refusals keep their names, no bus or daemon is DaemonUnavailableError', async () => {
    await assert.rejects(Session.create({ SourceIPRule: 'yes' as unknown as boolean }, { bus: lab.bus }), ClientUsageError);
    await assert.rejects(Session.create({ Bogus: 1 } as never, { bus: lab.bus }), ClientUsageError);
    await assert.rejects(Session.create({}, { bus: lab.bus, notifierPath: '/' }), ClientUsageError);
    await assert.rejects(Session.create({ Priority: true }, { bus: lab.bus }), (e: unknown) => e instanceof DaemonError && e.dbusName === 'net.connman.Error.PermissionDenied');
    await assert.rejects(Session.create({}, { bus: 'unix:path=/nonexistent/bus' }), (e: unknown) => e instanceof DaemonUnavailableError && e.reason === 'no-bus');
    await assert.rejects(Session.create({}, { bus: lab.bus, busName: 'net.connman.nobody' }), (e: unknown) => e instanceof DaemonUnavailableError && e.reason === 'no-daemon');
    // the same notifier path twice on one connection: ConnMan's AlreadyExists
    const shared = dbus.sessionBus({ busAddress: lab.bus });
    try {
      const a = await Session.create({}, { bus: shared, notifierPath: '/dup' });
      open.push(a);
      await assert.rejects(Session.create({}, { bus: shared, notifierPath: '/dup' }), (e: unknown) => e instanceof DaemonError && e.shortName === 'AlreadyExists');
      await a.destroy();
    } finally {
      shared.disconnect();
    }
  });

  it('the notifier answers only the daemon, and replies only when a reply is expected', async () => {
    const s = await create({ AllowedInterface: 'eth1' });
    const before = s.settings;
    // somebody else calls our Update: refused, nothing changes
    const other = dbus.sessionBus({ busAddress: lab.bus });
    try {
      const fake = new dbus.Message({
        destination: s.owner,
        path: s.notifierPath,
        interface: 'net.connman.Notification',
        member: 'Update',
        signature: 'a{sv}',
        body: [{ State: new dbus.Variant('s', 'disconnected') }],
      });
      await assert.rejects(other.call(fake), (e: unknown) => (e as { type?: string }).type === 'org.freedesktop.DBus.Error.AccessDenied');
      const release = new dbus.Message({ destination: s.owner, path: s.notifierPath, interface: 'net.connman.Notification', member: 'Release' });
      await assert.rejects(other.call(release), (e: unknown) => (e as { type?: string }).type === 'org.freedesktop.DBus.Error.AccessDenied');
    } finally {
      other.disconnect();
    }
    assert.deepEqual(s.settings, before);
    assert.equal(s.ended, undefined);
    // SessionBus.serve: a reply when one is expected, none for NO_REPLY_EXPECTED
    const server = await SessionBus.open(lab.bus);
    const client = dbus.sessionBus({ busAddress: lab.bus });
    try {
      const sent: number[] = [];
      const send = server.bus.send.bind(server.bus);
      server.bus.send = (m: dbus.Message) => {
        sent.push(m.type as number);
        return send(m);
      };
      let calls = 0;
      server.serve('/n', 'net.connman.Notification', () => {
        calls += 1;
        return { reply: [] };
      });
      const call = (flags: number): dbus.Message => {
        const m = new dbus.Message({ destination: server.uniqueName, path: '/n', interface: 'net.connman.Notification', member: 'Update', signature: 'a{sv}', body: [{}] });
        m.flags = flags as dbus.MessageFlag;
        return m;
      };
      const reply = await client.call(call(0));
      assert.equal(reply?.type, dbus.MessageType.METHOD_RETURN);
      client.send(call(NO_REPLY_EXPECTED));
      await eventually('the second call handled', () => calls === 2, 2000);
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(sent, [dbus.MessageType.METHOD_RETURN as number]);
    } finally {
      client.disconnect();
      server.close();
    }
  });

  it('a shared MessageBus: several sessions on one connection; close() destroys at the daemon and leaves the connection open', async () => {
    const shared = dbus.sessionBus({ busAddress: lab.bus });
    try {
      const a = await Session.create({ AllowedInterface: 'eth1' }, { bus: shared, netns: lab.netns });
      const b = await Session.create({ AllowedInterface: 'eth2' }, { bus: shared, netns: lab.netns });
      open.push(a, b);
      assert.equal(a.owner, b.owner);
      assert.equal((await whoami(await settled(() => a.fetch(`http://${INTERNET4}/whoami`)))).isp, 'isp1');
      assert.equal((await whoami(await settled(() => b.fetch(`http://${INTERNET4}/whoami`)))).isp, 'isp2');
      let listed = (await listSessions({ bus: lab.bus })).map((e) => e.path);
      assert.ok(listed.includes(a.path) && listed.includes(b.path));
      const mine = (await listSessions({ bus: lab.bus })).find((e) => e.path === a.path);
      assert.equal(mine?.pid, process.pid);
      assert.equal(mine?.uid, 0);
      assert.equal(mine?.notifier, a.notifierPath);
      a.close();
      assert.equal(a.ended, 'closed');
      await eventually('a gone at the daemon', async () => !(await listSessions({ bus: lab.bus })).some((e) => e.path === a.path), 3000);
      listed = (await listSessions({ bus: lab.bus })).map((e) => e.path);
      assert.ok(listed.includes(b.path));
      // b still works on the shared connection
      await b.change('ConnectionType', 'local');
      await b.waitForState('connected', 3000);
      await b.destroy();
    } finally {
      shared.disconnect();
    }
  });

  it('an Update that says online comes once the kernel routes the marker: a connect at once succeeds', async () => {
    let unreachable = 0;
    const trials = 20;
    for (let i = 0; i < trials; i++) {
      const s = await create({ AllowedInterface: 'eth9' });
      const online = s.waitForState('online', 5000);
      await s.change('AllowedInterface', i % 2 === 0 ? 'eth1' : 'eth2');
      await online;
      const k = await s.connectTcp({ host: INTERNET4, port: 7 }).catch((e: NodeJS.ErrnoException) => e);
      if (k instanceof Socket) k.destroy();
      else if (k.code === 'ENETUNREACH') unreachable += 1;
      else throw k;
      await s.destroy();
    }
    assert.equal(unreachable, 0, `${unreachable} of ${trials} connects right after the online Update failed with ENETUNREACH`);
  });

  it('measures Create→first Update and the cost of a marked connect (reported, not asserted)', async (t) => {
    const creates: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      const s = await create({ AllowedInterface: 'eth1' });
      creates.push(performance.now() - t0);
      await s.destroy();
    }
    // the same create, from an open connection (no connect/Hello/GetNameOwner/AddMatch of our own)
    const shared = dbus.sessionBus({ busAddress: lab.bus });
    const sharedCreates: number[] = [];
    try {
      for (let i = 0; i < 20; i++) {
        const t0 = performance.now();
        const s = await Session.create({ AllowedInterface: 'eth1' }, { bus: shared });
        sharedCreates.push(performance.now() - t0);
        await s.destroy();
      }
    } finally {
      shared.disconnect();
    }
    // the daemon alone: CreateSession sent → first Update received, on an open connection
    const raw = dbus.sessionBus({ busAddress: lab.bus });
    const daemonSide: number[] = [];
    try {
      let got: (() => void) | undefined;
      raw.addMethodHandler((m: dbus.Message) => {
        if (m.member !== 'Update') return false;
        got?.();
        return true;
      });
      await new Promise((r) => raw.once('connect', r));
      for (let i = 0; i < 20; i++) {
        const first = new Promise<void>((r) => {
          got = r;
        });
        const t0 = performance.now();
        const reply = await raw.call(new dbus.Message({ destination: 'net.connman', path: '/', interface: 'net.connman.Manager', member: 'CreateSession', signature: 'a{sv}o', body: [{ AllowedInterface: new dbus.Variant('s', 'eth1') }, `/raw${i}`] }));
        await first;
        daemonSide.push(performance.now() - t0);
        await raw.call(new dbus.Message({ destination: 'net.connman', path: '/', interface: 'net.connman.Manager', member: 'DestroySession', signature: 'o', body: [reply?.body[0]] }));
      }
    } finally {
      raw.addMethodHandler(() => true);
      raw.disconnect();
    }
    const marked: number[] = [];
    const plain: number[] = [];
    for (let i = 0; i < 30; i++) {
      let t0 = performance.now();
      const a = await s1.connectTcp({ host: INTERNET4, port: 7 });
      marked.push(performance.now() - t0);
      a.destroy();
      t0 = performance.now();
      const fd = inNetns(lab.netns, () => libc.socket(2, SOCK_STREAM | SOCK_CLOEXEC, 0) as number);
      const b = new Socket({ fd });
      b.connect({ host: INTERNET4, port: 7 });
      await once(b, 'connect');
      plain.push(performance.now() - t0);
      b.destroy();
    }
    const f = (x: number): string => x.toFixed(2);
    t.diagnostic(`Session.create (own connection) → first Update: median ${f(median(creates))} ms, max ${f(Math.max(...creates))} ms`);
    t.diagnostic(`Session.create (shared connection) → first Update: median ${f(median(sharedCreates))} ms`);
    t.diagnostic(`CreateSession sent → first Update received (raw dbus-next, open connection): median ${f(median(daemonSide))} ms, max ${f(Math.max(...daemonSide))} ms`);
    t.diagnostic(`connectTcp (marked) ${f(median(marked))} ms vs unmarked socket in the same namespace ${f(median(plain))} ms (median of 30)`);
    assert.ok(creates.length === 20 && marked.length === 30);
  });

  it('Release when the daemon stops: released, then closed; calls refused; a new session once it is back', async () => {
    const s = await create({ AllowedInterface: 'eth1' });
    const events: string[] = [];
    s.on('released', () => events.push('released'));
    s.on('closed', (r) => events.push(`closed:${r}`));
    await labDaemon(lab.name, 'stop');
    try {
      await eventually('Release', () => events.length === 2, 10_000);
      assert.deepEqual(events, ['released', 'closed:released']);
      assert.equal(s.ended, 'released');
      await assert.rejects(s.connect(), ClientUsageError);
      await assert.rejects(s.connectTcp({ host: INTERNET4, port: 7 }), ClientUsageError);
      await assert.rejects(Session.create({}, { bus: lab.bus }), (e: unknown) => e instanceof DaemonUnavailableError && e.reason === 'no-daemon');
    } finally {
      await labDaemon(lab.name, 'start');
    }
    await eventually('services online again', async () => (await lab.client.services().catch(() => [])).filter((x) => x.properties.State === 'online').length === 3, 20_000);
    const again = await create({ AllowedInterface: 'eth2' });
    await again.waitForState('online', 10_000);
    // the first session of a daemon: its traffic would leak through main until the rules exist (todo test below)
    await ruled(lab.netns, again.marker!);
    assert.equal((await whoami(await settled(() => again.fetch(`http://${INTERNET4}/whoami`)))).isp, 'isp2');
    await again.destroy();
  });

  it('SIGKILLed daemon (no Release): closed with daemon-lost', async () => {
    const s = await create({ AllowedInterface: 'eth1' });
    const closed = once(s, 'closed');
    await labDaemon(lab.name, 'kill');
    try {
      const [reason] = (await closed) as [string];
      assert.equal(reason, 'daemon-lost');
      // killed: its session's rule and nft table stay until a daemon starts again...
      assert.ok(execFileSync('ip', ['-n', lab.netns, 'rule'], { encoding: 'utf8' }).includes(`fwmark 0x${s.marker!.toString(16)} `));
    } finally {
      await labDaemon(lab.name, 'start');
    }
    await eventually('services online again', async () => (await lab.client.services().catch(() => [])).filter((x) => x.properties.State === 'online').length === 3, 20_000);
    // ...which removes what no session of its own needs
    await eventually('the dead session\'s rule gone', () => !execFileSync('ip', ['-n', lab.netns, 'rule'], { encoding: 'utf8' }).includes(`fwmark 0x${s.marker!.toString(16)} `), 3000);
    if ((await listSessions({ bus: lab.bus })).length === 0) {
      assert.notEqual(spawnSync('ip', ['netns', 'exec', lab.netns, 'nft', 'list', 'table', 'inet', 'netsession']).status, 0, 'no session: no nft table');
    }
  });
  it('no session at all: a marker (of the ended last session, or unknown) still fails closed', async () => {
    for (const s of open) s.close();
    await eventually('no session left', async () => (await listSessions({ bus: lab.bus })).length === 0, 5000);
    const s = await create({ AllowedInterface: 'eth2' });
    await ruled(lab.netns, s.marker!, 'any');
    const marker = s.marker!;
    await s.destroy();
    await eventually('no session rule left', () => !execFileSync('ip', ['-n', lab.netns, 'rule'], { encoding: 'utf8' }).includes(`fwmark 0x${marker.toString(16)} `), 3000);
    // the ended session's marker is in quarantine (not reused for a minute): its sockets must fail closed
    const { connectMarked } = await import('../../src/client/session/net.ts');
    for (const m of [marker, 0x40000fff]) {
      const r = await connectMarked({ mark: m, netns: lab.netns }, { host: INTERNET4, port: 7 }).then(
        (k) => {
          const a = k.localAddress;
          k.destroy();
          return `connected from ${a}`;
        },
        (e: NodeJS.ErrnoException) => e.code,
      );
      assert.equal(r, 'ENETUNREACH', `marker 0x${m.toString(16)}`);
    }
  });

  it('the first session of a freshly started daemon: its traffic never leaves through another uplink', async () => {
    for (const s of open) s.close();
    const leaks: string[] = [];
    for (let i = 0; i < 4; i++) {
      await labDaemon(lab.name, 'stop');
      await labDaemon(lab.name, 'start');
      await eventually('services online again', async () => (await lab.client.services().catch(() => [])).filter((x) => x.properties.State === 'online').length === 3, 20_000, 20);
      const s = await create({ AllowedInterface: 'eth1' });
      const k = await s.connectTcp({ host: INTERNET4, port: 7, timeoutMs: 3000 }).catch((e: NodeJS.ErrnoException) => e);
      if (k instanceof Socket) {
        if (k.localAddress !== s.bindAddress(4)) leaks.push(`connected from ${k.localAddress}, the session's address is ${s.bindAddress(4)}`);
        k.destroy();
      } else if (k.code !== 'ENETUNREACH') leaks.push(String(k));
      await s.destroy();
    }
    assert.deepEqual(leaks, []);
  });
});
