// The kernel state sessions need (pure). Sessions use the tables of their services; what
// is per session is how traffic finds that table:
//  - SessionMarker: a socket with SO_MARK = marker is routed by a rule for that marker to
//    its service's block, which looks up the service's table while the session may use it
//    and is `unreachable` otherwise (fail closed). The rule is consulted at connect(), so the
//    source address is the service's own: no NAT needed.
//  - uid policies: `uidrange` rules, straight to the table or `unreachable`.
//  - A ConnMan client's session (routedByOwnRules: no marker reported, no policy that routes)
//    has no rule at all: nobody outside the daemon knows its marker.
// The kernel scans rules linearly, so marker rules sit in blocks of 64, blocks in groups of
// 16 (1,024 markers), each behind one `goto`, and unmarked traffic jumps over all of them
// with one rule:
//   B+100  not fwmark SESSION/SESSION goto B+901                      unmarked: skip
//   B+110  fwmark SESSION|grp<<10 / ~1023 goto B+120+2grp             one per group in use
//   B+111  fwmark SESSION/SESSION goto B+641                          a group not in use
//   B+120+2grp  fwmark SESSION|blk<<6 / ~63 goto B+201+blk            one per block in use
//   B+121+2grp  fwmark SESSION/SESSION goto B+641                     a block not in use
//   B+201+blk  fwmark <marker> goto <service block> | unreachable    one per session that has one
//   B+641  fwmark SESSION/SESSION unreachable                        unknown or stale marker
//   B+644+6k   fwmark SESSION/SESSION nop                            goto target, always there
//   B+645+6k   fwmark SESSION/SESSION lookup <table of service k>    while it is ready or online
//   B+646+6k   fwmark SESSION/SESSION unreachable
//   B+647+6k .. B+649+6k   the same for sessions that want internet: lookup while it is online
//   B+900  fwmark SESSION/SESSION unreachable                        (the same, for services past 40)
//   B+901  nop                                                       (goto target)
//   B+920  uidrange U-U lookup <table> | unreachable                 uid policies
//   B+950  from <service address> lookup <service table>           (routing.ts)
// A session keeps pointing at its service's block while that service is lost (routeVia), so
// an uplink that goes down or comes back changes its block's four rules, not one rule per
// session; a session's own rule changes only when it moves to another service.
// Session decisions come before the source-address rules on purpose: when an IPv6 lookup
// fails, the kernel picks a source address and looks up again (ip6_dst_lookup_tail), and
// a source rule would then let fail-closed traffic out after all.
// A lookup visits at most 1 + 28 groups + 1 + 16 blocks + 1 + 64 + 4 rules (10,000 sessions:
// about 40 on average, 180 with one level of blocks only); unmarked traffic only 1 more than
// without sessions. (A marker nobody has in a block in use still runs through the later
// blocks' marker rules to B+641.)
import { AF_INET, AF_INET6, type Family, FR_ACT_GOTO, FR_ACT_NOP, FR_ACT_TO_TBL, FR_ACT_UNREACHABLE } from '../kernel/netlink/constants.ts';
import { type RuleSpec, normalizeRule, ruleKey } from '../kernel/rtnetlink/rule.ts';
import type { Rule } from '../kernel/rtnetlink/types.ts';
import { attachable, effectiveType } from './sessions.ts';
import type { NftTableModel } from '../kernel/nft/model.ts';
import type { Session, SessionsState } from './session-types.ts';
import type { EngineState, Service } from './types.ts';

export const SESSION_BIT = 0x40000000;
export const SLOTS_PER_BLOCK = 64;
export const MAX_BLOCKS = 440;
/** blocks per group (so a group is 2^10 markers) */
const BLOCKS_PER_GROUP = 16;
const groupOf = (block: number): number => Math.floor(block / BLOCKS_PER_GROUP);
/** services (by table index) that get a block; sessions of others have direct rules */
export const SERVICE_BLOCKS = 40;
const LEAF_CATCH = 641;
const SERVICE_BLOCK_FIRST = 644;
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
  if (!s.serviceId || s.detached) return undefined;
  const svc = engine.services.get(s.serviceId);
  return svc && attachable(s, svc) ? svc.settings.table : undefined;
}

