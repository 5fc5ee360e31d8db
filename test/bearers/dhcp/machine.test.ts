// The client state machine with fake time: every exchange of RFC 2131 §4.4, retransmission
// timings, lease timers, NAKs, INIT-REBOOT, carrier loss, release, garbage. Replies are
// built like a server builds them and go through the real codec (encode → decode) before
// the machine sees them.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type Action,
  type Input,
  initialState,
  type Lease,
  leaseTimes,
  type MachineOptions,
  type MachineState,
  MIN_LEASE_SECONDS,
  step,
} from '../../../src/bearers/dhcp/machine.ts';
import { type DhcpMessage, type DhcpOptions, decode, encode } from '../../../src/bearers/dhcp/packet.ts';
import { Random, seedFromEnv } from '../../helpers/random.ts';

const MAC = '02:00:5e:00:53:01';
const SERVER = '192.0.2.1';
const ADDR = '192.0.2.77';
const T0 = 1_700_000_000_000;

type Sent = Extract<Action, { kind: 'send' }>;

/** A machine, a clock and the one timer the shell would keep. */
class Harness {
  state: MachineState;
  now = T0;
  timerAt: number | undefined;
  readonly log: Action[] = [];

  constructor(opts: Partial<MachineOptions> = {}) {
    this.state = initialState({ mac: MAC, seed: 7, ...opts });
  }

  feed(input: Input): Action[] {
    const r = step(this.state, input, this.now);
    this.state = r.state;
    const last = r.actions.at(-1);
    assert.equal(last?.kind, 'timer', 'every step ends by arming (or cancelling) the timer');
    if (last?.kind === 'timer') this.timerAt = last.at;
    this.log.push(...r.actions);
    return r.actions;
  }

  /** Lets the timer fire (fails if none is armed). */
  fire(): Action[] {
    assert.ok(this.timerAt !== undefined, 'a timer is armed');
    this.now = this.timerAt;
    return this.feed({ kind: 'timer' });
  }

  at(t: number): Action[] {
    this.now = t;
    return this.feed({ kind: 'timer' });
  }

  /** Through the codec, as from the wire. */
  receive(m: DhcpMessage): Action[] {
    const d = decode(encode(m));
    assert.ok(d.ok);
    return this.feed({ kind: 'packet', message: d.message });
  }

  /** DISCOVER → OFFER → REQUEST → ACK; returns the lease. */
  bind(options: DhcpOptions = {}): Lease {
    const d = only(sends(this.feed({ kind: 'start' })));
    const r = only(sends(this.receive(reply(d.message, 'OFFER', options))));
    const lease = leases(this.receive(reply(r.message, 'ACK', options)))[0];
    assert.ok(lease);
    assert.equal(this.state.phase, 'BOUND');
    return lease.lease;
  }
}

const sends = (as: Action[]): Sent[] => as.filter((a): a is Sent => a.kind === 'send');
const leases = (as: Action[]) => as.filter((a) => a.kind === 'lease');
const losts = (as: Action[]) => as.filter((a) => a.kind === 'lost');
function only<T>(xs: T[]): T {
  assert.equal(xs.length, 1, `exactly one, got ${xs.length}`);
  return xs[0] as T;
}

/** What a server answers to `req`. */
function reply(req: DhcpMessage, type: 'OFFER' | 'ACK' | 'NAK', extra: DhcpOptions = {}, yiaddr = ADDR): DhcpMessage {
  const options: DhcpOptions =
    type === 'NAK'
      ? { messageType: 'NAK', serverId: SERVER, message: 'wrong network' }
      : {
          messageType: type,
          serverId: SERVER,
          leaseTime: 3600,
          subnetMask: '255.255.255.0',
          routers: [SERVER],
          dnsServers: [SERVER, '198.51.100.53'],
          ...extra,
        };
  return {
    op: 2,
    htype: 1,
    hlen: 6,
    hops: 0,
    xid: req.xid,
    secs: 0,
    broadcast: req.broadcast,
    ciaddr: req.ciaddr,
    yiaddr: type === 'NAK' ? '0.0.0.0' : yiaddr,
    siaddr: '0.0.0.0',
    giaddr: '0.0.0.0',
    chaddr: req.chaddr,
    options,
  };
}

