// The DHCP codec and the IPv4/UDP framing: golden bytes written out by hand from the RFCs,
// round trips, and garbage (random, truncated, bit-flipped) that must never make them throw.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { buildIpv4Udp, parseIpv4Udp } from '../../../src/bearers/dhcp/frame.ts';
import {
  type DhcpMessage,
  decode,
  decodeDomainSearch,
  encode,
  encodeDomainSearch,
  maskToPrefixLen,
} from '../../../src/bearers/dhcp/packet.ts';
import { Random, seedFromEnv } from '../../helpers/random.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function discover(): DhcpMessage {
  return {
    op: 1,
    htype: 1,
    hlen: 6,
    hops: 0,
    xid: 0x12345678,
    secs: 3,
    broadcast: true,
    ciaddr: '0.0.0.0',
    yiaddr: '0.0.0.0',
    siaddr: '0.0.0.0',
    giaddr: '0.0.0.0',
    chaddr: '02:00:5e:00:53:01',
    options: {
      messageType: 'DISCOVER',
      clientId: Uint8Array.from([1, 2, 0, 0x5e, 0, 0x53, 1]),
      requestedAddress: '192.0.2.77',
      parameterRequestList: [1, 3, 6, 15, 119],
      maxMessageSize: 1500,
    },
  };
}

function ack(): DhcpMessage {
  return {
    op: 2,
    htype: 1,
    hlen: 6,
    hops: 0,
    xid: 0xdeadbeef,
    secs: 0,
    broadcast: true,
    ciaddr: '0.0.0.0',
    yiaddr: '192.0.2.77',
    siaddr: '192.0.2.1',
    giaddr: '0.0.0.0',
    chaddr: '02:00:5e:00:53:01',
    options: {
      messageType: 'ACK',
      serverId: '192.0.2.1',
      leaseTime: 3600,
      renewalTime: 1800,
      rebindingTime: 3150,
      subnetMask: '255.255.255.0',
      routers: ['192.0.2.1', '192.0.2.2'],
      dnsServers: ['192.0.2.1', '198.51.100.53'],
      domainName: 'example.test',
      domainSearch: ['eng.example.test', 'example.test', 'lab.invalid'],
      hostName: 'box',
      mtu: 1492,
      ntpServers: ['203.0.113.123'],
      message: 'hello',
      clientId: Uint8Array.from([1, 2, 0, 0x5e, 0, 0x53, 1]),
      unknown: [{ code: 28, data: Uint8Array.from([192, 0, 2, 255]) }],
    },
  };
}

describe('encode', () => {
  test('a DISCOVER, byte for byte (RFC 2131 §2 frame, RFC 2132 options)', () => {
    const want = hex(`
      01 01 06 00  12 34 56 78  00 03 80 00
      00000000 00000000 00000000 00000000
      02005e005301 00000000000000000000
      ${'00'.repeat(64)} ${'00'.repeat(128)}
      63 82 53 63
      35 01 01
      32 04 c0 00 02 4d
      37 05 01 03 06 0f 77
      39 02 05 dc
      3d 07 01 02 00 5e 00 53 01
      ff`);
    const got = encode(discover());
    // padded with zeros to the 300 bytes of a BOOTP message (RFC 1542 §2.1)
    assert.equal(got.length, 300);
    assert.deepEqual(got.subarray(0, want.length), want);
    assert.ok(got.subarray(want.length).every((b) => b === 0));
  });

  test('options longer than 255 bytes are split into several instances (RFC 3396)', () => {
    const names = Array.from({ length: 30 }, (_, i) => `name${i}.zone${i}.example`);
    const m = ack();
    m.options.domainSearch = names;
    const wire = encode(m);
    const instances: number[] = [];
    for (let p = 240; wire[p] !== 255; ) {
      if (wire[p] === 0) {
        p++;
        continue;
      }
      if (wire[p] === 119) instances.push(wire[p + 1]!);
      p += 2 + wire[p + 1]!;
    }
    assert.ok(instances.length >= 2, `split in ${instances.length}`);
    assert.equal(instances[0], 255);
    const back = decode(wire);
    assert.ok(back.ok);
    assert.deepEqual(back.message.options.domainSearch, names);
  });
});