/** The index of a service's block, if it has one (its table's place among ours). */
function blockIndex(engine: EngineState, svc: Service): number | undefined {
  const k = svc.settings.table - engine.config.tables.min;
  return k >= 0 && k < SERVICE_BLOCKS ? k : undefined;
}

/**
 * What of the services the sessions' rules are made from (every function here that reads a
 * service reads only these: its id, table and state, and where our tables start): for the
 * same sessions, two engine states with the same string have the same rules. A router
 * advertisement or an online check's timing changes a service's record but not this.
 */
export function sessionRoutingInputs(engine: EngineState): string {
  let out = String(engine.config.tables.min);
  for (const svc of engine.services.values()) out += `|${svc.id} ${svc.settings.table} ${svc.state}`;
  return out;
}

/** The service whose block is k. */
function serviceOfBlock(engine: EngineState, k: number): Service | undefined {
  for (const svc of engine.services.values()) if (blockIndex(engine, svc) === k) return svc;
  return undefined;
}

/** Where a session's marker rule sends its traffic: a service block (priority), a table, or nowhere. */
function leafTarget(engine: EngineState, s: Session, base: number): { goto: number } | { table: number } | undefined {
  if (s.detached) return undefined;
  const via = s.serviceId ?? s.routeVia;
  const svc = via === undefined ? undefined : engine.services.get(via);
  if (!svc) return undefined;
  const k = blockIndex(engine, svc);
  if (k === undefined) {
    const t = targetTable(engine, s);
    return t === undefined ? undefined : { table: t };
  }
  return { goto: base + SERVICE_BLOCK_FIRST + 6 * k + (effectiveType(s) === 'internet' ? 3 : 0) };
}

/**
 * Sessions' own rules are most of the rules, and most of them stay as they are from one
 * reconcile to the next: the same rule objects are handed out again, so that what is derived
 * from them (the reconciler's keys) is not made again. A memo: the result is the same without it.
 */
const leafMemo = new Map<string, { marker: number; at: number; action: number; target: number; protocol: number; rule: Rule }>();

function leafRule(family: Family, at: number, marker: number, t: ReturnType<typeof leafTarget>, protocol: number): Rule {
  const action = t === undefined ? FR_ACT_UNREACHABLE : 'goto' in t ? FR_ACT_GOTO : FR_ACT_TO_TBL;
  const target = t === undefined ? 0 : 'goto' in t ? t.goto : t.table;
  const id = `${family}:${marker}`;
  const m = leafMemo.get(id);
  if (m && m.at === at && m.action === action && m.target === target && m.protocol === protocol) return m.rule;
  const spec: RuleSpec = { family, priority: at, protocol, fwmark: marker, action };
  if (action === FR_ACT_GOTO) spec.goto = target;
  if (action === FR_ACT_TO_TBL) spec.table = target;
  const rule = normalizeRule(spec);
  leafMemo.set(id, { marker, at, action, target, protocol, rule });
  return rule;
}

/** Forgets memoized rules of markers no session has. */
function pruneLeafMemo(sessions: SessionsState): void {
  if (leafMemo.size <= 2 * sessions.sessions.size + 128) return;
  const live = new Set<number>();
  for (const s of sessions.sessions.values()) live.add(s.marker);
  for (const [id, m] of leafMemo) if (!live.has(m.marker)) leafMemo.delete(id);
}

/** The goto of a block of 64 markers to its marker rules (in its group's place). */
function blockGotoRule(family: Family, blk: number, layout: SessionLayout): Rule {
  return normalizeRule({ family, priority: layout.base + 120 + 2 * groupOf(blk), protocol: layout.protocol, fwmark: markerOf(blk, 0), fwmask: ~(SLOTS_PER_BLOCK - 1) >>> 0, action: FR_ACT_GOTO, goto: layout.base + 201 + blk });
}

/** The goto of a group of 16 blocks to its blocks' gotos, and the catch behind them (a block of the group not in use). */
function groupRules(family: Family, grp: number, layout: SessionLayout): Rule[] {
  const B = layout.base;
  return [
    normalizeRule({ family, priority: B + 121 + 2 * grp, protocol: layout.protocol, fwmark: SESSION_BIT, fwmask: SESSION_BIT, action: FR_ACT_GOTO, goto: B + LEAF_CATCH }),
    normalizeRule({ family, priority: B + 110, protocol: layout.protocol, fwmark: markerOf(grp * BLOCKS_PER_GROUP, 0), fwmask: ~(BLOCKS_PER_GROUP * SLOTS_PER_BLOCK - 1) >>> 0, action: FR_ACT_GOTO, goto: B + 120 + 2 * grp }),
  ];
}

