// A lease kept in a file across restarts: written and read back whole (an infinite lease
// too), and a record that is not a lease's (old, half-edited, hostile) is refused.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { leaseFromRecord, leaseToRecord } from '../../../src/bearers/dhcp/lease-record.ts';
import type { Lease } from '../../../src/bearers/dhcp/machine.ts';

const T0 = 1_700_000_000_000;
const LEASE: Lease = {
  address: '192.0.2.77',
  prefixLen: 24,
  router: '192.0.2.1',
  dns: ['192.0.2.53', '198.51.100.53'],
  domain: 'lab.example',
  searchDomains: ['lab.example', 'example.org'],
  mtu: 1400,
  ntp: ['192.0.2.123'],
  leaseSeconds: 3600,
  t1: 1800,
  t2: 3150,
  serverId: '192.0.2.1',
  acquiredAt: T0,
  renewAt: T0 + 1_800_000,
  rebindAt: T0 + 3_150_000,
  expiresAt: T0 + 3_600_000,
};

const viaJson = (l: Lease): Lease | undefined => leaseFromRecord(JSON.parse(JSON.stringify(leaseToRecord(l))));

describe('lease records', () => {
  test('a lease comes back as it was written, through JSON', () => {
    assert.deepEqual(viaJson(LEASE), LEASE);
    const { router: _r, domain: _d, mtu: _m, ...bare } = LEASE;
    assert.deepEqual(viaJson(bare), bare, 'without the optional fields');
  });

  test('an infinite lease: its times are null in the file and Infinity again when read', () => {
    const inf: Lease = { ...LEASE, leaseSeconds: Infinity, t1: Infinity, t2: Infinity, renewAt: Infinity, rebindAt: Infinity, expiresAt: Infinity };
    const rec = leaseToRecord(inf);
    assert.equal(rec.expiresAt, null);
    assert.deepEqual(viaJson(inf), inf);
  });

  test('a record that is not a lease is refused', () => {
    const rec = leaseToRecord(LEASE) as unknown as Record<string, unknown>;
    const bad: [string, unknown][] = [
      ['not an object', 'x'],
      ['an array', [rec]],
      ['null', null],
      ['loopback address', { ...rec, address: '127.0.0.1' }],
      ['not an address', { ...rec, address: '192.0.2.300' }],
      ['prefix 0', { ...rec, prefixLen: 0 }],
      ['prefix 33', { ...rec, prefixLen: 33 }],
      ['prefix not an integer', { ...rec, prefixLen: 24.5 }],
      ['router multicast', { ...rec, router: '224.0.0.1' }],
      ['no server', { ...rec, serverId: undefined }],
      ['dns not addresses', { ...rec, dns: ['example.org'] }],
      ['ntp not a list', { ...rec, ntp: '192.0.2.123' }],
      ['search domain with a space', { ...rec, searchDomains: ['a b'] }],
      ['domain not a name', { ...rec, domain: '..' }],
      ['mtu below 576', { ...rec, mtu: 100 }],
      ['lease 0 s', { ...rec, leaseSeconds: 0 }],
      ['negative time', { ...rec, renewAt: -1 }],
      ['time as a string', { ...rec, expiresAt: String(T0) }],
      ['no acquiredAt', { ...rec, acquiredAt: null }],
      ['expires before it renews', { ...rec, expiresAt: T0 + 1000 }],
      ['renews before it began', { ...rec, renewAt: T0 - 1 }],
      ['a thousand DNS servers', { ...rec, dns: Array.from({ length: 1000 }, () => '192.0.2.53') }],
    ];
    for (const [why, j] of bad) assert.equal(leaseFromRecord(j), undefined, why);
  });
});
