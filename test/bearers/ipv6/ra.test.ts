// Router Advertisement / Solicitation wire format, without a network: a hand-encoded RA,
// round trips through the test encoder, and fuzzing (random bytes, truncations, bit flips):
// the parser must never throw and never return nonsense.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  buildRouterAdvertisement,
  buildRouterSolicitation,
  INFINITE_LIFETIME,
  parseMac,
  parseRouterAdvertisement,
  type RouterAdvertisement,
} from '../../../src/bearers/ipv6/ra.ts';
import { Random, seedFromEnv } from '../../helpers/random.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// written byte by byte from RFC 4861 §4.2/§4.6, RFC 4191 §2.3, RFC 8106 §5
const SAMPLE = hex(`
  86 00 0000  40 c8 0708  00000000 00000000
  01 01 02005e005301
  05 01 0000 000005dc
  03 04 40 c0 00278d00 00093a80 00000000 20010db8000100000000000000000000
  18 02 30 18 00000e10 20010db8aa000000
  19 05 0000 00000e10 20010db8000100000000000000000035 20010db8000100000000000000000053
  1f 03 0000 00000e10 076578616d706c6503636f6d00 000000
`);

test('a hand-encoded RA parses into every field', () => {
  const ra = parseRouterAdvertisement(SAMPLE);
  assert.deepEqual(ra, {
    curHopLimit: 64,
    managed: true,
    other: true,
    homeAgent: false,
    proxy: false,
    preference: 'high',
    routerLifetime: 1800,
    reachableTime: 0,
    retransTimer: 0,
    sourceLinkLayer: '02:00:5e:00:53:01',
    mtu: 1500,
    prefixes: [{ prefix: '2001:db8:1::', length: 64, onLink: true, autonomous: true, validLifetime: 2592000, preferredLifetime: 604800 }],
    routes: [{ prefix: '2001:db8:aa00::', length: 48, preference: 'low', lifetime: 3600 }],
    rdnss: [
      { address: '2001:db8:1::35', lifetime: 3600 },
      { address: '2001:db8:1::53', lifetime: 3600 },
    ],
    dnssl: [{ domain: 'example.com', lifetime: 3600 }],
  } satisfies RouterAdvertisement);
});

test('RFC 4191 preferences: reserved counts as medium, lifetime 0 forces medium; reserved route option is dropped', () => {
  const withFlags = (flags: number, lifetime = 1800): Buffer => {
    const b = Buffer.from(SAMPLE.subarray(0, 16));
    b[5] = flags;
    b.writeUInt16BE(lifetime, 6);
    return b;
  };
  assert.equal(parseRouterAdvertisement(withFlags(0x08))?.preference, 'high');
  assert.equal(parseRouterAdvertisement(withFlags(0x00))?.preference, 'medium');
  assert.equal(parseRouterAdvertisement(withFlags(0x18))?.preference, 'low');
  assert.equal(parseRouterAdvertisement(withFlags(0x10))?.preference, 'medium');
  assert.equal(parseRouterAdvertisement(withFlags(0x18, 0))?.preference, 'medium');
  const route = Buffer.concat([SAMPLE.subarray(0, 16), hex('18 02 30 10 00000e10 20010db8aa000000')]);
  assert.deepEqual(parseRouterAdvertisement(route)?.routes, []);
});

test('framing errors drop the packet, bad option content only the option', () => {
  const head = SAMPLE.subarray(0, 16);
  // not an RA, wrong code, short header
  assert.equal(parseRouterAdvertisement(hex('85000000 00000000')), undefined);
  assert.equal(parseRouterAdvertisement(Buffer.concat([hex('8601'), head.subarray(2)])), undefined);
  assert.equal(parseRouterAdvertisement(head.subarray(0, 15)), undefined);
  // option length 0, option past the end, a lone option type byte
  assert.equal(parseRouterAdvertisement(Buffer.concat([head, hex('05 00 0000 000005dc')])), undefined);
  assert.equal(parseRouterAdvertisement(Buffer.concat([head, hex('05 02 0000 000005dc')])), undefined);
  assert.equal(parseRouterAdvertisement(Buffer.concat([head, hex('05')])), undefined);
  // wrong-size prefix/MTU/RDNSS options, prefix length 200, a DNSSL with a compression pointer or a bad label
  const skipped = parseRouterAdvertisement(
    Buffer.concat([
      head,
      hex('03 01 40c0 00000000'),
      hex('03 04 c8 c0 00278d00 00093a80 00000000 20010db8000100000000000000000000'),
      hex('05 02 0000 000005dc 0000000000000000'),
      hex('19 02 0000 00000e10 2001 0db8 0000 0000'),
      hex('1f 02 0000 00000e10 c00c000000000000'),
      hex('1f 02 0000 00000e10 03 612f62 00 000000'),
      hex('1f 02 0000 00000e10 03 616263 03 646566'),
      hex('fe 01 000000000000'),
    ]),
  );
  assert.ok(skipped);
  assert.deepEqual([skipped.prefixes, skipped.rdnss, skipped.dnssl, skipped.mtu], [[], [], [], undefined]);
});