/** Groups with a block in use. */
function groupsOf(blocks: Iterable<number>): number[] {
  return [...new Set([...blocks].map(groupOf))].sort((a, b) => a - b);
}

/** Service block k: where marker rules of sessions on that service go. */
function serviceBlockRules(family: Family, k: number, svc: Service, layout: SessionLayout): Rule[] {
  // a goto needs a rule at its target (an unresolved one falls through): the nop is always there
  const at = layout.base + SERVICE_BLOCK_FIRST + 6 * k;
  const table = svc.settings.table;
  const r = (priority: number, extra: Partial<RuleSpec>): Rule => normalizeRule({ family, priority, protocol: layout.protocol, fwmark: SESSION_BIT, fwmask: SESSION_BIT, ...extra });
  const out = [r(at, { action: FR_ACT_NOP })];
  if (svc.state === 'ready' || svc.state === 'online') out.push(r(at + 1, { action: FR_ACT_TO_TBL, table }));
  out.push(r(at + 2, { action: FR_ACT_UNREACHABLE }), r(at + 3, { action: FR_ACT_NOP }));
  if (svc.state === 'online') out.push(r(at + 4, { action: FR_ACT_TO_TBL, table }));
  out.push(r(at + 5, { action: FR_ACT_UNREACHABLE }));
  return out;
}

/**
 * The rules for sessions. The skip, catch-all and nop rules stay even without sessions:
 * a marker nobody owns (a session that ended, one not routed yet) must fail closed too.
 */