describe('acquiring', () => {
  test('DISCOVER → OFFER → REQUEST → ACK, field by field', () => {
    const h = new Harness({ hostname: 'box' });
    const d = only(sends(h.feed({ kind: 'start' })));
    assert.equal(h.state.phase, 'SELECTING');
    assert.deepEqual(d.to, { kind: 'broadcast', source: '0.0.0.0' });
    assert.equal(d.message.op, 1);
    assert.equal(d.message.broadcast, true, 'BROADCAST flag: no unicast can reach us yet');
    assert.equal(d.message.ciaddr, '0.0.0.0');
    assert.equal(d.message.chaddr, MAC);
    assert.equal(d.message.options.messageType, 'DISCOVER');
    assert.deepEqual([...(d.message.options.clientId ?? [])], [1, 2, 0, 0x5e, 0, 0x53, 1]);
    assert.equal(d.message.options.hostName, 'box');
    assert.ok(d.message.options.parameterRequestList?.includes(119));

    h.now += 3;
    const r = only(sends(h.receive(reply(d.message, 'OFFER'))));
    assert.equal(h.state.phase, 'REQUESTING');
    assert.equal(r.message.options.messageType, 'REQUEST');
    assert.equal(r.message.xid, d.message.xid, 'REQUEST keeps the OFFER’s xid');
    assert.equal(r.message.options.requestedAddress, ADDR);
    assert.equal(r.message.options.serverId, SERVER);
    assert.equal(r.message.ciaddr, '0.0.0.0');
    assert.equal(r.message.broadcast, true);
    assert.deepEqual(r.to, { kind: 'broadcast', source: '0.0.0.0' });

    h.now += 2;
    const acts = h.receive(reply(r.message, 'ACK', { domainName: 'example.test', domainSearch: ['example.test'], mtu: 1492, ntpServers: ['203.0.113.5'] }));
    const l = only(leases(acts));
    assert.equal(l.event, 'acquired');
    const start = T0 + 3; // when the REQUEST went out (RFC 2131 §4.4.1)
    assert.deepEqual(l.lease, {
      address: ADDR,
      prefixLen: 24,
      router: SERVER,
      dns: [SERVER, '198.51.100.53'],
      domain: 'example.test',
      searchDomains: ['example.test'],
      mtu: 1492,
      ntp: ['203.0.113.5'],
      leaseSeconds: 3600,
      t1: 1800,
      t2: 3150,
      serverId: SERVER,
      acquiredAt: start,
      renewAt: start + 1_800_000,
      rebindAt: start + 3_150_000,
      expiresAt: start + 3_600_000,
    });
    assert.equal(h.timerAt, start + 1_800_000, 'next wake-up is T1');
  });

  test('the first valid OFFER wins; a second one is ignored', () => {
    const h = new Harness();
    const d = only(sends(h.feed({ kind: 'start' })));
    h.receive(reply(d.message, 'OFFER'));
    const second = { ...reply(d.message, 'OFFER', { serverId: '192.0.2.2' }, '192.0.2.88') };
    assert.deepEqual(sends(h.receive(second)), []);
    assert.equal(h.state.offer?.address, ADDR);
  });

  test('DISCOVER retransmissions back off 1, 2, 4 … 64 s with ±0.5 s jitter, deterministic per seed', () => {
    const times = (seed: number): number[] => {
      const h = new Harness({ seed });
      h.feed({ kind: 'start' });
      const out = [h.now];
      for (let i = 0; i < 10; i++) {
        const s = only(sends(h.fire()));
        assert.equal(s.message.options.messageType, 'DISCOVER');
        out.push(h.now);
      }
      return out;
    };
    const a = times(1);
    const gaps = a.slice(1).map((t, i) => t - (a[i] as number));
    const nominal = [1, 2, 4, 8, 16, 32, 64, 64, 64, 64].map((s) => s * 1000);
    gaps.forEach((g, i) => {
      assert.ok(Math.abs(g - (nominal[i] as number)) <= 500, `gap ${i}: ${g} ms vs ${nominal[i]}`);
    });
    assert.deepEqual(times(1), a, 'same seed, same schedule');
    assert.notDeepEqual(times(2), a, 'another seed, other jitter');
  });

  test('REQUESTING gives up after 4 REQUESTs and starts over with a new xid', () => {
    const h = new Harness();
    const d = only(sends(h.feed({ kind: 'start' })));
    h.receive(reply(d.message, 'OFFER'));
    for (let i = 0; i < 3; i++) assert.equal(only(sends(h.fire())).message.options.messageType, 'REQUEST');
    const restart = only(sends(h.fire()));
    assert.equal(restart.message.options.messageType, 'DISCOVER');
    assert.notEqual(restart.message.xid, d.message.xid);
    assert.equal(h.state.phase, 'SELECTING');
    const waited = h.now - T0;
    assert.ok(waited >= 13_000 && waited <= 17_000, `gave up after ${waited} ms (1+2+4+8 s)`);
  });

  test('NAK to the REQUEST: discover again at once, nothing was lost', () => {
    const h = new Harness();
    const d = only(sends(h.feed({ kind: 'start' })));
    const r = only(sends(h.receive(reply(d.message, 'OFFER'))));
    const acts = h.receive(reply(r.message, 'NAK'));
    assert.deepEqual(losts(acts), []);
    assert.equal(only(sends(acts)).message.options.messageType, 'DISCOVER');
  });

  test('a server that offers and then always NAKs does not make us loop at wire speed', () => {
    const h = new Harness();
    let d = only(sends(h.feed({ kind: 'start' })));
    const starts: number[] = [];
    for (let i = 0; i < 6; i++) {
      starts.push(h.now);
      const r = only(sends(h.receive(reply(d.message, 'OFFER'))));
      const acts = h.receive(reply(r.message, 'NAK'));
      d = sends(acts)[0] ?? only(sends(h.fire()));
    }
    const gaps = starts.slice(1).map((t, i) => t - (starts[i] as number));
    assert.equal(gaps[0], 0, 'first NAK: rediscover immediately');
    assert.ok((gaps[2] as number) >= 1500, `then backing off: ${gaps.join(', ')}`);
  });

  test('ACK with a lease of 0, or with T1/T2 out of order, is clamped sanely', () => {
    assert.deepEqual(leaseTimes(0), { lease: MIN_LEASE_SECONDS, t1: MIN_LEASE_SECONDS / 2, t2: MIN_LEASE_SECONDS * 0.875 });
    assert.deepEqual(leaseTimes(1000, 900, 800), { lease: 1000, t1: 500, t2: 800 });
    assert.deepEqual(leaseTimes(1000, 400, 2000), { lease: 1000, t1: 400, t2: 875 });
    assert.deepEqual(leaseTimes(1000, 0, 0), { lease: 1000, t1: 500, t2: 875 });
    const t = leaseTimes(1000, undefined, 300);
    assert.ok(t.t1 > 0 && t.t1 < t.t2 && t.t2 === 300);
    assert.deepEqual(leaseTimes(0xffffffff), { lease: Infinity, t1: Infinity, t2: Infinity });

    const h = new Harness();
    const l = h.bind({ leaseTime: 0 });
    assert.equal(l.leaseSeconds, MIN_LEASE_SECONDS);
    assert.ok(l.renewAt < l.rebindAt && l.rebindAt < l.expiresAt);
    const inf = new Harness();
    const li = inf.bind({ leaseTime: 0xffffffff });
    assert.equal(li.expiresAt, Infinity);
    assert.equal(inf.timerAt, undefined, 'an infinite lease needs no timer');
  });

  test('ACK without a subnet mask: classful prefix; unusable router and DNS entries left out', () => {
    const h = new Harness();
    const d = only(sends(h.feed({ kind: 'start' })));
    const r = only(sends(h.receive(reply(d.message, 'OFFER'))));
    const ack = reply(r.message, 'ACK', { routers: ['0.0.0.0', '192.0.2.254'], dnsServers: ['255.255.255.255', '127.0.0.1', '192.0.2.53'] });
    delete ack.options.subnetMask;
    const l = only(leases(h.receive(ack))).lease;
    assert.equal(l.prefixLen, 24);
    assert.equal(l.router, '192.0.2.254');
    assert.deepEqual(l.dns, ['192.0.2.53']);
  });
});