test('round trip through the encoder, with infinite lifetimes and /0, /64, /128 routes', () => {
  const ra: RouterAdvertisement = {
    curHopLimit: 255,
    managed: false,
    other: true,
    homeAgent: true,
    proxy: true,
    preference: 'low',
    routerLifetime: 65535,
    reachableTime: 30000,
    retransTimer: 1000,
    sourceLinkLayer: 'aa:bb:cc:dd:ee:ff',
    mtu: 1280,
    prefixes: [
      { prefix: '2001:db8:2::', length: 64, onLink: true, autonomous: false, validLifetime: INFINITE_LIFETIME, preferredLifetime: INFINITE_LIFETIME },
      { prefix: '2001:db8:3::', length: 56, onLink: false, autonomous: true, validLifetime: 0, preferredLifetime: 0 },
    ],
    routes: [
      { prefix: '::', length: 0, preference: 'medium', lifetime: 60 },
      { prefix: '2001:db8:4::', length: 64, preference: 'high', lifetime: INFINITE_LIFETIME },
      { prefix: '2001:db8:5::1', length: 128, preference: 'low', lifetime: 0 },
    ],
    rdnss: [
      { address: '2001:db8::53', lifetime: 600 },
      { address: '2001:db8::54', lifetime: 0 },
    ],
    dnssl: [
      { domain: 'lab.example', lifetime: 600 },
      { domain: 'corp.example.org', lifetime: 600 },
    ],
  };
  assert.deepEqual(parseRouterAdvertisement(buildRouterAdvertisement(ra)), ra);
  assert.deepEqual(parseRouterAdvertisement(buildRouterAdvertisement({ routerLifetime: 0 })), {
    curHopLimit: 64,
    managed: false,
    other: false,
    homeAgent: false,
    proxy: false,
    preference: 'medium',
    routerLifetime: 0,
    reachableTime: 0,
    retransTimer: 0,
    prefixes: [],
    routes: [],
    rdnss: [],
    dnssl: [],
  });
});

test('router solicitation bytes, with and without source link-layer option', () => {
  assert.deepEqual(buildRouterSolicitation(), hex('85000000 00000000'));
  assert.deepEqual(buildRouterSolicitation('02:00:5E:00:53:0a'), hex('85000000 00000000 0101 02005e00530a'));
  assert.throws(() => buildRouterSolicitation('02:00:5e:00:53'), TypeError);
  assert.equal(parseMac('zz:00:00:00:00:00'), undefined);
});

function checkSane(ra: RouterAdvertisement): void {
  for (const p of ra.prefixes) assert.ok(p.length <= 128 && p.prefix.includes(':'));
  for (const r of ra.routes) assert.ok(r.length <= 128 && ['high', 'medium', 'low'].includes(r.preference));
  for (const d of ra.dnssl) assert.match(d.domain, /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/);
  for (const s of ra.rdnss) assert.ok(s.address.includes(':'));
}

test('fuzz: random bytes, truncations and bit flips never throw', () => {
  const seed = seedFromEnv();
  const rnd = new Random(seed);
  const valid = [SAMPLE, buildRouterAdvertisement({ mtu: 1500, rdnss: [{ address: '2001:db8::1', lifetime: 5 }], dnssl: [{ domain: 'a.b', lifetime: 5 }] })];
  let parsed = 0;
  try {
    for (let i = 0; i < 20000; i++) {
      let b: Buffer;
      const kind = rnd.int(0, 2);
      if (kind === 0) {
        b = Buffer.alloc(rnd.int(0, 200));
        for (let j = 0; j < b.length; j++) b[j] = rnd.int(0, 255);
        // often look like an RA, so the option parser gets exercised
        if (b.length > 1 && rnd.chance(0.8)) {
          b[0] = 134;
          b[1] = 0;
        }
      } else {
        const base = rnd.pick(valid);
        b = Buffer.from(kind === 1 ? base.subarray(0, rnd.int(0, base.length)) : base);
        for (let f = kind === 2 ? rnd.int(1, 6) : 0; f > 0; f--) {
          const at = rnd.int(0, b.length - 1);
          b[at] = (b[at] as number) ^ (1 << rnd.int(0, 7));
        }
      }
      const ra = parseRouterAdvertisement(b);
      if (ra) {
        parsed++;
        checkSane(ra);
      }
    }
  } catch (e) {
    assert.fail(`seed ${seed}: ${(e as Error).stack}`);
  }
  assert.ok(parsed > 1000, `only ${parsed} packets parsed (seed ${seed})`);
  // a truncation inside the options is a framing error, at an option boundary it is valid
  for (let n = 17; n < SAMPLE.length; n++) {
    const ra = parseRouterAdvertisement(SAMPLE.subarray(0, n));
    if (ra) checkSane(ra);
  }
  assert.equal(parseRouterAdvertisement(SAMPLE.subarray(0, 17)), undefined);
  assert.ok(parseRouterAdvertisement(SAMPLE.subarray(0, 24))?.sourceLinkLayer);
});
