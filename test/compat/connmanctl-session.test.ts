// Debian's connmanctl (its connmand is never started), interactive, driven through stdin,
// against netsessiond on a lab bus (root): `session on|connect|config|off` print ConnMan's
// lines with our values, and the daemon side agrees (the session exists while connmanctl
// holds it, owned by connmanctl's connection; it is gone after `session off`).
// Where netsessiond's documented semantics differ from ConnMan's, the expectation says so:
// AllowedBearers keeps the application's order, ConnectionType local reports `connected`
// (seed 004), Change does not deactivate (no intermediate `disconnected` Update).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { listSessions } from '../../src/client/index.ts';
import { childEnv, eventually, kernelAddresses, rootSkip, type Running, start, startLab, type TestLab } from '../cli/lab-helpers.ts';

const UPDATE_HEAD = 'Session      Update               = {';
const CONNMAN_KEYS = ['State', 'Name', 'IPv4', 'IPv6', 'Interface', 'Bearer', 'ConnectionType', 'AllowedBearers', 'AllowedInterface', 'ContextIdentifier', 'SourceIPRule'];

/** connmanctl's output without its prompt, its line-clearing escapes and the VPN daemon it misses. */
function clean(raw: string): string[] {
  return raw
    .replace(/Error getting VPN connections: [^\n]*?\.service files/g, '')
    .replace(/connmanctl> /g, '')
    .replace(/\r\x1b\[K/g, '')
    .split('\n');
}

/** The Update blocks printed so far: key → value text, in the order printed. */
function blocks(raw: string): [string, string][][] {
  const out: [string, string][][] = [];
  let cur: [string, string][] | undefined;
  for (const l of clean(raw)) {
    if (l.endsWith(UPDATE_HEAD)) cur = [];
    else if (cur && l === '}') {
      out.push(cur);
      cur = undefined;
    } else if (cur) {
      const i = l.indexOf(' = ');
      cur.push([l.slice(0, i), l.slice(i + 3)]);
    }
  }
  return out;
}

describe('connmanctl session (interactive) against netsessiond', { skip: rootSkip }, () => {
  let lab: TestLab;
  let ctl: Running | undefined;
  const send = (line: string): void => {
    ctl?.child.stdin?.write(`${line}\n`);
  };
  const lines = (): string[] => clean(ctl?.out() ?? '');
  // the next Update block; an Update with only IPv4 or IPv6 (an address or router that
  // changed on its own, as ConnMan sends them too) is skipped
  let cursor = 0;
  const nextBlock = (what: string): Promise<[string, string][]> =>
    eventually(what, () => {
      const all = blocks(ctl?.out() ?? '');
      while (cursor < all.length) {
        const b = all[cursor++]!;
        if (cursor > 1 && b.length === 1 && (b[0]![0] === 'IPv4' || b[0]![0] === 'IPv6')) continue;
        return b;
      }
      return undefined;
    });

  before(async () => {
    lab = await startLab('sm');
    await eventually('IPv6 on every service', async () => (await lab.client.services()).every((x) => x.properties.IPv6.Address !== undefined), 15_000);
  });
  after(async () => {
    if (ctl && ctl.child.exitCode === null) ctl.child.kill('SIGKILL');
    await lab?.down();
  });

  it('session on → created, the complete Update, connected; connect; config …; off → ended and the last Update', async () => {
    const eth1 = await lab.serviceOn('eth1');
    const eth2 = await lab.serviceOn('eth2');
    ctl = start('stdbuf', ['-o0', '-e0', 'connmanctl'], childEnv({ DBUS_SYSTEM_BUS_ADDRESS: lab.bus }));
    send('session on --bearers ethernet --ifname eth1 --srciprule yes');
    const path = await eventually('created', () => lines().map((l) => /Session (\/sessions\/\S+) created$/.exec(l)?.[1]).find(Boolean));
    const pid = ctl.child.pid;
    assert.equal(path.replace(/^\/sessions\/_1_[0-9]+/, ''), `/net/connman/connmanctl${pid}`);
    await eventually('connected', () => lines().includes(`Session ${path} connected`));
    const first = await nextBlock('Update 1');
    assert.deepEqual(
      first.map(([k]) => k),
      CONNMAN_KEYS,
    );
    const v = Object.fromEntries(first);
    assert.equal(v.State, 'online');
    assert.equal(v.Name, 'Wired');
    assert.equal(v.IPv4, `[ Method=dhcp, Address=${eth1.properties.IPv4.Address}, Netmask=255.255.255.0, Gateway=198.51.100.1 ]`);
    assert.match(v.IPv6 ?? '', new RegExp(`^\\[ Method=auto, Address=${eth1.properties.IPv6.Address}, PrefixLength=64, Gateway=fe80::[0-9a-f:]+, Privacy=disabled \\]$`));
    assert.equal(v.Interface, 'eth1');
    assert.equal(v.Bearer, 'ethernet');
    assert.equal(v.ConnectionType, 'any');
    assert.equal(v.AllowedBearers, '[ ethernet ]');
    assert.equal(v.AllowedInterface, 'eth1');
    assert.equal(v.ContextIdentifier, '');
    assert.equal(v.SourceIPRule, 'True');
    // the daemon side: the session is connmanctl's
    const mine = (await listSessions({ bus: lab.bus })).find((e) => e.path === path);
    assert.equal(mine?.pid, pid);
    assert.equal(mine?.notifier, `/net/connman/connmanctl${pid}`);

    // connect on a connected session: nothing to say
    send('session connect');
    send('session config --type local');
    assert.deepEqual(await nextBlock('Update 2'), [
      ['State', 'connected'],
      ['ConnectionType', 'local'],
    ]);
    send('session config --bearers wifi ethernet');
    // ours keep the application's order (ConnMan: [ ethernet, wifi ], after a disconnected/connected pair)
    assert.deepEqual(await nextBlock('Update 3'), [['AllowedBearers', '[ wifi, ethernet ]']]);
    send('session config --ifname eth2');
    const moved = Object.fromEntries(await nextBlock('Update 4'));
    assert.deepEqual(Object.keys(moved), ['Name', 'IPv4', 'IPv6', 'Interface', 'Bearer', 'AllowedInterface']);
    assert.equal(moved.Interface, 'eth2');
    assert.equal(moved.AllowedInterface, 'eth2');
    assert.equal(moved.IPv4, `[ Method=dhcp, Address=${eth2.properties.IPv4.Address}, Netmask=255.255.255.0, Gateway=203.0.113.1 ]`);
    send('session config --srciprule no');
    assert.deepEqual(await nextBlock('Update 5'), [['SourceIPRule', 'False']]);
    // connmanctl sends Change("ctxid", …) (its bug B7): refused, as by ConnMan
    send('session config --ctxid foo');
    const errLines = (): string[] => clean(`${ctl?.out() ?? ''}\n${ctl?.err() ?? ''}`);
    await eventually('the ctxid error', () => errLines().some((l) => l.startsWith('Error setting session ctxid: ')));
    assert.ok(!errLines().some((l) => /^Error/.test(l) && !l.startsWith('Error setting session ctxid: ')), errLines().join('\n'));

    send('session off');
    await eventually('ended', () => lines().includes(`Session ${path} ended`));
    // a session that ends while connected tells its owner so
    assert.deepEqual(await nextBlock('the last Update'), [
      ['State', 'disconnected'],
      ['Name', ''],
      ['IPv4', '[  ]'],
      ['IPv6', '[  ]'],
      ['Interface', ''],
      ['Bearer', ''],
    ]);
    assert.ok(!(await listSessions({ bus: lab.bus })).some((e) => e.path === path));
    // eth1's address is still there: a session's end touches no service
    assert.ok(kernelAddresses(lab.netns, 'eth1', 'inet').length === 1);

    // a second session in the same process: pinned to an interface without a service
    send('session on --ifname eth9');
    const none = Object.fromEntries(await nextBlock('Update of the second session'));
    assert.deepEqual(
      [none.State, none.Name, none.IPv4, none.Interface, none.Bearer, none.AllowedBearers, none.AllowedInterface],
      ['disconnected', '', '[  ]', '', '', '[ * ]', 'eth9'],
    );
    // connmanctl's notifier path is per process: the path of the ended session is free again
    const created = lines().filter((l) => l.endsWith(`Session ${path} created`));
    assert.equal(created.length, 2);
    send('session off');
    await eventually('ended 2', () => lines().filter((l) => l === `Session ${path} ended`).length === 2);
    send('quit');
    await ctl.exited;
    assert.equal(cursor, blocks(ctl.out()).length, 'no Update for a session that ends disconnected');
    assert.deepEqual(await listSessions({ bus: lab.bus }), []);
  });

  it('a connmanctl that dies takes its session with it', async () => {
    const c = start('stdbuf', ['-o0', '-e0', 'connmanctl'], childEnv({ DBUS_SYSTEM_BUS_ADDRESS: lab.bus }));
    try {
      c.child.stdin?.write('session on --ifname eth0\n');
      const path = await eventually('created', () => clean(c.out()).map((l) => /Session (\/sessions\/\S+) created$/.exec(l)?.[1]).find(Boolean));
      await eventually('listed', async () => (await listSessions({ bus: lab.bus })).some((e) => e.path === path));
      c.child.kill('SIGKILL');
      await c.exited;
      await eventually('gone at the daemon', async () => !(await listSessions({ bus: lab.bus })).some((e) => e.path === path), 5000);
    } finally {
      if (c.child.exitCode === null) c.child.kill('SIGKILL');
    }
  });
});
