// Caller identity from the bus's credentials. With root: a private dbus-daemon, one client
// in this process (root) and one as nobody with a supplementary group, moved into a cgroup
// of its own where cgroup v2 allows it; uid, gids, pid and cgroup must come out as the
// kernel has them, and a caller that has left is a clean CallerGoneError. Without root:
// the old-bus fallback and the refusals, against a fake bus.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import dbus, { type MessageBus } from 'dbus-next';
import { accountsFrom } from '../../../src/daemon/policy/accounts.ts';
import { CallerGoneError, CallerIdentities, callerIdentity, IdentityError, parseProcCgroup, selinuxFromLabel } from '../../../src/daemon/policy/identity.ts';
import { renderBusConfig } from '../../../src/lab/bus-config.ts';
import { waitFor } from '../../helpers/connman.ts';
import { isRoot } from '../../helpers/netns.ts';

const NOBODY = 65534;
const USERS_GID = 100;

describe('identity helpers', () => {
  test('cgroup v2 line of /proc/<pid>/cgroup', () => {
    assert.equal(parseProcCgroup('12:pids:/x\n0::/system.slice/navi.service\n'), '/system.slice/navi.service');
    assert.equal(parseProcCgroup('0::/\n'), '/');
    assert.equal(parseProcCgroup('4:memory:/x\n1:cpu:/\n'), undefined);
  });
  test('security labels: SELinux contexts count, AppArmor labels do not', () => {
    assert.equal(selinuxFromLabel(Buffer.from('system_u:system_r:navi_t:s0\0')), 'system_u:system_r:navi_t:s0');
    assert.equal(selinuxFromLabel(Buffer.from('unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023\0')), 'unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023');
    assert.equal(selinuxFromLabel(Buffer.from('unconfined\0')), undefined);
    assert.equal(selinuxFromLabel(Buffer.from('/usr/bin/navi (enforce)\0')), undefined);
  });
});

/** A bus that answers org.freedesktop.DBus calls from a table (a reply body, or a D-Bus error name). */
function fakeBus(answers: Record<string, unknown[] | string>): { bus: MessageBus; calls: string[] } {
  const calls: string[] = [];
  const bus = {
    call(msg: dbus.Message): Promise<dbus.Message | null> {
      calls.push(msg.member);
      const a = answers[msg.member] ?? 'org.freedesktop.DBus.Error.UnknownMethod';
      if (typeof a === 'string') return Promise.reject(new dbus.DBusError(a, `fake ${a}`));
      return Promise.resolve(dbus.Message.newMethodReturn(msg, '', a));
    },
  };
  return { bus: bus as unknown as MessageBus, calls };
}

