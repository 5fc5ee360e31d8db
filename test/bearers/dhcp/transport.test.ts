// The DHCP client's sockets (root, in a throw-away namespace): closing them must not hold
// up the main thread. The kernel waits for an RCU grace period when a packet socket is
// released (10-20 ms each, measured); a flapping uplink stops a client on every carrier loss.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DhcpTransport } from '../../../src/bearers/dhcp/transport.ts';
import { ipIn, isRoot, makeNetns } from '../../helpers/netns.ts';

const skip = !isRoot() && 'needs root (network namespaces, packet sockets)';
const fds = (): number => readdirSync('/proc/self/fd').length;

test('closing a packet transport returns at once, and its sockets are gone soon after', { skip }, async (t) => {
  const ns = makeNetns(t, 'd');
  const ifindex = Number((JSON.parse(ipIn(ns, '-j', 'link', 'show', 't0')) as { ifindex: number }[])[0]?.ifindex);
  const before = fds();
  const took: number[] = [];
  for (let k = 0; k < 20; k++) {
    const tr = DhcpTransport.open({ ifname: 't0', ifindex, netns: ns, onMessage: () => undefined, onProblem: () => undefined });
    const t0 = performance.now();
    tr.close();
    took.push(performance.now() - t0);
    assert.equal(tr.mode, 'packet');
    assert.equal(tr.isClosed, true);
    assert.throws(() => tr.sendBroadcast(new Uint8Array(300), '0.0.0.0'), /closed transport/);
  }
  const slowest = Math.max(...took);
  // a synchronous close of a packet socket takes 10-20 ms here; the bound is generous
  assert.ok(slowest < 5, `close() took up to ${slowest.toFixed(2)} ms`);
  const deadline = Date.now() + 5000;
  while (fds() > before && Date.now() < deadline) await sleep(20);
  assert.equal(fds(), before, 'every socket closed');
});