describe('decode', () => {
  test('round trip of a reply with every option we know', () => {
    const m = ack();
    const r = decode(encode(m));
    assert.ok(r.ok, r.ok ? '' : r.error);
    assert.deepEqual(r.warnings, []);
    assert.deepEqual(r.message, m);
  });

  test('round trip of the DISCOVER', () => {
    const r = decode(encode(discover()));
    assert.ok(r.ok);
    assert.deepEqual(r.message, discover());
  });

  test('RFC 3397 §2 example: split option, compression pointer', () => {
    // the RFC's own figure: "eng.apple.com." and "marketing.apple.com." in three options of 9
    const opts = hex(`
      77 09 03 65 6e 67 05 61 70 70 6c
      77 09 65 03 63 6f 6d 00 09 6d 61
      77 09 72 6b 65 74 69 6e 67 c0 04
      ff`);
    const m = encode({ ...ack(), options: {} });
    const wire = Buffer.concat([m.subarray(0, 240), opts]);
    const r = decode(wire);
    assert.ok(r.ok);
    assert.deepEqual(r.message.options.domainSearch, ['eng.apple.com', 'marketing.apple.com']);
    // and our encoder compresses the same way
    assert.deepEqual(
      Buffer.from(encodeDomainSearch(['eng.apple.com', 'marketing.apple.com'])),
      hex('03656e67 056170706c65 03636f6d 00 096d61726b6574696e67 c004'),
    );
  });

  test('compression pointers that loop or point forward are rejected, not followed', () => {
    assert.equal(decodeDomainSearch(hex('c000')), undefined, 'self');
    assert.equal(decodeDomainSearch(hex('0161 c000')), undefined, 'back into the same name');
    assert.equal(decodeDomainSearch(hex('c002 0161 00')), undefined, 'forward');
    assert.equal(decodeDomainSearch(hex('0161')), undefined, 'unterminated');
    assert.equal(decodeDomainSearch(hex('40')), undefined, 'extended label type');
    assert.deepEqual(decodeDomainSearch(hex('0161 00 0162 c000')), { names: ['a', 'b.a'], dropped: 0 });
  });

  test('names that could inject text into resolv.conf are dropped', () => {
    const m = encode({ ...ack(), options: { messageType: 'ACK' } });
    const body = m.subarray(0, 243);
    const evil = Buffer.from('x.test\nnameserver 6.6.6.6');
    const withOpt = (code: number, data: Buffer): Buffer => Buffer.concat([body, Buffer.of(code, data.length), data, Buffer.of(255)]);
    let r = decode(withOpt(15, evil));
    assert.ok(r.ok);
    assert.equal(r.message.options.domainName, undefined);
    assert.equal(r.warnings.length, 1);
    // a search list with one bad name keeps the good ones
    r = decode(withOpt(119, hex('0461 2062 63 00 04 74 65 73 74 00')));
    assert.ok(r.ok);
    assert.deepEqual(r.message.options.domainSearch, ['test']);
    // a C string's NUL at the end is tolerated
    r = decode(withOpt(15, Buffer.from('example.test\0')));
    assert.ok(r.ok);
    assert.equal(r.message.options.domainName, 'example.test');
    // control characters in a NAK's message become '?'
    r = decode(withOpt(56, Buffer.from('no\nway\x1b[31m')));
    assert.ok(r.ok);
    assert.equal(r.message.options.message, 'no?way?[31m');
  });

  test('an option of the wrong size is dropped; the message stays', () => {
    const m = encode({ ...ack(), options: { messageType: 'ACK', serverId: '192.0.2.1' } });
    const body = m.subarray(0, m.indexOf(255, 240));
    for (const [code, data] of [
      [51, hex('0e10')], // lease time: 2 bytes
      [1, hex('ffffff')], // mask: 3 bytes
      [3, hex('c00002')], // routers: not a multiple of 4
      [26, hex('0020')], // MTU 32 < 68
      [53, hex('09')], // unknown message type
    ] as const) {
      const r = decode(Buffer.concat([body, Buffer.of(code, data.length), data, Buffer.of(255)]));
      assert.ok(r.ok, `option ${code}`);
      assert.equal(r.warnings.length, 1, `option ${code}`);
      assert.equal(r.message.options.serverId, '192.0.2.1');
    }
  });

  test('structural damage is an error value', () => {
    const good = encode(ack());
    assert.equal(decode(good.subarray(0, 239)).ok, false, 'shorter than the fixed part + cookie');
    const badCookie = Buffer.from(good);
    badCookie[238] = 0;
    assert.equal(decode(badCookie).ok, false, 'cookie');
    const badOp = Buffer.from(good);
    badOp[0] = 3;
    assert.equal(decode(badOp).ok, false, 'op');
    const badHlen = Buffer.from(good);
    badHlen[2] = 17;
    assert.equal(decode(badHlen).ok, false, 'hlen');
    const truncated = Buffer.concat([good.subarray(0, 240), hex('35 01 05 33 04 00 00')]);
    const r = decode(truncated);
    assert.equal(r.ok, false, 'truncated option');
    // no END option but options that fit exactly: accepted
    assert.equal(decode(Buffer.concat([good.subarray(0, 240), hex('35 01 05')])).ok, true);
  });

  test('masks', () => {
    assert.equal(maskToPrefixLen('255.255.255.0'), 24);
    assert.equal(maskToPrefixLen('255.255.255.255'), 32);
    assert.equal(maskToPrefixLen('0.0.0.0'), 0);
    assert.equal(maskToPrefixLen('255.0.255.0'), undefined);
  });
});