describe('lease timers', () => {
  test('T1: unicast REQUEST to the server with ciaddr; ACK renews (same address, new times)', () => {
    const h = new Harness();
    const first = h.bind();
    const acts = h.fire();
    assert.equal(h.now, first.renewAt);
    assert.equal(h.state.phase, 'RENEWING');
    const r = only(sends(acts));
    assert.deepEqual(r.to, { kind: 'unicast', address: SERVER });
    assert.equal(r.message.ciaddr, ADDR);
    assert.equal(r.message.broadcast, false);
    assert.equal(r.message.options.requestedAddress, undefined, 'RFC 2131 table 5: no option 50 when renewing');
    assert.equal(r.message.options.serverId, undefined);
    h.now += 40;
    const l = only(leases(h.receive(reply(r.message, 'ACK'))));
    assert.equal(l.event, 'renewed');
    assert.equal(l.lease.address, ADDR);
    assert.equal(l.lease.acquiredAt, first.renewAt);
    assert.equal(l.lease.expiresAt, first.renewAt + 3_600_000);
    assert.equal(h.state.phase, 'BOUND');
  });

  test('RENEWING retries never run past T2; T2: broadcast REQUEST from the bound address', () => {
    const h = new Harness();
    const first = h.bind();
    h.fire(); // T1
    let renewals = 1;
    while (h.state.phase === 'RENEWING') {
      const acts = h.fire();
      assert.ok(h.now <= first.rebindAt, 'no wake-up beyond T2');
      if (h.state.phase === 'RENEWING') {
        assert.equal(only(sends(acts)).to.kind, 'unicast');
        renewals++;
      } else {
        assert.equal(h.now, first.rebindAt);
        const b = only(sends(acts));
        assert.deepEqual(b.to, { kind: 'broadcast', source: ADDR });
        assert.equal(b.message.ciaddr, ADDR);
        assert.equal(b.message.options.messageType, 'REQUEST');
      }
    }
    assert.equal(h.state.phase, 'REBINDING');
    assert.ok(renewals > 5, `${renewals} unicast REQUESTs between T1 and T2`);
    const last = sends(h.log).at(-1)!;
    h.now += 10;
    const l = only(leases(h.receive(reply(last.message, 'ACK'))));
    assert.equal(l.event, 'renewed');
  });

  test('expiry: lost(expired), then DISCOVER at once (asking for the old address)', () => {
    const h = new Harness();
    const first = h.bind();
    let acts: Action[] = [];
    while (losts(acts).length === 0) {
      acts = h.fire();
      assert.ok(h.now <= first.expiresAt);
    }
    assert.equal(h.now, first.expiresAt);
    assert.deepEqual(only(losts(acts)), { kind: 'lost', reason: 'expired', lease: first });
    const d = only(sends(acts));
    assert.equal(d.message.options.messageType, 'DISCOVER');
    assert.equal(d.message.options.requestedAddress, ADDR);
    assert.equal(h.state.lease, undefined);
  });

  test('NAK while renewing: lost(nak) and DISCOVER immediately, without the refused address', () => {
    const h = new Harness();
    h.bind();
    const r = only(sends(h.feed({ kind: 'renew-now' })));
    assert.deepEqual(r.to, { kind: 'unicast', address: SERVER });
    const acts = h.receive(reply(r.message, 'NAK'));
    assert.equal(only(losts(acts)).reason, 'nak');
    const d = only(sends(acts));
    assert.equal(d.message.options.messageType, 'DISCOVER');
    assert.equal(d.message.options.requestedAddress, undefined);
  });

  test('a renewal that brings other parameters or another address is "changed"', () => {
    const h = new Harness();
    h.bind();
    let r = only(sends(h.feed({ kind: 'renew-now' })));
    let l = only(leases(h.receive(reply(r.message, 'ACK', { dnsServers: ['192.0.2.53'] }))));
    assert.equal(l.event, 'changed');
    assert.equal(l.previous?.dns.length, 2);
    r = only(sends(h.feed({ kind: 'renew-now' })));
    l = only(leases(h.receive(reply(r.message, 'ACK', { dnsServers: ['192.0.2.53'] }, '192.0.2.78'))));
    assert.equal(l.event, 'changed');
    assert.equal(l.previous?.address, ADDR);
    assert.equal(l.lease.address, '192.0.2.78');
  });
});

