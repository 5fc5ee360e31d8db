// The router table without a network: lifetimes, removal, preference order, expiry, and a
// random walk against a naive model.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Preference } from '../../../src/bearers/ipv6/ra.ts';
import { type RouterObservation, RouterTable } from '../../../src/bearers/ipv6/router-table.ts';
import { Random, seedFromEnv } from '../../helpers/random.ts';

const obs = (ifindex: number, router: string, lifetime: number, receivedAt: number, preference: Preference = 'medium'): RouterObservation => ({
  ifindex,
  router,
  lifetime,
  preference,
  receivedAt,
});

test('routers come and go with their lifetime, per interface', () => {
  let t = RouterTable.empty;
  t = t.observe(obs(2, 'fe80::1', 1800, 0)).observe(obs(3, 'fe80::2', 10, 500));
  assert.deepEqual(
    t.defaultRouters(2, 1000).map((r) => r.router),
    ['fe80::1'],
  );
  assert.equal(t.defaultRouter(3, 1000)?.router, 'fe80::2');
  assert.equal(t.nextExpiry(), 10_500);
  // past its lifetime a router is no default router, even before expire() drops it
  assert.equal(t.defaultRouter(3, 10_500), undefined);
  assert.equal(t.size, 2);
  t = t.expire(10_500);
  assert.equal(t.size, 1);
  assert.equal(t.nextExpiry(), 1_800_000);
  // a refresh extends; lifetime 0 removes at once
  t = t.observe(obs(2, 'fe80::1', 1800, 60_000));
  assert.equal(t.nextExpiry(), 1_860_000);
  t = t.observe(obs(2, 'fe80::1', 0, 61_000));
  assert.equal(t.size, 0);
  assert.equal(t.nextExpiry(), undefined);
  // removing an unknown router changes nothing (same object)
  assert.equal(t.observe(obs(2, 'fe80::9', 0, 0)), t);
});

test('preference first, then the router we have known longest, then address', () => {
  let t = RouterTable.empty
    .observe(obs(2, 'fe80::b', 600, 0, 'medium'))
    .observe(obs(2, 'fe80::a', 600, 100, 'medium'))
    .observe(obs(2, 'fe80::c', 600, 200, 'low'));
  assert.deepEqual(
    t.defaultRouters(2, 300).map((r) => r.router),
    ['fe80::b', 'fe80::a', 'fe80::c'],
  );
  // refreshing b keeps its seniority; a high-preference newcomer goes first
  t = t.observe(obs(2, 'fe80::b', 600, 400)).observe(obs(2, 'fe80::d', 600, 500, 'high'));
  assert.deepEqual(
    t.defaultRouters(2, 600).map((r) => r.router),
    ['fe80::d', 'fe80::b', 'fe80::a', 'fe80::c'],
  );
  // preference follows the latest RA
  t = t.observe(obs(2, 'fe80::d', 600, 700, 'low'));
  assert.equal(t.defaultRouter(2, 800)?.router, 'fe80::b');
  // a router back after expiring is new again: loses its seniority
  t = t.observe(obs(2, 'fe80::b', 1, 1000)).observe(obs(2, 'fe80::b', 600, 5000));
  assert.deepEqual(
    t.defaultRouters(2, 5000).map((r) => r.router),
    ['fe80::a', 'fe80::b', 'fe80::c', 'fe80::d'],
  );
  assert.deepEqual(t.withoutInterface(2).size, 0);
  assert.equal(t.withoutInterface(7), t);
});

test('random walk agrees with a naive model', () => {
  const seed = seedFromEnv();
  const rnd = new Random(seed);
  let t = RouterTable.empty;
  const model = new Map<string, { ifindex: number; expiresAt: number }>();
  let now = 0;
  for (let i = 0; i < 3000; i++) {
    now += rnd.int(0, 5000);
    const ifindex = rnd.int(1, 3);
    const router = `fe80::${rnd.int(1, 4)}`;
    const lifetime = rnd.chance(0.2) ? 0 : rnd.int(1, 20);
    t = t.observe(obs(ifindex, router, lifetime, now, rnd.pick(['high', 'medium', 'low'] as const)));
    const k = `${ifindex}%${router}`;
    if (lifetime === 0) model.delete(k);
    else model.set(k, { ifindex, expiresAt: now + lifetime * 1000 });
    if (rnd.chance(0.3)) {
      t = t.expire(now);
      for (const [mk, v] of model) if (v.expiresAt <= now) model.delete(mk);
      assert.equal(t.size, model.size, `seed ${seed}`);
    }
    for (let j = 1; j <= 3; j++) {
      const want = [...model.values()].filter((v) => v.ifindex === j && v.expiresAt > now).length;
      assert.equal(t.defaultRouters(j, now).length, want, `seed ${seed} step ${i}`);
    }
    const next = [...model.values()].reduce<number | undefined>((m, v) => (m === undefined || v.expiresAt < m ? v.expiresAt : m), undefined);
    if (t.size === model.size) assert.equal(t.nextExpiry(), next, `seed ${seed}`);
  }
});