describe('callerIdentity against a fake bus', () => {
  const accounts = () => accountsFrom('navi:x:1001:1001::/:/bin/sh\n', 'navi:x:1001:\naudio:x:29:navi\n');
  test('old bus without GetConnectionCredentials: uid from GetConnectionUnixUser, groups from the account database', async () => {
    const { bus, calls } = fakeBus({
      GetConnectionUnixUser: [1001],
      GetConnectionUnixProcessID: [process.pid],
      GetConnectionSELinuxSecurityContext: 'org.freedesktop.DBus.Error.SELinuxSecurityContextUnknown',
    });
    const id = await callerIdentity(bus, ':1.7', { accounts });
    assert.deepEqual(calls, ['GetConnectionCredentials', 'GetConnectionUnixUser', 'GetConnectionUnixProcessID', 'GetConnectionSELinuxSecurityContext']);
    assert.equal(id.uid, 1001);
    assert.deepEqual(id.gids, [1001, 29]);
    assert.equal(id.pid, process.pid);
    assert.equal(id.cgroup, parseProcCgroup(readFileSync('/proc/self/cgroup', 'utf8')));
    assert.equal(id.selinux, undefined);
  });
  test('credentials without UnixGroupIDs (dbus < 1.10): the account database; a SELinux label is kept', async () => {
    const { bus } = fakeBus({
      GetConnectionCredentials: [{ UnixUserID: new dbus.Variant('u', 1001), LinuxSecurityLabel: new dbus.Variant('ay', Buffer.from('u:r:navi_t:s0\0')) }],
    });
    const id = await callerIdentity(bus, ':1.8', { accounts });
    assert.deepEqual(id, { uid: 1001, gids: [1001, 29], selinux: 'u:r:navi_t:s0' });
  });
  test('no uid from the bus: refused, never guessed', async () => {
    const { bus } = fakeBus({ GetConnectionCredentials: [{ ProcessID: new dbus.Variant('u', 1) }] });
    await assert.rejects(callerIdentity(bus, ':1.9'), IdentityError);
  });
  test('a vanished caller, on either path, is CallerGoneError', async () => {
    const gone = 'org.freedesktop.DBus.Error.NameHasNoOwner';
    await assert.rejects(callerIdentity(fakeBus({ GetConnectionCredentials: gone }).bus, ':1.10'), (e: unknown) => e instanceof CallerGoneError && e.sender === ':1.10');
    await assert.rejects(callerIdentity(fakeBus({ GetConnectionUnixUser: gone }).bus, ':1.11', { accounts }), CallerGoneError);
  });
  test('a bus that does not answer: IdentityError after the timeout', async () => {
    const bus = { call: () => new Promise<never>(() => {}) } as unknown as MessageBus;
    await assert.rejects(callerIdentity(bus, ':1.12', { timeoutMs: 50 }), /no answer from the bus/);
  });
  test('a bus that keeps talking is busy, not dead: its late answer is taken; a silent one times out', async () => {
    // (thousands of calls at once: the answer waits behind them in the socket, the timer fires first)
    const busy = (chatter: boolean): MessageBus => {
      const ee = new EventEmitter();
      const timer = chatter ? setInterval(() => ee.emit('message', {}), 10) : undefined;
      return Object.assign(ee, {
        call: (msg: dbus.Message) =>
          new Promise((resolve) =>
            setTimeout(() => {
              clearInterval(timer);
              resolve(dbus.Message.newMethodReturn(msg, 'a{sv}', [{ UnixUserID: new dbus.Variant('u', 7), UnixGroupIDs: new dbus.Variant('au', [7]) }]));
            }, 160),
          ),
      }) as unknown as MessageBus;
    };
    assert.equal((await callerIdentity(busy(true), ':1.13', { timeoutMs: 50 })).uid, 7);
    await assert.rejects(callerIdentity(busy(false), ':1.14', { timeoutMs: 50 }), /no answer from the bus/);
  });
  test('cache: one bus call per name, failures not kept, forget() drops', async () => {
    const { bus, calls } = fakeBus({ GetConnectionCredentials: [{ UnixUserID: new dbus.Variant('u', 5), UnixGroupIDs: new dbus.Variant('au', [5, 5, 7]) }] });
    const ids = new CallerIdentities(bus);
    assert.equal(ids.known(':1.1'), undefined, 'not known before its lookup');
    const [a, b] = await Promise.all([ids.get(':1.1'), ids.get(':1.1')]);
    assert.equal(a, b);
    assert.deepEqual(a.gids, [5, 7]);
    assert.equal(calls.length, 1);
    assert.equal(ids.known(':1.1'), a, 'known once looked up: answered without a wait');
    ids.forget(':1.1');
    assert.equal(ids.known(':1.1'), undefined, 'forget() drops the known identity too');
    await ids.get(':1.1');
    assert.equal(calls.length, 2);
    // well-known names are looked up every time: their owner can change
    await ids.get('org.example.App');
    await ids.get('org.example.App');
    assert.equal(calls.length, 4);
    assert.equal(ids.size, 1);
    const failing = new CallerIdentities(fakeBus({ GetConnectionCredentials: 'org.freedesktop.DBus.Error.NameHasNoOwner' }).bus);
    await assert.rejects(failing.get(':1.2'), CallerGoneError);
    assert.equal(failing.size, 0);
    assert.equal(failing.known(':1.2'), undefined, 'a failed lookup is not known');
    // names past the bound are forgotten, the oldest first, known ones with them
    const small = new CallerIdentities(bus, { maxEntries: 2 });
    for (const n of [':1.7', ':1.8', ':1.9']) await small.get(n);
    assert.equal(small.known(':1.7'), undefined);
    assert.ok(small.known(':1.8') && small.known(':1.9'));
  });
});

