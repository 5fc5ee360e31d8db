// The kernel state sessions need (pure). Sessions use the tables of their services; what
// is per session is how traffic finds that table:
//  - SessionMarker: a socket with SO_MARK = marker is routed by a rule for that marker,
//    to its service's table, or `unreachable` when it has none (fail closed). The rule is
//    consulted at connect(), so the source address is the service's own: no NAT needed.
//  - uid policies: `uidrange` rules, same targets (ConnMan: newest session of the identity).
// The kernel scans rules linearly, so marker rules sit in blocks of 64 behind one `goto`
// per block, and unmarked traffic jumps over all of them with one rule:
//   B+100  not fwmark SESSION/SESSION goto B+901                      unmarked: skip
//   B+200  fwmark SESSION|blk<<6 / ~63 goto B+201+blk                 one per block in use
//   B+201+blk  fwmark <marker> lookup <table> | unreachable          one per session
//   B+900  fwmark SESSION/SESSION unreachable                        unknown or stale marker
//   B+901  nop                                                       (goto target)
//   B+920  uidrange U-U lookup <table> | unreachable                 uid policies
//   B+950  from <service address> lookup <service table>           (routing.ts)
// Session decisions come before the source-address rules on purpose: when an IPv6 lookup
// fails, the kernel picks a source address and looks up again (ip6_dst_lookup_tail), and
// a source rule would then let fail-closed traffic out after all.
// A lookup visits at most 1 + blocks + 64 rules; unmarked traffic only 1 more than without sessions.
import { AF_INET, AF_INET6, type Family, FR_ACT_GOTO, FR_ACT_NOP, FR_ACT_TO_TBL, FR_ACT_UNREACHABLE } from '../kernel/netlink/constants.ts';
import { type RuleSpec, normalizeRule } from '../kernel/rtnetlink/rule.ts';
import type { Rule } from '../kernel/rtnetlink/types.ts';
import { attachable } from './sessions.ts';
import type { Session, SessionsState } from './session-types.ts';
import type { EngineState } from './types.ts';

export const SESSION_BIT = 0x40000000;
export const SLOTS_PER_BLOCK = 64;
export const MAX_BLOCKS = 699;
export const MAX_SESSIONS = SLOTS_PER_BLOCK * MAX_BLOCKS;

export const markerOf = (block: number, slot: number): number => (SESSION_BIT | (block << 6) | slot) >>> 0;
export const blockOf = (marker: number): number => (marker & ~SESSION_BIT) >>> 6;

export interface SessionLayout {
  protocol: number;
  /** B: the start of our rule band */
  base: number;
}

/** The table a session's traffic goes to, or undefined for unreachable. */
function targetTable(engine: EngineState, s: Session): number | undefined {
  if (!s.serviceId) return undefined;
  const svc = engine.services.get(s.serviceId);
  return svc && attachable(s, svc) ? svc.settings.table : undefined;
}

export function sessionRules(sessions: SessionsState, engine: EngineState, layout: SessionLayout): Rule[] {
  if (sessions.sessions.size === 0) return [];
  const B = layout.base;
  const out: Rule[] = [];
  const rule = (family: Family, priority: number, extra: Partial<RuleSpec>): void => {
    out.push(normalizeRule({ family, priority, protocol: layout.protocol, ...extra }));
  };
  const blocks = new Set<number>();
  for (const s of sessions.sessions.values()) blocks.add(blockOf(s.marker));
  for (const family of [AF_INET, AF_INET6] as const) {
    rule(family, B + 100, { fwmark: SESSION_BIT, fwmask: SESSION_BIT, invert: true, action: FR_ACT_GOTO, goto: B + 901 });
    for (const blk of [...blocks].sort((a, b) => a - b)) {
      rule(family, B + 200, { fwmark: markerOf(blk, 0), fwmask: ~(SLOTS_PER_BLOCK - 1) >>> 0, action: FR_ACT_GOTO, goto: B + 201 + blk });
    }
    for (const s of sessions.sessions.values()) {
      const t = targetTable(engine, s);
      rule(family, B + 201 + blockOf(s.marker), t === undefined ? { fwmark: s.marker, action: FR_ACT_UNREACHABLE } : { fwmark: s.marker, action: FR_ACT_TO_TBL, table: t });
    }
    rule(family, B + 900, { fwmark: SESSION_BIT, fwmask: SESSION_BIT, action: FR_ACT_UNREACHABLE });
    rule(family, B + 901, { action: FR_ACT_NOP });
    // uid policies: the newest session of each uid routes that uid's unmarked traffic
    const newest = new Map<number, Session>();
    for (const s of sessions.sessions.values()) {
      const uid = s.policy?.match.uid;
      if (uid === undefined) continue;
      const cur = newest.get(uid);
      if (!cur || s.createdAt > cur.createdAt || (s.createdAt === cur.createdAt && s.marker > cur.marker)) newest.set(uid, s);
    }
    for (const [uid, s] of [...newest].sort((a, b) => a[0] - b[0])) {
      const t = targetTable(engine, s);
      rule(family, B + 920, t === undefined ? { uidRange: { start: uid, end: uid }, action: FR_ACT_UNREACHABLE } : { uidRange: { start: uid, end: uid }, action: FR_ACT_TO_TBL, table: t });
    }
  }
  return out;
}

/**
 * The lowest free marker. A marker is reused only after it has been free for `quarantineMs`:
 * sockets of an ended session keep their mark, and meanwhile fail closed (B+900).
 */
export function allocateMarker(used: ReadonlySet<number>, freedAt: ReadonlyMap<number, number>, now: number, quarantineMs: number): number | undefined {
  for (let blk = 0; blk < MAX_BLOCKS; blk++) {
    for (let slot = blk === 0 ? 1 : 0; slot < SLOTS_PER_BLOCK; slot++) {
      const m = markerOf(blk, slot);
      if (used.has(m)) continue;
      const f = freedAt.get(m);
      if (f !== undefined && now - f < quarantineMs) continue;
      return m;
    }
  }
  return undefined;
}