describe('INIT-REBOOT', () => {
  test('start with a remembered address: broadcast REQUEST for it, ACK → acquired', () => {
    const h = new Harness({ requestedAddress: ADDR });
    const r = only(sends(h.feed({ kind: 'start' })));
    assert.equal(h.state.phase, 'REBOOTING');
    assert.equal(r.message.options.messageType, 'REQUEST');
    assert.equal(r.message.options.requestedAddress, ADDR);
    assert.equal(r.message.options.serverId, undefined, 'RFC 2131 §4.3.2: no server id in INIT-REBOOT');
    assert.equal(r.message.ciaddr, '0.0.0.0');
    assert.deepEqual(r.to, { kind: 'broadcast', source: '0.0.0.0' });
    assert.equal(only(leases(h.receive(reply(r.message, 'ACK')))).event, 'acquired');
  });

  test('NAK on the remembered address: DISCOVER without it, no lost (nobody held it)', () => {
    const h = new Harness({ requestedAddress: ADDR });
    const r = only(sends(h.feed({ kind: 'start' })));
    const acts = h.receive(reply(r.message, 'NAK'));
    assert.deepEqual(losts(acts), []);
    const d = only(sends(acts));
    assert.equal(d.message.options.messageType, 'DISCOVER');
    assert.equal(d.message.options.requestedAddress, undefined);
  });

  test('no answer to INIT-REBOOT: after 4 REQUESTs, DISCOVER (still hoping for that address)', () => {
    const h = new Harness({ requestedAddress: ADDR });
    h.feed({ kind: 'start' });
    for (let i = 0; i < 3; i++) assert.equal(only(sends(h.fire())).message.options.messageType, 'REQUEST');
    const d = only(sends(h.fire()));
    assert.equal(d.message.options.messageType, 'DISCOVER');
    assert.equal(d.message.options.requestedAddress, ADDR);
  });
});

