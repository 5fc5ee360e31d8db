// Netlink codecs without a kernel: addresses, attributes, route and rule round trips.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MessageWriter, addressBytes, addressString, canonicalAddress, forEachAttr, forEachMessage } from '../../src/kernel/netlink/codec.ts';
import { AF_INET, AF_INET6, FR_ACT_UNREACHABLE, NLMSG_HDRLEN, RTM_NEWROUTE, RTM_NEWRULE, RTN_UNREACHABLE } from '../../src/kernel/netlink/constants.ts';
import { errnoName, NetlinkError } from '../../src/kernel/netlink/errors.ts';
import { normalizeRoute, parseRoute, routeKey, writeRoute } from '../../src/kernel/rtnetlink/route.ts';
import { normalizeRule, parseRule, ruleKey, writeRule } from '../../src/kernel/rtnetlink/rule.ts';
import type { Route, Rule } from '../../src/kernel/rtnetlink/types.ts';

test('IPv6 addresses print as inet_ntop does (RFC 5952)', () => {
  const cases: [string, string][] = [
    ['2001:db8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:DB8::0:1', '2001:db8::1'],
    ['::', '::'],
    ['::1', '::1'],
    ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2:3:4:5:6'],
    ['2001:0:0:1:0:0:0:0', '2001:0:0:1::'],
    ['fe80::1%0'.replace('%0', ''), 'fe80::1'],
    ['::ffff:192.0.2.1', '::ffff:192.0.2.1'],
    ['2001:db8::192.0.2.1', '2001:db8::c000:201'],
  ];
  for (const [input, want] of cases) assert.equal(canonicalAddress(input), want, input);
  assert.equal(addressString(addressBytes('198.51.100.7'), 0, 4), '198.51.100.7');
  assert.throws(() => addressBytes('300.1.1.1'), TypeError);
  assert.throws(() => addressBytes('not-an-address'), TypeError);
});

test('attributes nest and parse back', () => {
  const w = new MessageWriter(99, 0x5, 42);
  w.struct(4).writeUInt32LE(7);
  w.u32(1, 0xdeadbeef).string(2, 'eth0').beginNest(3).u8(1, 9).u16(2, 300).endNest();
  const buf = w.finish();
  const seen: string[] = [];
  forEachMessage(buf, buf.length, (h, off) => {
    assert.deepEqual([h.type, h.flags, h.seq, h.len], [99, 5, 42, buf.length]);
    forEachAttr(buf, off + 4, off + h.len - NLMSG_HDRLEN, (t, at, len) => {
      if (t === 3) forEachAttr(buf, at, at + len, (t2, at2) => seen.push(`${t}.${t2}=${t2 === 1 ? buf[at2] : buf.readUInt16LE(at2)}`));
      else seen.push(`${t}=${t === 1 ? buf.readUInt32LE(at).toString(16) : buf.toString('utf8', at, at + len - 1)}`);
    });
  });
  assert.deepEqual(seen, ['1=deadbeef', '2=eth0', '3.1=9', '3.2=300']);
  // a truncated buffer yields nothing rather than garbage
  let n = 0;
  forEachMessage(buf, buf.length - 1, () => n++);
  assert.equal(n, 0);
});

function roundTripRoute(r: Route): Route {
  const w = new MessageWriter(RTM_NEWROUTE, 0, 1);
  writeRoute(w, r, false);
  const b = w.finish();
  return parseRoute(b, NLMSG_HDRLEN, b.length);
}

test('routes survive encode/parse with their identity', () => {
  const routes = [
    normalizeRoute({ table: 0x10001, dst: 'default', gateway: '192.0.2.1', oif: 3, protocol: 83 }),
    normalizeRoute({ table: 100, dst: '198.18.0.0', dstLen: 15, oif: 4, protocol: 83, prefsrc: '192.0.2.10', priority: 10 }),
    normalizeRoute({ family: AF_INET6, table: 0x10002, dst: 'default', gateway: 'fe80::1', oif: 3, protocol: 83 }),
    normalizeRoute({ family: AF_INET6, table: 70000, dst: 'default', type: RTN_UNREACHABLE, protocol: 83, priority: 4000 }),
  ];
  for (const r of routes) {
    const back = roundTripRoute(r);
    assert.deepEqual(back, r);
    assert.equal(routeKey(back), routeKey(r));
  }
  assert.equal(routes[0]!.priority, 0);
  assert.equal(routes[2]!.priority, 1024, 'IPv6 default metric');
  assert.equal(routes[1]!.scope, 253, 'a device route without gateway is link scope');
});

test('rules survive encode/parse; keys tell different rules apart', () => {
  const rules: Rule[] = [
    normalizeRule({ family: AF_INET, priority: 10010, protocol: 83, table: 0x10001, fwmark: 0x10001, fwmask: 0xffff }),
    normalizeRule({ family: AF_INET6, priority: 10011, protocol: 83, table: 0x10001, src: '2001:db8::10' }),
    normalizeRule({ family: AF_INET, priority: 10012, protocol: 83, table: 0x10002, uidRange: { start: 1000, end: 1000 }, invert: true }),
    normalizeRule({ family: AF_INET, priority: 10013, protocol: 83, action: FR_ACT_UNREACHABLE, iifname: 'lo', oifname: 'eth0' }),
  ];
  for (const r of rules) {
    const w = new MessageWriter(RTM_NEWRULE, 0, 1);
    writeRule(w, r);
    const b = w.finish();
    assert.deepEqual(parseRule(b, NLMSG_HDRLEN, b.length), r);
  }
  assert.equal(rules[0]!.fwmask, 0xffff);
  assert.equal(normalizeRule({ family: AF_INET, priority: 1, protocol: 83, fwmark: 5 }).fwmask, 0xffffffff, 'a mark without mask means all bits');
  assert.equal(new Set(rules.map(ruleKey)).size, rules.length);
  assert.notEqual(ruleKey(rules[2]!), ruleKey({ ...rules[2]!, flags: 0 }), 'invert is part of identity');
});

test('netlink errors carry the errno name', () => {
  const e = new NetlinkError(-17, 'add route');
  assert.equal(e.code, 'EEXIST');
  assert.equal(e.errno, 17);
  assert.match(e.message, /add route: EEXIST/);
  assert.equal(errnoName(105), 'ENOBUFS');
});
