// The sessions' clocks: IdleTimeout (a service up only for sessions goes offline after their
// longest IdleTimeout without traffic) and PeriodicConnect (attempts on period boundaries,
// shared by all sessions). Decisions are pure (src/engine/sessions.ts); this samples the
// per-session nft counters and keeps the two timers.
import { idleSessions, nextPeriodicAt, periodicDue } from '../engine/sessions.ts';
import type { EngineState } from '../engine/types.ts';
import type { Logger } from './log.ts';
import type { SessionHost } from './session-host.ts';

export interface SessionSchedulerHooks {
  host: SessionHost;
  engine(): EngineState;
  now(): number;
  /** packets seen so far per SessionMarker (sent + received), from the session counters */
  readCounters(): Promise<Map<number, number>>;
  log: Logger;
}

/** traffic is sampled at most this often, and at least every quarter of the shortest timeout */
const MIN_SAMPLE_MS = 1000;
const MAX_SAMPLE_MS = 30_000;

export class SessionScheduler {
  /** when each marker last had traffic (the sample in which its counters grew) */
  private readonly lastTraffic = new Map<number, number>();
  /** packets per marker at the last sample */
  private readonly seen = new Map<number, number>();
  private idleTimer: NodeJS.Timeout | undefined;
  private idleAt = Infinity;
  private periodicTimer: NodeJS.Timeout | undefined;
  private periodicAt = Infinity;
  private periodicFrom: number;
  private sampling = false;
  private failedAt = -Infinity;
  private closed = false;

  constructor(private readonly hooks: SessionSchedulerHooks) {
    this.periodicFrom = hooks.now();
  }

  /** The sessions or services changed: re-arm both clocks. */
  arm(): void {
    if (this.closed) return;
    const now = this.hooks.now();
    const st = this.hooks.host.askingState();
    this.forgetEnded();
    const v = idleSessions(st, this.hooks.engine(), this.lastTraffic, now);
    if (v.idle.length > 0) {
      // due already: decide on a fresh sample, not on an old one (after a failed one, not at once)
      this.setIdleTimer(Math.max(now, this.failedAt + MIN_SAMPLE_MS));
    } else if (v.nextCheckAt !== undefined && v.shortestMs !== undefined) {
      const sample = Math.min(MAX_SAMPLE_MS, Math.max(MIN_SAMPLE_MS, v.shortestMs / 4));
      this.setIdleTimer(Math.min(v.nextCheckAt, now + sample));
    } else this.clearIdleTimer();
    const p = nextPeriodicAt(st, now);
    if (p === undefined) {
      if (this.periodicTimer) clearTimeout(this.periodicTimer);
      this.periodicTimer = undefined;
      this.periodicAt = Infinity;
    } else if (p !== this.periodicAt) {
      if (this.periodicTimer) clearTimeout(this.periodicTimer);
      this.periodicAt = p;
      this.periodicTimer = setTimeout(() => this.periodic(), Math.max(0, p - now + 5));
      this.periodicTimer.unref();
    }
  }

  close(): void {
    this.closed = true;
    this.clearIdleTimer();
    if (this.periodicTimer) clearTimeout(this.periodicTimer);
  }

  private setIdleTimer(at: number): void {
    // an earlier check stays; a later one waits for it (it re-arms)
    if (this.idleTimer && this.idleAt <= at) return;
    this.clearIdleTimer();
    this.idleAt = at;
    this.idleTimer = setTimeout(() => void this.sample(), Math.max(0, at - this.hooks.now()));
    this.idleTimer.unref();
  }

  private clearIdleTimer(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    this.idleAt = Infinity;
  }

  private async sample(): Promise<void> {
    this.idleTimer = undefined;
    this.idleAt = Infinity;
    if (this.sampling || this.closed) return;
    this.sampling = true;
    try {
      const counters = await this.hooks.readCounters();
      const now = this.hooks.now();
      for (const [marker, packets] of counters) {
        // counters start at 0 with the session: any growth since the last sample is traffic;
        // one that went down was created again (our table was replaced) and counts anew
        const prev = this.seen.get(marker) ?? 0;
        if (packets > prev || (packets < prev && packets > 0)) this.lastTraffic.set(marker, now);
        this.seen.set(marker, packets);
      }
      // counters that vanished were made again (our table was replaced): what they had seen
      // since the last sample is unknown, so it counts as traffic (never idle too early)
      for (const marker of this.seen.keys()) {
        if (counters.has(marker) || this.seen.get(marker) === 0) continue;
        this.seen.set(marker, 0);
        this.lastTraffic.set(marker, now);
      }
      const v = idleSessions(this.hooks.host.askingState(), this.hooks.engine(), this.lastTraffic, now);
      if (v.idle.length > 0) {
        this.hooks.log.info(`sessions idle, their service may go: ${v.idle.join(' ')}`);
        this.hooks.host.goIdle(v.idle);
      }
    } catch (e) {
      this.failedAt = this.hooks.now();
      this.hooks.log.warn(`session counters not read: ${(e as Error).message}`);
    } finally {
      this.sampling = false;
    }
    this.arm();
  }

  private periodic(): void {
    this.periodicTimer = undefined;
    this.periodicAt = Infinity;
    const now = this.hooks.now();
    const due = periodicDue(this.hooks.host.askingState(), this.periodicFrom, now);
    this.periodicFrom = now;
    if (due.length > 0) {
      this.hooks.log.info(`periodic connection attempt for ${due.length} session(s)`);
      this.hooks.host.wake(due);
    }
    this.arm();
  }

  private forgetEnded(): void {
    if (this.seen.size === 0 && this.lastTraffic.size === 0) return;
    const host = this.hooks.host;
    for (const m of this.seen.keys()) if (!host.markerInUse(m)) this.seen.delete(m);
    for (const m of this.lastTraffic.keys()) if (!host.markerInUse(m)) this.lastTraffic.delete(m);
  }
}