describe('a lease from an earlier run (the daemon restarted)', () => {
  /** a lease bound by another machine, as the last run kept it */
  const earlier = (): Lease => {
    const h = new Harness();
    return h.bind();
  };

  test('held from the start; INIT-REBOOT for its address; ACK → renewed, not acquired', () => {
    const l = earlier();
    const h = new Harness({ lease: l });
    h.now = T0 + 600_000;
    assert.equal(h.state.lease?.address, ADDR, 'held before any packet');
    const r = only(sends(h.feed({ kind: 'start' })));
    assert.equal(h.state.phase, 'REBOOTING');
    assert.equal(r.message.options.messageType, 'REQUEST');
    assert.equal(r.message.options.requestedAddress, ADDR);
    assert.equal(r.message.options.serverId, undefined);
    const acts = h.receive(reply(r.message, 'ACK'));
    assert.equal(only(leases(acts)).event, 'renewed');
    assert.deepEqual(losts(h.log), []);
    assert.equal(h.state.phase, 'BOUND');
  });

  test('NAK: lost(nak) — the address goes — then DISCOVER', () => {
    const h = new Harness({ lease: earlier() });
    const r = only(sends(h.feed({ kind: 'start' })));
    const acts = h.receive(reply(r.message, 'NAK'));
    assert.equal(only(losts(acts)).reason, 'nak');
    assert.equal(only(sends(acts)).message.options.messageType, 'DISCOVER');
  });

  test('nobody answers: kept until it expires (RFC 2131 §3.2), then lost(expired)', () => {
    const l = earlier();
    const h = new Harness({ lease: l });
    h.feed({ kind: 'start' });
    for (let i = 0; i < 4; i++) h.fire();
    assert.equal(h.state.phase, 'BOUND');
    assert.deepEqual(losts(h.log), []);
    // renewal, rebinding (unanswered) and finally expiry, on the earlier run's schedule
    let lost = losts([]);
    for (let i = 0; i < 100 && lost.length === 0; i++) lost = losts(h.fire());
    assert.equal(h.now, l.expiresAt);
    assert.equal(only(lost).reason, 'expired');
  });

  test('already expired at start: lost(expired) at once, INIT-REBOOT for the address all the same', () => {
    const l = earlier();
    const h = new Harness({ lease: l });
    h.now = l.expiresAt + 1;
    const acts = h.feed({ kind: 'start' });
    assert.equal(only(losts(acts)).reason, 'expired');
    assert.equal(only(sends(acts)).message.options.requestedAddress, ADDR);
  });

  test('a lease with an address no host can have is refused', () => {
    assert.throws(() => initialState({ mac: MAC, seed: 1, lease: { ...earlier(), address: '127.0.0.1' } }), RangeError);
  });
});