describe('garbage never throws (property)', () => {
  const seed = seedFromEnv();
  const rnd = new Random(seed);
  const samples = [encode(ack()), encode(discover())];

  test(`random bytes, truncations, bit flips (seed ${seed})`, () => {
    const mutate = (b: Buffer): Buffer => {
      const x = Buffer.from(b);
      const n = rnd.int(1, 12);
      for (let i = 0; i < n; i++) x[rnd.int(0, x.length - 1)] = rnd.int(0, 255);
      return x;
    };
    const check = (b: Uint8Array, what: string): void => {
      try {
        const r = decode(b);
        if (r.ok) encode(r.message); // what decodes must also be representable
        parseIpv4Udp(b);
      } catch (e) {
        assert.fail(`${what} threw (TEST_SEED=${seed}): ${e instanceof Error ? e.stack : e}\n${Buffer.from(b).toString('hex')}`);
      }
    };
    for (let i = 0; i < 3000; i++) {
      const len = rnd.chance(0.5) ? rnd.int(0, 600) : rnd.int(236, 260);
      const b = Buffer.alloc(len);
      for (let j = 0; j < len; j++) b[j] = rnd.int(0, 255);
      // half of them with a valid cookie, so the option parser gets exercised
      if (len >= 240 && rnd.chance(0.5)) b.writeUInt32BE(0x63825363, 236);
      if (len >= 1 && rnd.chance(0.5)) b[0] = 2;
      if (len >= 3 && rnd.chance(0.5)) b[2] = 6;
      check(b, 'random');
    }
    for (const s of samples) {
      for (let len = 0; len <= s.length; len++) check(s.subarray(0, len), `truncation at ${len}`);
      for (let i = 0; i < 3000; i++) check(mutate(s), 'mutation');
    }
    const frame = buildIpv4Udp({ src: '192.0.2.1', dst: '255.255.255.255', srcPort: 67, dstPort: 68, payload: samples[0]! });
    for (let len = 0; len <= frame.length; len++) check(frame.subarray(0, len), `frame truncation at ${len}`);
    for (let i = 0; i < 2000; i++) check(mutate(frame), 'frame mutation');
  });
});

describe('IPv4/UDP frames', () => {
  test('header golden bytes and checksums', () => {
    const payload = Buffer.alloc(300);
    const f = buildIpv4Udp({ src: '0.0.0.0', dst: '255.255.255.255', srcPort: 68, dstPort: 67, payload });
    // 45 c0 0148 0000 0000 40 11 <sum> 00000000 ffffffff: sum worked out by hand = 0x78e6
    assert.deepEqual(f.subarray(0, 20), hex('45c0 0148 0000 0000 4011 78e6 00000000 ffffffff'));
    assert.deepEqual(f.subarray(20, 26), hex('0044 0043 0134'));
    const r = parseIpv4Udp(f);
    assert.ok(r.ok);
    assert.deepEqual(r.datagram, { src: '0.0.0.0', dst: '255.255.255.255', srcPort: 68, dstPort: 67, payload });
  });

  test('a damaged frame is refused; an offloaded (partial) checksum is accepted', () => {
    const payload = encode(ack());
    const f = buildIpv4Udp({ src: '192.0.2.1', dst: '255.255.255.255', srcPort: 67, dstPort: 68, payload });
    const flipped = Buffer.from(f);
    flipped[100] = (flipped[100] ?? 0) ^ 1;
    assert.deepEqual(parseIpv4Udp(flipped), { ok: false, error: 'bad UDP checksum' });
    const badIp = Buffer.from(f);
    badIp[8] = 1;
    assert.deepEqual(parseIpv4Udp(badIp), { ok: false, error: 'bad IP header checksum' });
    // CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum only
    let pseudo = 0xc000 + 0x0201 + 0xffff + 0xffff + 17 + (8 + payload.length);
    while (pseudo > 0xffff) pseudo = (pseudo & 0xffff) + (pseudo >>> 16);
    const partial = Buffer.from(f);
    partial.writeUInt16BE(pseudo, 26);
    assert.equal(parseIpv4Udp(partial).ok, true);
    const none = Buffer.from(f);
    none.writeUInt16BE(0, 26);
    assert.equal(parseIpv4Udp(none).ok, true, 'UDP checksum 0 = none');
    const frag = buildIpv4Udp({ src: '192.0.2.1', dst: '255.255.255.255', srcPort: 67, dstPort: 68, payload });
    frag.writeUInt16BE(0x2000, 6);
    frag.writeUInt16BE(0, 10);
    let s = 0;
    for (let i = 0; i < 20; i += 2) s += frag.readUInt16BE(i);
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    frag.writeUInt16BE(~s & 0xffff, 10);
    assert.deepEqual(parseIpv4Udp(frag), { ok: false, error: 'fragment' });
  });
});