/** The cgroup v2 directory of this process, if the hierarchy is mounted where we can see it whole. */
function ownCgroupDir(): string | undefined {
  const own = parseProcCgroup(readFileSync('/proc/self/cgroup', 'utf8'));
  if (own === undefined) return undefined;
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    // id parent maj:min root mountpoint options … - fstype source superoptions
    const [pre, post] = line.split(' - ');
    if (!pre || !post?.startsWith('cgroup2 ')) continue;
    const f = pre.split(' ');
    if (f[3] === '/') return join(f[4]!, own);
  }
  return undefined;
}

describe('callerIdentity on a real dbus-daemon', { skip: !isRoot() ? 'needs root (a client as another user, cgroups)' : !existsSync('/usr/bin/setpriv') && 'needs setpriv' }, () => {
  let dir = '';
  let busPid: number | undefined;
  let address = '';
  let daemonBus: MessageBus;
  let rootClient: MessageBus;
  let child: ChildProcess | undefined;
  let childName = '';
  let testCgroup: string | undefined;
  let testCgroupPath: string | undefined;

  before(async () => {
    dir = mkdtempSync(`/tmp/netsession-identity-${process.pid}-`);
    // the client as nobody must reach the socket and read its script
    chmodSync(dir, 0o755);
    address = `unix:path=${dir}/bus`;
    writeFileSync(join(dir, 'bus.conf'), renderBusConfig({ labName: 'identity-test', listenAddress: address }));
    const bus = spawn('dbus-daemon', [`--config-file=${dir}/bus.conf`, '--nofork', '--nopidfile', '--nosyslog'], { stdio: ['ignore', 'ignore', 'pipe'] });
    busPid = bus.pid;
    // its stderr has harmless noise (fd limit in a container); shown only if it does not start
    let busLog = '';
    bus.stderr?.on('data', (d: Buffer) => {
      busLog += d.toString();
    });
    await waitFor('the bus socket', async () => existsSync(`${dir}/bus`) && statSync(`${dir}/bus`).isSocket(), 5000).catch((e: unknown) => {
      throw new Error(`${String(e)}; dbus-daemon said: ${busLog}`);
    });
    const open = async (): Promise<MessageBus> => {
      const b = dbus.sessionBus({ busAddress: address });
      await new Promise<void>((resolve, reject) => {
        b.once('connect', () => resolve());
        b.once('error', reject);
      });
      return b;
    };
    daemonBus = await open();
    rootClient = await open();

    const dbusNext = createRequire(import.meta.url).resolve('dbus-next');
    writeFileSync(
      join(dir, 'client.mjs'),
      `import dbus from ${JSON.stringify(dbusNext)};
const bus = dbus.sessionBus({ busAddress: process.argv[2] });
bus.on('error', () => process.exit(3));
bus.once('connect', () => process.stdout.write(bus.name + '\\n'));
process.stdin.resume();
process.stdin.on('end', () => { bus.disconnect(); process.exit(0); });
`,
    );
    chmodSync(join(dir, 'client.mjs'), 0o644);
    const c = spawn('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, `--groups=${USERS_GID}`, process.execPath, join(dir, 'client.mjs'), address], { stdio: ['pipe', 'pipe', 'inherit'] });
    child = c;
    childName = await new Promise<string>((resolve, reject) => {
      let out = '';
      c.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(out.trim());
      });
      c.once('exit', (code) => reject(new Error(`client exited early (${code})`)));
    });

    // a cgroup of its own, so the test shows the path is the caller's and not ours
    const base = ownCgroupDir();
    if (base && c.pid) {
      const path = join(base, `netsession-idtest-${process.pid}`);
      try {
        mkdirSync(path);
        testCgroupPath = path;
        writeFileSync(join(path, 'cgroup.procs'), `${c.pid}\n`);
        testCgroup = parseProcCgroup(readFileSync(`/proc/${c.pid}/cgroup`, 'utf8'));
      } catch {
        // no permission to move processes here (a delegated or read-only hierarchy): /proc still tells
      }
    }
  });

  after(async () => {
    daemonBus?.disconnect();
    rootClient?.disconnect();
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child?.once('exit', r));
      child.kill();
      await exited;
    }
    if (busPid) {
      try {
        process.kill(busPid);
      } catch {
        // already gone
      }
    }
    if (testCgroupPath) {
      // a cgroup can go once its last process has exited, which the kernel finishes a moment later
      await waitFor('the test cgroup to empty', async () => {
        rmdirSync(testCgroupPath!);
        return true;
      }, 3000).catch(() => {});
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a root client: uid 0, its groups, its pid, its cgroup', async () => {
    const name = (rootClient as unknown as { name: string }).name;
    const id = await callerIdentity(daemonBus, name);
    assert.equal(id.uid, 0);
    // getegid/getgroups are optional in node's typings (absent on Windows)
    const mine = [process.getegid?.() ?? -1, ...(process.getgroups?.() ?? [])];
    assert.deepEqual([...id.gids].sort((a, b) => a - b), [...new Set(mine)].sort((a, b) => a - b));
    assert.equal(id.pid, process.pid);
    assert.equal(id.cgroup, parseProcCgroup(readFileSync('/proc/self/cgroup', 'utf8')));
    assert.equal(id.selinux, undefined);
  });

  test('a client as nobody with a supplementary group: all of it from the kernel, not from the client', async (t) => {
    const id = await callerIdentity(daemonBus, childName);
    assert.equal(id.uid, NOBODY);
    assert.deepEqual([...id.gids].sort((a, b) => a - b), [USERS_GID, NOBODY]);
    assert.equal(id.pid, child?.pid);
    assert.ok(id.cgroup !== undefined);
    assert.equal(id.cgroup, parseProcCgroup(readFileSync(`/proc/${child?.pid}/cgroup`, 'utf8')));
    if (testCgroup) {
      assert.equal(id.cgroup, testCgroup);
      assert.match(id.cgroup, /\/netsession-idtest-\d+$/);
    } else t.diagnostic('could not move the client into a cgroup of its own; compared with /proc only');
    t.diagnostic(`nobody client: ${JSON.stringify(id)}`);
  });

  test('a caller that has left: CallerGoneError, also after a cached lookup is forgotten', async () => {
    const cache = new CallerIdentities(daemonBus);
    const before = await cache.get(childName);
    assert.equal(before.uid, NOBODY);
    const exited = new Promise((r) => child?.once('exit', r));
    child?.stdin?.end();
    await exited;
    const hasOwner = async (): Promise<boolean> => {
      const r = await daemonBus.call(new dbus.Message({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'NameHasOwner', signature: 's', body: [childName] }));
      return r?.body[0] === true;
    };
    await waitFor('the client to leave the bus', async () => !(await hasOwner()), 3000);
    // cached: credentials of a connection never change, the entry lives until forget()
    assert.equal(await cache.get(childName), before);
    cache.forget(childName);
    await assert.rejects(cache.get(childName), (e: unknown) => e instanceof CallerGoneError && /no longer on the bus/.test(e.message));
    assert.equal(cache.size, 0);
    await assert.rejects(callerIdentity(daemonBus, ':1.99999'), CallerGoneError);
  });
});