describe('carrier', () => {
  test('link down keeps the lease and goes quiet; link up reboots with it → renewed', () => {
    const h = new Harness();
    const first = h.bind();
    h.now += 60_000;
    const down = h.feed({ kind: 'link-down' });
    assert.deepEqual(sends(down), []);
    assert.deepEqual(losts(down), []);
    assert.equal(h.state.phase, 'WAIT-LINK');
    assert.equal(h.timerAt, first.expiresAt, 'only the expiry is still timed');
    h.now += 5_000;
    const r = only(sends(h.feed({ kind: 'link-up' })));
    assert.equal(h.state.phase, 'REBOOTING');
    assert.equal(r.message.options.requestedAddress, ADDR);
    assert.equal(only(leases(h.receive(reply(r.message, 'ACK')))).event, 'renewed');
  });

  test('the lease expires while the link is down: lost(expired), then DISCOVER on link up', () => {
    const h = new Harness();
    const first = h.bind();
    h.feed({ kind: 'link-down' });
    const acts = h.fire();
    assert.equal(h.now, first.expiresAt);
    assert.equal(only(losts(acts)).reason, 'expired');
    assert.deepEqual(sends(acts), []);
    assert.equal(h.timerAt, undefined);
    const up = only(sends(h.feed({ kind: 'link-up' })));
    // the expired address is still the one to ask for: INIT-REBOOT first
    assert.equal(up.message.options.requestedAddress, ADDR);
  });

  test('nobody answers after carrier returns: keep the unexpired lease (RFC 2131 §3.2)', () => {
    const h = new Harness();
    h.bind();
    h.feed({ kind: 'link-down' });
    h.feed({ kind: 'link-up' });
    for (let i = 0; i < 4; i++) h.fire();
    assert.equal(h.state.phase, 'BOUND');
    assert.deepEqual(losts(h.log), []);
    assert.equal(h.state.lease?.address, ADDR);
  });

  test('start without carrier waits for it', () => {
    const h = new Harness({ link: false });
    assert.deepEqual(sends(h.feed({ kind: 'start' })), []);
    assert.equal(h.state.phase, 'WAIT-LINK');
    assert.equal(only(sends(h.feed({ kind: 'link-up' }))).message.options.messageType, 'DISCOVER');
  });
});

describe('stopping', () => {
  test('stop with release: DHCPRELEASE unicast to the server, lost(released), timer off', () => {
    const h = new Harness();
    const l = h.bind();
    const acts = h.feed({ kind: 'stop', release: true });
    const rel = only(sends(acts));
    assert.deepEqual(rel.to, { kind: 'unicast', address: SERVER });
    assert.equal(rel.message.options.messageType, 'RELEASE');
    assert.equal(rel.message.ciaddr, ADDR);
    assert.equal(rel.message.options.serverId, SERVER);
    assert.deepEqual(only(losts(acts)), { kind: 'lost', reason: 'released', lease: l });
    assert.equal(h.timerAt, undefined);
    assert.equal(h.state.phase, 'STOPPED');
    // a released address is not asked for again
    assert.equal(only(sends(h.feed({ kind: 'start' }))).message.options.requestedAddress, undefined);
  });

  test('stop without release: lost(stopped), nothing sent; the next start reboots with the address', () => {
    const h = new Harness();
    h.bind();
    const acts = h.feed({ kind: 'stop', release: false });
    assert.deepEqual(sends(acts), []);
    assert.equal(only(losts(acts)).reason, 'stopped');
    const r = only(sends(h.feed({ kind: 'start' })));
    assert.equal(h.state.phase, 'REBOOTING');
    assert.equal(r.message.options.requestedAddress, ADDR);
  });

  test('stop before any lease: nothing to lose', () => {
    const h = new Harness();
    h.feed({ kind: 'start' });
    const acts = h.feed({ kind: 'stop', release: true });
    assert.deepEqual(acts.filter((a) => a.kind !== 'log' && a.kind !== 'timer'), []);
  });
});

describe('configuration', () => {
  test('bad MAC, host name, client id or remembered address: refused when the client is made', () => {
    assert.throws(() => initialState({ mac: '02:00:5e', seed: 1 }), RangeError);
    assert.throws(() => initialState({ mac: MAC, seed: 1, hostname: 'my box' }), RangeError);
    assert.throws(() => initialState({ mac: MAC, seed: 1, clientId: Uint8Array.of(1) }), RangeError);
    assert.throws(() => initialState({ mac: MAC, seed: 1, requestedAddress: '255.255.255.255' }), RangeError);
    assert.equal(initialState({ mac: '02-00-5E-00-53-01', seed: 1 }).config.mac, MAC);
  });
});