export function sessionRules(sessions: SessionsState, engine: EngineState, layout: SessionLayout, index = indexSessionRules(sessions, engine, layout)): Rule[] {
  const B = layout.base;
  const out: Rule[] = [];
  const rule = (family: Family, priority: number, extra: Partial<RuleSpec>): void => {
    out.push(normalizeRule({ family, priority, protocol: layout.protocol, ...extra }));
  };
  const blocks = [...index.blocks.keys()].sort((a, b) => a - b);
  const serviceBlocks: [number, Service][] = [];
  for (const k of [...index.serviceBlocks.keys()].sort((a, b) => a - b)) {
    const svc = serviceOfBlock(engine, k);
    if (svc) serviceBlocks.push([k, svc]);
  }
  const sessionBit = { fwmark: SESSION_BIT, fwmask: SESSION_BIT };
  const groups = groupsOf(blocks);
  for (const [fi, family] of ([AF_INET, AF_INET6] as const).entries()) {
    // in the order a full plan adds them: a goto after its target (an unresolved one falls through)
    rule(family, B + LEAF_CATCH, { ...sessionBit, action: FR_ACT_UNREACHABLE });
    // each session's marker rules, as indexed: [IPv4, IPv6]
    for (const e of index.byMarker.values()) if (e.rules.length > 0) out.push(e.rules[fi] as Rule);
    for (const blk of blocks) out.push(blockGotoRule(family, blk, layout));
    for (const grp of groups) out.push(...groupRules(family, grp, layout));
    rule(family, B + 111, { ...sessionBit, action: FR_ACT_GOTO, goto: B + LEAF_CATCH });
    rule(family, B + 100, { fwmark: SESSION_BIT, fwmask: SESSION_BIT, invert: true, action: FR_ACT_GOTO, goto: B + 901 });
    for (const [k, svc] of serviceBlocks) out.push(...serviceBlockRules(family, k, svc, layout));
    rule(family, B + 900, { ...sessionBit, action: FR_ACT_UNREACHABLE });
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
 * What the kernel holds for sessions, per session, so that a session that comes, changes or
 * goes while everything else stays can be put in by its own rules alone (O(1), not a new
 * plan over every rule): its marker rules, and how many sessions use each marker block and
 * each service block (the rules shared by many sessions).
 */
export interface SessionRuleIndex {
  /** marker → the session as the rules were made for it, and its marker rules (IPv4, IPv6) */
  readonly byMarker: Map<number, { session: Session; rules: Rule[] }>;
  /** marker block → sessions in it */
  readonly blocks: Map<number, number>;
  /** service block index k → sessions whose marker rule goes to it */
  readonly serviceBlocks: Map<number, number>;
}

/** A session whose rules are its marker rules alone: no uid rule, nothing in nft. */
export function plainSession(s: Session): boolean {
  const m = s.policy?.match;
  return !s.request.emergencyCall && (m === undefined || (m.uid === undefined && m.gid === undefined && m.cgroup === undefined));
}

/**
 * Whether the kernel holds anything for this session alone. A ConnMan client's session (no
 * seed 001 key, so no SessionMarker reported; no uid/gid/cgroup policy; no emergency) has
 * nothing: nobody outside the daemon learns its marker, so a marker rule would only cost an
 * insert (linear in the rules, in the kernel) and a step in every lookup. Like ConnMan's, it
 * changes no kernel state, and it can be told of a change as soon as its services are in the
 * kernel. (Source-address rules belong to services.)
 */
export function routedByOwnRules(s: Session): boolean {
  return s.request.extended || !plainSession(s);
}

const serviceBlockOf = (t: ReturnType<typeof leafTarget>, base: number): number | undefined => (t && 'goto' in t ? Math.floor((t.goto - base - SERVICE_BLOCK_FIRST) / 6) : undefined);

const NO_RULES: { rules: Rule[]; k: undefined } = { rules: [], k: undefined };

function leafRules(engine: EngineState, s: Session, layout: SessionLayout): { rules: Rule[]; k: number | undefined } {
  if (!routedByOwnRules(s)) return NO_RULES;
  const t = leafTarget(engine, s, layout.base);
  const at = layout.base + 201 + blockOf(s.marker);
  return { rules: [leafRule(AF_INET, at, s.marker, t, layout.protocol), leafRule(AF_INET6, at, s.marker, t, layout.protocol)], k: serviceBlockOf(t, layout.base) };
}

/** Per session, what sessionRules() gives for these sessions (it is made from this). */
export function indexSessionRules(sessions: SessionsState, engine: EngineState, layout: SessionLayout): SessionRuleIndex {
  pruneLeafMemo(sessions);
  const index: SessionRuleIndex = { byMarker: new Map(), blocks: new Map(), serviceBlocks: new Map() };
  for (const s of sessions.sessions.values()) {
    const { rules, k } = leafRules(engine, s, layout);
    index.byMarker.set(s.marker, { session: s, rules });
    if (rules.length === 0) continue;
    const b = blockOf(s.marker);
    index.blocks.set(b, (index.blocks.get(b) ?? 0) + 1);
    if (k !== undefined) index.serviceBlocks.set(k, (index.serviceBlocks.get(k) ?? 0) + 1);
  }
  return index;
}

/**
 * The rule changes for sessions that changed (by path, as they are now) and sessions that
 * went, with the services as they were when the index was made: their marker rules, and the
 * rules of a marker block or service block they open or close. The index is brought up to
 * date. Undefined (and the index untouched) for a session that is not plain: then the whole
 * of sessionRules() is needed.
 */
export function sessionRuleDelta(
  index: SessionRuleIndex,
  engine: EngineState,
  layout: SessionLayout,
  changed: Iterable<Session>,
  removed: Iterable<Session>,
): { adds: Rule[]; dels: Rule[] } | undefined {
  const blocks = new Map<number, number>();
  const serviceBlocks = new Map<number, number>();
  const bump = (m: Map<number, number>, key: number | undefined, by: number): void => {
    if (key !== undefined) m.set(key, (m.get(key) ?? 0) + by);
  };
  const next = new Map<number, { session: Session; rules: Rule[] } | undefined>();
  const dels: Rule[] = [];
  const adds: Rule[] = [];
  const drop = (marker: number): boolean => {
    const old = next.has(marker) ? next.get(marker) : index.byMarker.get(marker);
    if (!old) return true;
    if (!plainSession(old.session)) return false;
    if (old.rules.length > 0) {
      bump(blocks, blockOf(marker), -1);
      bump(serviceBlocks, serviceBlockOf(leafTarget(engine, old.session, layout.base), layout.base), -1);
    }
    dels.push(...old.rules);
    next.set(marker, undefined);
    return true;
  };
  for (const r of removed) if (!drop(r.marker)) return undefined;
  for (const s of changed) {
    if (!plainSession(s)) return undefined;
    const old = next.has(s.marker) ? next.get(s.marker) : index.byMarker.get(s.marker);
    // a session that had a uid policy had more rules than these (and nft had it)
    if (old && !plainSession(old.session)) return undefined;
    const made = leafRules(engine, s, layout);
    if (old && old.rules[0] === made.rules[0] && old.rules[1] === made.rules[1]) {
      // the same rules (memoized objects): only the session as indexed changes
      next.set(s.marker, { session: s, rules: old.rules });
      continue;
    }
    if (!drop(s.marker)) return undefined;
    if (made.rules.length > 0) {
      bump(blocks, blockOf(s.marker), 1);
      bump(serviceBlocks, made.k, 1);
    }
    adds.push(...made.rules);
    next.set(s.marker, { session: s, rules: made.rules });
  }
  // the shared rules of a marker block or service block that gets its first session or
  // loses its last: targets come before the rules that go to them, and go after them
  const firstAdds: Rule[] = [];
  const lastAdds: Rule[] = [];
  const firstDels: Rule[] = [];
  const lastDels: Rule[] = [];
  const both = (f: (family: Family) => Rule[]): Rule[] => [...f(AF_INET), ...f(AF_INET6)];
  const touched = new Set<number>();
  for (const [b, d] of blocks) {
    const was = index.blocks.get(b) ?? 0;
    if (d === 0) continue;
    if (was === 0) lastAdds.push(...both((f) => [blockGotoRule(f, b, layout)]));
    else if (was + d === 0) firstDels.push(...both((f) => [blockGotoRule(f, b, layout)]));
    if ((was === 0) !== (was + d === 0)) touched.add(groupOf(b));
  }
  // a group whose first block opens or last block closes: its goto after the block's, and before it when it goes
  const inUse = (grp: number, counts: (blk: number) => number): boolean => {
    for (let blk = grp * BLOCKS_PER_GROUP; blk < (grp + 1) * BLOCKS_PER_GROUP; blk++) if (counts(blk) > 0) return true;
    return false;
  };
  for (const grp of touched) {
    const before = inUse(grp, (blk) => index.blocks.get(blk) ?? 0);
    const after = inUse(grp, (blk) => (index.blocks.get(blk) ?? 0) + (blocks.get(blk) ?? 0));
    if (!before && after) lastAdds.push(...both((f) => groupRules(f, grp, layout)));
    if (before && !after) firstDels.unshift(...both((f) => groupRules(f, grp, layout)));
  }
  for (const [k, d] of serviceBlocks) {
    const was = index.serviceBlocks.get(k) ?? 0;
    if (d === 0 || (was !== 0 && was + d !== 0)) continue;
    const svc = serviceOfBlock(engine, k);
    if (!svc) return undefined;
    const at = svc;
    if (was === 0) firstAdds.push(...both((f) => serviceBlockRules(f, k, at, layout)));
    else lastDels.push(...both((f) => serviceBlockRules(f, k, at, layout)));
  }
  const apply = (m: Map<number, number>, deltas: Map<number, number>): void => {
    for (const [key, d] of deltas) {
      const n = (m.get(key) ?? 0) + d;
      if (n === 0) m.delete(key);
      else m.set(key, n);
    }
  };
  apply(index.blocks, blocks);
  apply(index.serviceBlocks, serviceBlocks);
  for (const [m, e] of next) {
    if (e) index.byMarker.set(m, e);
    else index.byMarker.delete(m);
  }
  adds.unshift(...firstAdds);
  adds.push(...lastAdds);
  dels.unshift(...firstDels);
  dels.push(...lastDels);
  // (a rule that goes and comes again unchanged does neither)
  const addKeys = new Set(adds.map(ruleKey));
  const delKeys = new Set(dels.map(ruleKey));
  return { adds: adds.filter((r) => !delKeys.has(ruleKey(r))), dels: dels.filter((r) => !addKeys.has(ruleKey(r))) };
}

/** a marker's place in the order of allocation */
export const markerIndex = (marker: number): number => (marker & ~SESSION_BIT) >>> 0;

/**
 * The lowest free marker. A marker is reused only after it has been free for `quarantineMs`:
 * sockets of an ended session keep their mark, and meanwhile fail closed (B+900).
 */
export function allocateMarker(used: ReadonlySet<number>, freedAt: ReadonlyMap<number, number>, now: number, quarantineMs: number, from = 0): number | undefined {
  // `from`: the caller knows nothing below this index is free (a hint, to keep creation O(1))
  for (let i = Math.max(1, from); i < MAX_BLOCKS * SLOTS_PER_BLOCK; i++) {
    const m = markerOf(i >> 6, i & (SLOTS_PER_BLOCK - 1));
    if (used.has(m)) continue;
    const f = freedAt.get(m);
    if (f !== undefined && now - f < quarantineMs) continue;
    return m;
  }
  return undefined;
}

// ---- nftables: marking by group and cgroup, source NAT after re-routing, counters, emergency

/** The newest session of each key (the identity a policy matched on). */
function newestBy<K>(sessions: SessionsState, key: (s: Session) => K | undefined): Map<K, Session> {
  const out = new Map<K, Session>();
  for (const s of sessions.sessions.values()) {
    const k = key(s);
    if (k === undefined) continue;
    const cur = out.get(k);
    if (!cur || s.createdAt > cur.createdAt || (s.createdAt === cur.createdAt && s.marker > cur.marker)) out.set(k, s);
  }
  return out;
}

export interface SessionNftInput {
  /** our nft table */
  family: 'inet';
  name: string;
  /** marker of the session whose traffic alone may leave (emergency), if any */
  emergencyMarker?: number;
  /** interfaces of the services (uplinks), for the emergency filter */
  uplinks: string[];
  /** each connected service's addresses by interface, for source NAT of re-routed traffic */
  sources: { ifname: string; ipv4?: string; ipv6?: string }[];
  /**
   * The cgroups of cgroup policies (cgroupPolicyPaths) that exist now, with their ids (the
   * directory's inode). The shell looks: nft rejects a whole transaction that names a cgroup
   * that does not exist. A rule stores the id, so the id is part of the rule (a comment):
   * a cgroup removed and made again gets a new rule.
   */
  cgroups?: readonly { path: string; id: string }[];
  /**
   * The daemon's own cgroup: a cgroup policy that contains it marks nothing, since it would
   * send the daemon's DHCP and online checks through the session's uplink.
   */
  ownCgroup?: string;
}

/** A cgroup path nft can take in a quoted string (systemd's unit names fit; escapes like `\x2d` do not); not the root. */
const nftCgroupPath = (p: string): boolean => /^(\/[A-Za-z0-9_.@:+=,~-]+)+$/.test(p) && !p.split('/').some((x) => x === '.' || x === '..');

const cgroupContains = (outer: string, inner: string): boolean => inner === outer || inner.startsWith(`${outer}/`);

/**
 * The cgroups whose traffic sessions claim: the cgroup of each cgroup policy that has a
 * session, except the root (it holds everything, the daemon too) and names nft cannot take.
 */
export function cgroupPolicyPaths(sessions: SessionsState): string[] {
  return [...newestBy(sessions, (s) => s.policy?.match.cgroup).keys()].filter(nftCgroupPath).sort();
}

/**
 * Our nft table for sessions. gid and cgroup policies mark their processes' packets with the
 * session's marker in a `route` chain (the kernel routes the packet again), and since the
 * source address was chosen before, marked packets that leave an uplink with another address
 * get that uplink's address (SNAT). Sessions' traffic is counted per marker (IdleTimeout); a uid
 * policy's users' traffic under the marker of the session that routes them.
 * While an emergency session is connected, nothing but its marked traffic leaves through an
 * uplink (root's traffic excepted: the daemon's own DHCP and online checks, and the system's).
 *
 * Who wins when a packet fits several policies follows matchPolicy (uid > gid > cgroup, the
 * deepest cgroup first), because a packet is marked only while its mark is 0:
 *  - a socket with SO_MARK (an application that uses its session) keeps its own marker;
 *  - uid policies route by `uidrange` rules, which come after the marker rules in the rule
 *    band: so the uids of uid policies are never marked here (set policy_uids);
 *  - the gid rule comes before the cgroup rules, and deeper cgroups before their parents.
 * Each cgroup policy's newest session marks the sockets whose cgroup is that cgroup or
 * below it: `socket cgroupv2 level N "<path>"`, N being the depth of the path. One rule per
 * cgroup (there are few; a map would need one per level and cannot be diffed, since nft
 * shows its keys as ids).
 */
export function sessionNft(sessions: SessionsState, input: SessionNftInput): NftTableModel | undefined {
  // only a session whose marker or identity can be on a packet needs the table (a ConnMan
  // client's has no kernel state: its first session costs no nft run)
  let needed = false;
  for (const s of sessions.sessions.values()) {
    if (routedByOwnRules(s)) {
      needed = true;
      break;
    }
  }
  if (!needed) return undefined;
  const uidSessions = newestBy(sessions, (s) => s.policy?.match.uid);
  const uids = [...uidSessions.keys()].sort((a, b) => a - b);
  const gids = newestBy(sessions, (s) => s.policy?.match.gid);
  const cgroupSessions = newestBy(sessions, (s) => s.policy?.match.cgroup);
  const own = input.ownCgroup;
  const cgroups = (input.cgroups ?? [])
    .filter((c) => cgroupSessions.has(c.path) && nftCgroupPath(c.path) && /^\d+$/.test(c.id) && !(own !== undefined && cgroupContains(c.path, own)))
    .map((c) => ({ ...c, level: c.path.split('/').length - 1, marker: cgroupSessions.get(c.path)!.marker }))
    .sort((a, b) => b.level - a.level || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const session = `meta mark & 0x${SESSION_BIT.toString(16)} == 0x${SESSION_BIT.toString(16)}`;
  const unmarked = 'meta mark 0 meta skuid != @policy_uids';
  const output: string[] = [];
  if (gids.size > 0) output.push(`${unmarked} meta mark set meta skgid map @gid_marker`);
  for (const c of cgroups) {
    // the path as nft takes it: relative to the cgroup2 root
    output.push(`${unmarked} socket cgroupv2 level ${c.level} "${c.path.slice(1)}" meta mark set 0x${c.marker.toString(16)} comment "cgroup ${c.id}"`);
  }
  // Traffic is counted only while a session measures idleness by it (IdleTimeout): counting
  // costs every packet of every session a set update, and the ct mark the received side is
  // counted by puts every connection of the namespace through connection tracking. (The first
  // such session and the last one's end change the table: counters start again, which the
  // scheduler takes as made again.)
  let counting = false;
  for (const s of sessions.sessions.values()) if (s.request.idleTimeout > 0) counting = true;
  if (counting) {
    // the connection remembers its session: the received side is counted by it
    // counters per marker in dynamic sets: the packet path adds a session's element, so a new
    // session changes nothing here (no nft run before its first Update); the daemon removes the
    // elements of ended sessions (sessionCounterCleanup)
    output.push(`${session} ct mark set meta mark`, `${session} update @session_tx { meta mark counter }`);
    // a uid policy's users are routed unmarked (uidrange rules): their connections take the marker
    // of the session that routes them, so that their traffic counts for it too (IdleTimeout); one
    // rule, so an unmarked packet is looked up in the users' set once
    output.push('meta mark 0 meta skuid @policy_uids ct mark set meta skuid map @uid_marker update @session_tx { ct mark counter }');
  }
  // Marking by group or cgroup routes a packet again after its source address was chosen by
  // the default route: only such packets need source NAT (a socket with SO_MARK and a uid
  // policy's users are routed at connect(), with the uplink's own address), and without them
  // no connection of the namespace goes through NAT.
  const rerouted = gids.size > 0 || cgroups.length > 0;
  // the uplinks' addresses are map elements, not rule text: an address that comes or goes
  // changes elements, not the table (a new table would start the counters again)
  const snat4: (readonly [string, string])[] = [];
  const snat6: (readonly [string, string])[] = [];
  for (const s of input.sources) {
    if (!/^[A-Za-z0-9_.-]{1,15}$/.test(s.ifname)) continue;
    if (s.ipv4 && /^[0-9.]+$/.test(s.ipv4)) snat4.push([s.ifname, s.ipv4]);
    if (s.ipv6 && /^[0-9a-f:]+$/i.test(s.ipv6)) snat6.push([s.ifname, s.ipv6]);
  }
  // (a socket with SO_MARK already has the uplink's address: SNAT to the same address is a no-op)
  const nat = [`${session} snat ip to oifname map @snat4`, `${session} snat ip6 to oifname map @snat6`];
  // a hook costs every packet of the namespace: only chains with something to do
  const chains: NftTableModel['chains'][number][] = [];
  if (output.length > 0) chains.push({ name: 'session_route', base: { type: 'route', hook: 'output', priority: 'mangle' }, rules: output });
  if (counting) chains.push({ name: 'session_count_in', base: { type: 'filter', hook: 'input', priority: 'filter' }, rules: [`ct mark & 0x${SESSION_BIT.toString(16)} == 0x${SESSION_BIT.toString(16)} update @session_rx { ct mark counter }`] });
  if (rerouted) chains.push({ name: 'session_snat', base: { type: 'nat', hook: 'postrouting', priority: 'srcnat' }, rules: nat });
  if (input.emergencyMarker !== undefined) {
    const ifs = input.uplinks.filter((i) => /^[A-Za-z0-9_.-]{1,15}$/.test(i)).map((i) => `"${i}"`);
    // root (the daemon's own DHCP and checks, the system) and the emergency session's own user
    // (a uid policy routes it by uidrange, unmarked) still get out
    const exempt = new Set([0]);
    for (const s of sessions.sessions.values()) if (s.marker === input.emergencyMarker && s.policy?.match.uid !== undefined) exempt.add(s.policy.match.uid);
    const users = [...exempt].sort((a, b) => a - b).join(', ');
    if (ifs.length > 0) chains.push({ name: 'emergency', base: { type: 'filter', hook: 'output', priority: 'filter' }, rules: [`oifname { ${ifs.join(', ')} } meta skuid != { ${users} } meta mark != ${input.emergencyMarker} drop`] });
  }
  return {
    family: input.family,
    name: input.name,
    sets: [
      { name: 'session_tx', type: { type: 'mark' }, flags: ['dynamic'], elements: [] },
      { name: 'session_rx', type: { type: 'mark' }, flags: ['dynamic'], elements: [] },
      { name: 'policy_uids', type: { type: 'uid' }, elements: uids },
    ],
    maps: [
      { name: 'uid_marker', type: { type: 'uid : mark' }, elements: uids.map((u) => [u, (uidSessions.get(u) as Session).marker] as const) },
      { name: 'gid_marker', type: { type: 'gid : mark' }, elements: [...gids].sort((a, b) => a[0] - b[0]).map(([g, s]) => [g, s.marker] as const) },
      ...(rerouted
        ? [
            { name: 'snat4', type: { type: 'ifname : ipv4_addr' }, elements: snat4.sort((a, b) => (a[0] < b[0] ? -1 : 1)) },
            { name: 'snat6', type: { type: 'ifname : ipv6_addr' }, elements: snat6.sort((a, b) => (a[0] < b[0] ? -1 : 1)) },
          ]
        : []),
    ],
    counters: [],
    chains,
  };
}

/**
 * The nft script that removes ended sessions' counters (their markers are reused later). An
 * element exists only once its session had traffic, and deleting a missing one fails the
 * transaction: so each is added (a no-op when present) and deleted in the same transaction.
 */
export function sessionCounterCleanup(family: string, table: string, markers: readonly number[]): string | undefined {
  if (markers.length === 0) return undefined;
  const list = [...markers].sort((a, b) => a - b).map((m) => `0x${m.toString(16)}`).join(', ');
  const lines: string[] = [];
  for (const set of ['session_tx', 'session_rx']) lines.push(`add element ${family} ${table} ${set} { ${list} }`, `delete element ${family} ${table} ${set} { ${list} }`);
  return `${lines.join('\n')}\n`;
}

/** Whether a session table counts traffic (only while a session has an IdleTimeout). */
export function nftCounts(m: NftTableModel | undefined): boolean {
  return m?.chains.some((c) => c.name === 'session_count_in') ?? false;
}

/**
 * Whether a session table changes where traffic goes (marking by group or cgroup, the
 * emergency filter), as opposed to only counting it: a table that only counts can be
 * applied after the sessions were told, off the path of their first Update.
 */
export function nftRoutes(m: NftTableModel | undefined): boolean {
  if (!m) return false;
  if (m.chains.some((c) => c.name === 'emergency')) return true;
  if (m.maps.some((x) => x.name === 'gid_marker' && x.elements.length > 0)) return true;
  return m.chains.some((c) => c.rules.some((r) => r.includes('socket cgroupv2')));
}
