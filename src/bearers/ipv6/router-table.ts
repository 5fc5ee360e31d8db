// The default routers learned from Router Advertisements, per interface (RFC 4861 §6.3.4,
// RFC 4191 §3.2). Pure and immutable: every change returns a new table, time is an input
// (milliseconds on whatever monotonic clock the caller uses), so the engine can keep it in
// its state and test expiry without waiting.
import type { Preference } from './ra.ts';

/** What one RA says about its sender as a default router. */
export interface RouterObservation {
  ifindex: number;
  /** link-local address of the router */
  router: string;
  /** router lifetime in seconds; 0 = no longer a default router */
  lifetime: number;
  preference: Preference;
  /** ms */
  receivedAt: number;
}

export interface DefaultRouter {
  ifindex: number;
  router: string;
  preference: Preference;
  /** ms; the router is gone at and after this time */
  expiresAt: number;
  /** ms; first RA of this router since it was last absent (tie-breaker: stay with the router we use) */
  since: number;
  /** ms */
  lastSeen: number;
}

const RANK: Record<Preference, number> = { high: 0, medium: 1, low: 2 };

const key = (ifindex: number, router: string): string => `${ifindex}%${router}`;

/** Preference first, then the longest-known router (no flapping between equals), then address for determinism. */
function order(a: DefaultRouter, b: DefaultRouter): number {
  return RANK[a.preference] - RANK[b.preference] || a.since - b.since || (a.router < b.router ? -1 : a.router > b.router ? 1 : 0);
}

export class RouterTable {
  static readonly empty = new RouterTable(new Map());

  private constructor(private readonly entries: ReadonlyMap<string, DefaultRouter>) {}

  get size(): number {
    return this.entries.size;
  }

  /** Applies one RA: adds or refreshes the router, or removes it when its lifetime is 0. */
  observe(o: RouterObservation): RouterTable {
    const k = key(o.ifindex, o.router);
    const old = this.entries.get(k);
    const next = new Map(this.entries);
    if (o.lifetime <= 0) {
      if (!old) return this;
      next.delete(k);
      return new RouterTable(next);
    }
    // an entry that had already expired counts as a new router
    const alive = old !== undefined && old.expiresAt > o.receivedAt;
    next.set(k, {
      ifindex: o.ifindex,
      router: o.router,
      preference: o.preference,
      expiresAt: o.receivedAt + o.lifetime * 1000,
      since: alive ? old.since : o.receivedAt,
      lastSeen: o.receivedAt,
    });
    return new RouterTable(next);
  }

  /** Drops every router whose lifetime has run out by `now`. */
  expire(now: number): RouterTable {
    let changed = false;
    const next = new Map<string, DefaultRouter>();
    for (const [k, r] of this.entries) {
      if (r.expiresAt > now) next.set(k, r);
      else changed = true;
    }
    return changed ? new RouterTable(next) : this;
  }

  /** Forgets an interface (it went away or down). */
  withoutInterface(ifindex: number): RouterTable {
    const next = new Map([...this.entries].filter(([, r]) => r.ifindex !== ifindex));
    return next.size === this.entries.size ? this : new RouterTable(next);
  }

  /** The live default routers of `ifindex` at `now`, best first. */
  defaultRouters(ifindex: number, now: number): DefaultRouter[] {
    return [...this.entries.values()].filter((r) => r.ifindex === ifindex && r.expiresAt > now).sort(order);
  }

  /** The best live default router of `ifindex` at `now`. */
  defaultRouter(ifindex: number, now: number): DefaultRouter | undefined {
    return this.defaultRouters(ifindex, now)[0];
  }

  /** Every entry (live or not yet expired by `expire`), best first per interface. */
  all(): DefaultRouter[] {
    return [...this.entries.values()].sort((a, b) => a.ifindex - b.ifindex || order(a, b));
  }

  /** When the next router expires (ms), to arm one timer; undefined when empty. */
  nextExpiry(): number | undefined {
    let min: number | undefined;
    for (const r of this.entries.values()) if (min === undefined || r.expiresAt < min) min = r.expiresAt;
    return min;
  }
}