describe('garbage and strangers', () => {
  test('wrong xid, chaddr, op, client id, type or address: ignored without a trace', () => {
    const h = new Harness();
    const d = only(sends(h.feed({ kind: 'start' })));
    const before = h.state;
    const ok = reply(d.message, 'OFFER');
    const bad: DhcpMessage[] = [
      { ...ok, xid: (ok.xid + 1) >>> 0 },
      { ...ok, chaddr: '02:00:5e:00:53:02' },
      { ...ok, op: 1 },
      { ...ok, options: { ...ok.options, clientId: Uint8Array.from([1, 9, 9, 9, 9, 9, 9]) } },
      { ...ok, options: { ...ok.options, messageType: 'ACK' } },
      { ...ok, options: { ...ok.options, messageType: undefined } },
      { ...ok, yiaddr: '0.0.0.0' },
      { ...ok, yiaddr: '224.0.0.1' },
      { ...ok, options: { ...ok.options, serverId: undefined } },
    ];
    for (const m of bad) {
      const acts = h.receive(m);
      assert.deepEqual(sends(acts), [], JSON.stringify(m.options.messageType));
      assert.deepEqual(leases(acts), []);
      assert.equal(h.state.phase, 'SELECTING');
      assert.equal(h.state.xid, before.xid);
    }
    // and the right one still works afterwards
    assert.equal(only(sends(h.receive(ok))).message.options.messageType, 'REQUEST');
  });

  test('replies in phases that expect none are ignored (BOUND, STOPPED)', () => {
    const h = new Harness();
    h.bind();
    const last = sends(h.log).at(-1)!;
    assert.deepEqual(sends(h.receive(reply(last.message, 'NAK'))), []);
    assert.equal(h.state.phase, 'BOUND');
    h.feed({ kind: 'stop', release: false });
    assert.deepEqual(h.receive(reply(last.message, 'ACK')).filter((a) => a.kind !== 'timer'), []);
  });

  test('random inputs in random order: no throw, invariants hold (property)', () => {
    const seed = seedFromEnv();
    const rnd = new Random(seed);
    for (let run = 0; run < 200; run++) {
      const h = new Harness({ seed: rnd.int(0, 1e9), ...(rnd.chance(0.3) ? { requestedAddress: ADDR } : {}) });
      let held: Lease | undefined;
      for (let i = 0; i < 60; i++) {
        const lastSent = sends(h.log).at(-1)?.message;
        const pick = rnd.int(0, 9);
        let acts: Action[];
        try {
          if (pick <= 3 && lastSent) {
            const type = rnd.pick(['OFFER', 'ACK', 'NAK'] as const);
            const m = reply(lastSent, type, { leaseTime: rnd.pick([0, 60, 3600, 0xffffffff]) }, rnd.pick([ADDR, '192.0.2.78']));
            if (rnd.chance(0.2)) m.xid = rnd.int(0, 0xffffffff);
            acts = h.receive(m);
          } else if (pick <= 6) {
            h.now += rnd.int(0, 4_000_000);
            acts = h.feed({ kind: 'timer' });
          } else {
            const input = rnd.pick<Input>([
              { kind: 'start' },
              { kind: 'stop', release: rnd.chance(0.5) },
              { kind: 'renew-now' },
              { kind: 'link-down' },
              { kind: 'link-up' },
            ]);
            acts = h.feed(input);
          }
        } catch (e) {
          assert.fail(`threw (TEST_SEED=${seed}, run ${run}, step ${i}): ${e instanceof Error ? e.stack : e}`);
        }
        // what the daemon would believe, from the events alone, must match the machine
        for (const a of acts) {
          if (a.kind === 'lease') {
            assert.equal(a.event === 'acquired', held === undefined, `seed ${seed} run ${run}: acquired ⇔ nothing held`);
            held = a.lease;
          }
          if (a.kind === 'lost') {
            assert.ok(held, `seed ${seed} run ${run}: lost without a lease`);
            held = undefined;
          }
        }
        assert.deepEqual(h.state.lease, held);
        if (['BOUND', 'RENEWING', 'REBINDING'].includes(h.state.phase)) assert.ok(h.state.lease);
        if (h.state.phase === 'STOPPED') assert.equal(h.timerAt, undefined);
        if (h.timerAt !== undefined) assert.ok(Number.isFinite(h.timerAt));
      }
    }
  });
});
