// The online check's decisions without a network: HTTP answers → online/portal/failed, and
// the retry schedule.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  afterCheck,
  afterNetworkChange,
  classifyResponse,
  DEFAULT_SCHEDULE,
  initialSchedule,
  retryDelay,
  type ScheduleConfig,
} from '../../../src/bearers/online/classify.ts';

const PROBE = 'http://ipv4.connman.net/online/status.html';

test("ConnMan's status page and a 204 are online", () => {
  assert.deepEqual(classifyResponse({ status: 200, headers: { 'x-connman-status': 'online' } }, PROBE), { result: 'online' });
  assert.deepEqual(classifyResponse({ status: 200, headers: { 'X-ConnMan-Status': ' Online ' } }, PROBE), { result: 'online' });
  assert.deepEqual(classifyResponse({ status: 200, headers: { 'x-connman-status': ['online', 'x'] } }, PROBE), { result: 'online' });
  assert.deepEqual(classifyResponse({ status: 204, headers: {} }, PROBE), { result: 'online' });
});

test('portals: redirects with Location (resolved against the probe), or a 200 without the header', () => {
  assert.deepEqual(classifyResponse({ status: 302, headers: { location: 'http://198.18.0.1/login' } }, PROBE), {
    result: 'portal',
    portalUrl: 'http://198.18.0.1/login',
  });
  for (const status of [301, 303, 307, 308]) {
    assert.deepEqual(classifyResponse({ status, headers: { location: '/login?x=1' } }, PROBE), {
      result: 'portal',
      portalUrl: 'http://ipv4.connman.net/login?x=1',
    });
  }
  // a location we would not open still means portal; the probe URL is the login URL then
  assert.deepEqual(classifyResponse({ status: 302, headers: { location: 'javascript:alert(1)' } }, PROBE), { result: 'portal', portalUrl: PROBE });
  assert.deepEqual(classifyResponse({ status: 302, headers: { location: 'http://[bad' } }, PROBE), { result: 'portal', portalUrl: PROBE });
  assert.deepEqual(classifyResponse({ status: 200, headers: { 'content-type': 'text/html' } }, PROBE), { result: 'portal', portalUrl: PROBE });
  assert.deepEqual(classifyResponse({ status: 200, headers: { 'x-connman-status': 'offline' } }, PROBE), { result: 'portal', portalUrl: PROBE });
});

test('everything else fails', () => {
  for (const status of [0, 100, 201, 304, 400, 404, 500, 503]) {
    assert.equal(classifyResponse({ status, headers: { 'x-connman-status': 'online' } }, PROBE).result, 'failed', String(status));
  }
  assert.deepEqual(classifyResponse({ status: 302, headers: {} }, PROBE), { result: 'failed', reason: 'redirect 302 without Location' });
});

test('retry delay doubles from 1 s up to the cap', () => {
  assert.deepEqual(
    [1, 2, 3, 4, 5, 8, 9, 10, 100, 1e9].map((n) => retryDelay(n)),
    [1000, 2000, 4000, 8000, 16000, 128000, 256000, 300000, 300000, 300000],
  );
  const cfg: ScheduleConfig = { retryMinMs: 500, retryMaxMs: 3000, onlineIntervalMs: 60_000 };
  assert.deepEqual(
    [1, 2, 3, 4, 5].map((n) => retryDelay(n, cfg)),
    [500, 1000, 2000, 3000, 3000],
  );
});

test('schedule: failures back off, online waits the interval, a network change checks at once', () => {
  let s = initialSchedule(1000);
  assert.deepEqual(s, { failures: 0, dueAt: 1000 });
  const dues: number[] = [];
  let now = 1000;
  for (let i = 0; i < 5; i++) {
    s = afterCheck(s, i % 2 === 0 ? 'failed' : 'portal', now);
    dues.push(s.dueAt - now);
    now = s.dueAt;
  }
  assert.deepEqual(dues, [1000, 2000, 4000, 8000, 16000]);
  assert.equal(s.failures, 5);
  s = afterCheck(s, 'online', now);
  assert.deepEqual(s, { failures: 0, dueAt: now + DEFAULT_SCHEDULE.onlineIntervalMs, last: 'online' });
  s = afterCheck(s, 'failed', now + 10);
  assert.equal(s.dueAt, now + 10 + 1000);
  s = afterCheck(s, 'failed', now + 20);
  assert.equal(s.dueAt, now + 20 + 2000);
  s = afterNetworkChange(s, now + 30);
  assert.deepEqual(s, { failures: 0, dueAt: now + 30, last: 'failed' });
  assert.equal(afterCheck(s, 'failed', now + 40).dueAt, now + 40 + 1000);
});
