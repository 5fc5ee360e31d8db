// The online check's decisions, pure: what an HTTP answer means, and when to check again.
//
// ConnMan's check (src/wispr.c) fetches http://ipv4.connman.net/online/status.html (ipv6.…
// for IPv6); its server answers 200 with the header `X-ConnMan-Status: online`. A captive
// portal intercepts the request: it redirects (3xx + Location) or serves its own 200 page
// without that header. We also take a 204 as online, so the generate_204-style endpoints
// (Android, Chromium) work as check URLs too.

export type OnlineResult = 'online' | 'portal' | 'failed';

export interface ProbeResponse {
  status: number;
  /** as node:http gives them: lower-case names */
  headers: Readonly<Record<string, string | readonly string[] | undefined>>;
}

export interface Classification {
  result: OnlineResult;
  /** for 'portal': where the user logs in */
  portalUrl?: string;
  /** for 'failed': why, in a few words */
  reason?: string;
}

export const CONNMAN_STATUS_HEADER = 'x-connman-status';

function header(res: ProbeResponse, name: string): string | undefined {
  const v = res.headers[name] ?? Object.entries(res.headers).find(([k]) => k.toLowerCase() === name)?.[1];
  if (v === undefined) return undefined;
  return typeof v === 'string' ? v : v[0];
}

/** An http(s) URL for the portal, resolved against the probe URL; undefined for anything else. */
function portalLocation(location: string, probeUrl: string): string | undefined {
  try {
    const u = new URL(location.trim(), probeUrl);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : undefined;
  } catch {
    return undefined;
  }
}

export function classifyResponse(res: ProbeResponse, probeUrl: string): Classification {
  const s = res.status;
  if (s === 204) return { result: 'online' };
  if (s === 200) {
    if (header(res, CONNMAN_STATUS_HEADER)?.trim().toLowerCase() === 'online') return { result: 'online' };
    // someone answered in place of the status server: a portal's own page
    return { result: 'portal', portalUrl: probeUrl };
  }
  if (s >= 300 && s < 400 && s !== 304) {
    const loc = header(res, 'location');
    if (loc === undefined) return { result: 'failed', reason: `redirect ${s} without Location` };
    // a redirect we cannot use still says "portal"; the probe URL is then the best login URL
    return { result: 'portal', portalUrl: portalLocation(loc, probeUrl) ?? probeUrl };
  }
  return { result: 'failed', reason: `HTTP ${s}` };
}

// ---- when to check again ------------------------------------------------------------

export interface ScheduleConfig {
  /** first retry after a failure, ms (default 1 s); doubles per failure */
  retryMinMs: number;
  /** cap of the retry delay, ms (default 300 s) */
  retryMaxMs: number;
  /** re-check interval while online, ms (default 300 s) */
  onlineIntervalMs: number;
}

export const DEFAULT_SCHEDULE: ScheduleConfig = { retryMinMs: 1000, retryMaxMs: 300_000, onlineIntervalMs: 300_000 };

/** Per service: when the next check is due. Times in ms on the caller's clock. */
export interface ScheduleState {
  /** consecutive checks that were not 'online' */
  failures: number;
  dueAt: number;
  last?: OnlineResult;
}

/** A new service (or one that just got its address): check at once. */
export function initialSchedule(now: number): ScheduleState {
  return { failures: 0, dueAt: now };
}

/** Delay before the next check after `failures` failures in a row (≥ 1): min·2^(n-1), capped. */
export function retryDelay(failures: number, cfg: ScheduleConfig = DEFAULT_SCHEDULE): number {
  // 2^30 × anything sensible is past any cap; bounding the exponent keeps it finite
  const exp = Math.min(Math.max(failures, 1) - 1, 30);
  return Math.min(cfg.retryMaxMs, cfg.retryMinMs * 2 ** exp);
}

/**
 * After a check finished at `now`. A portal counts as a failure here: the user may log in
 * any moment, so it is retried on the failure schedule, not the slow online one.
 */
export function afterCheck(state: ScheduleState, result: OnlineResult, now: number, cfg: ScheduleConfig = DEFAULT_SCHEDULE): ScheduleState {
  if (result === 'online') return { failures: 0, dueAt: now + cfg.onlineIntervalMs, last: result };
  const failures = state.failures + 1;
  return { failures, dueAt: now + retryDelay(failures, cfg), last: result };
}

/** The gateway or an address of the service changed: what we knew is void, check now. */
export function afterNetworkChange(state: ScheduleState, now: number): ScheduleState {
  const next: ScheduleState = { failures: 0, dueAt: now };
  if (state.last !== undefined) next.last = state.last;
  return next;
}
