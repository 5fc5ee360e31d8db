// The pure part of the benchmark report (bench/report.ts runs the benches): parsing a bench's
// output, the performance goals of the earlier issues and their evaluation, the markdown of
// bench/REPORT.md, and the charts' data. No I/O here.
//
// A bench's output convention: a markdown table, notes, and as its last line one JSON object
// { bench, machine, figures: { "<label>": { netsession, connman? | ip? } }, … }. Labels name
// their unit in parentheses, e.g. "(ms)". Raw samples, when a bench has them, are found at
// known places (sessions: labA.<daemon>.replyMs…, core: three.<daemon>.upReadyMs…) or, for
// any bench, under `samples: { "<label> (unit)": { netsession?: number[], connman?: number[] } }`.
import { boxChart, type CdfSeries, COLORS, cdfChart, lineChart, type XYSeries } from './svg-chart.ts';

export type Daemon = 'netsession' | 'connman';
export type Verdict = 'met' | 'not met' | 'not measured';
type Json = Record<string, unknown>;

export interface Machine {
  cpus: number;
  model: string;
  kernel: string;
  node: string;
  connman: string;
  memGiB?: number;
  loadStart?: number[];
  loadEnd?: number[];
}

export interface BenchRun {
  /** kernel, core, sessions, faults (or any other name) */
  name: string;
  command: string;
  /** it ran (false: skipped, see error) */
  ran: boolean;
  exitCode: number | null;
  signal?: string | null;
  durationS: number;
  json: Json | undefined;
  /** stdout without the JSON line */
  text: string;
  error?: string;
  /** e.g. it waited for another run of the same bench to end */
  note?: string;
  /** environment the report set for it (quick sizes) */
  env?: Record<string, string>;
}

export interface SuiteRun {
  command: string;
  ran: boolean;
  exitCode: number | null;
  durationS: number;
  tests?: number;
  pass?: number;
  fail?: number;
  skipped?: number;
  /** names of the tests (and suites) that failed */
  failed?: string[];
  note?: string;
  env?: Record<string, string>;
}

export interface ReportInput {
  date: string;
  command: string;
  /** the commit measured, e.g. `8b4b1de` or `8b4b1de + uncommitted changes` */
  revision?: string;
  quick: boolean;
  machine: Machine;
  runs: BenchRun[];
  suite?: SuiteRun;
  /** where the raw outputs were kept */
  rawDir: string;
  totalS: number;
}

export interface FigureValue {
  netsession: number | null;
  /** ConnMan's, or for the kernel bench iproute2's */
  peer: number | null;
}

export interface Check {
  bench: string;
  figure: string;
  goal: string;
  verdict: Verdict;
  note?: string;
}

export interface GoalResult {
  id: string;
  issue: string;
  text: string;
  verdict: Verdict;
  checks: Check[];
  /** when there is nothing to check, or something beside the checks */
  note?: string;
}

// ---------------------------------------------------------------------------------------
// parsing

/** The last line of a bench's stdout that is a JSON object, and the text before it. */
export function splitOutput(stdout: string): { json: Json | undefined; text: string } {
  const lines = stdout.replace(/\s+$/, '').split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const l = (lines[i] as string).trim();
    if (l === '') continue;
    if (!l.startsWith('{')) break;
    try {
      const v: unknown = JSON.parse(l);
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
        return { json: v as Json, text: [...lines.slice(0, i), ...lines.slice(i + 1)].join('\n').replace(/\s+$/, '') };
      }
    } catch {
      // not JSON: no result line
    }
    break;
  }
  return { json: undefined, text: stdout.replace(/\s+$/, '') };
}

/** Counts of node's test runner summary (TAP `# pass 3` or spec `ℹ pass 3`), and the names of what failed (TAP). */
export function parseTestSummary(out: string): { tests?: number; pass?: number; fail?: number; skipped?: number; failed: string[] } {
  const get = (k: string): number | undefined => {
    const all = [...out.matchAll(new RegExp(`^(?:#|ℹ) ${k} (\\d+)\\s*$`, 'gm'))];
    const m = all[all.length - 1];
    return m ? Number(m[1]) : undefined;
  };
  const failed = [...out.matchAll(/^\s*not ok \d+ - (.+?)\s*$/gm)].map((m) => m[1] as string);
  return { tests: get('tests'), pass: get('pass'), fail: get('fail'), skipped: get('skipped'), failed };
}

const isObj = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const nums = (v: unknown): number[] => (Array.isArray(v) ? v.filter((x): x is number => typeof x === 'number' && Number.isFinite(x)) : []);
/** a value at a path of keys, or undefined */
export function at(v: unknown, ...path: string[]): unknown {
  let cur = v;
  for (const k of path) {
    if (!isObj(cur)) return undefined;
    cur = cur[k];
  }
  return cur;
}

/** A bench's figures: `figures` of the convention, or (older output) every top-level number as netsession's. */
export function figuresOf(run: BenchRun | undefined): Map<string, FigureValue> {
  const out = new Map<string, FigureValue>();
  const j = run?.json;
  if (j === undefined) return out;
  const figs = j.figures;
  if (isObj(figs)) {
    for (const [label, v] of Object.entries(figs)) {
      if (isObj(v)) out.set(label, { netsession: num(v.netsession), peer: num(v.connman ?? v.ip ?? v.reference) });
      else out.set(label, { netsession: num(v), peer: null });
    }
    return out;
  }
  for (const [k, v] of Object.entries(j)) if (typeof v === 'number') out.set(k, { netsession: v, peer: null });
  return out;
}

/** The reference a bench compares with. */
export function peerName(run: BenchRun | undefined): string {
  const figs = run?.json?.figures;
  if (isObj(figs) && Object.values(figs).some((v) => isObj(v) && 'ip' in v)) return 'ip (iproute2)';
  return 'ConnMan';
}

/** Milliseconds per unit of a label's "(unit" — undefined when the label names no time unit. */
export function msPerUnit(label: string): number | undefined {
  const m = /\((ms|s|µs|us|min)\b/.exec(label);
  if (!m) return undefined;
  return { ms: 1, s: 1000, µs: 0.001, us: 0.001, min: 60_000 }[m[1] as 'ms' | 's' | 'µs' | 'us' | 'min'];
}

/** The unit a label names in parentheses, e.g. 'ms' of "p99 (ms; …)", 'MiB' of "RSS (MiB)". */
export function unitOf(label: string): string {
  const m = /\(([^\s;,()]+)[;,)]/.exec(label);
  return m && /^(ms|s|µs|us|min|MiB|KiB|MB|GiB|%)$/.test(m[1] as string) ? (m[1] as string) : '';
}

const isYesNo = (label: string): boolean => /\bseen\b|\byes\/no\b/i.test(label);

export function fmtValue(label: string, v: number | null | undefined): string {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (isYesNo(label) && (v === 0 || v === 1)) return v === 1 ? 'yes' : 'no';
  const a = Math.abs(v);
  if (Number.isInteger(v)) return String(v);
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

/** 2 decimals; 2 significant digits below 0.1 (0.0038, not 0.00); – for none. */
export function fmtRatio(r: number | undefined): string {
  if (r === undefined || !Number.isFinite(r)) return '–';
  return r === 0 || r >= 0.1 ? r.toFixed(2) : r.toPrecision(2);
}

export function ratioOf(label: string, f: FigureValue): number | undefined {
  if (f.netsession === null || f.peer === null || f.peer <= 0 || isYesNo(label)) return undefined;
  return f.netsession / f.peer;
}

// ---------------------------------------------------------------------------------------
// goals

const GOAL_MIB = 200e6 / 2 ** 20;

function figure(input: ReportInput, bench: string, re: RegExp): [string, FigureValue][] {
  return [...figuresOf(runOf(input, bench)).entries()].filter(([l]) => re.test(l));
}

export function runOf(input: ReportInput, bench: string): BenchRun | undefined {
  return input.runs.find((r) => r.name === bench);
}

function missing(input: ReportInput, bench: string, goal: string, what: string): Check {
  const r = runOf(input, bench);
  const why = r === undefined ? `bench ${bench} not run` : !r.ran ? (r.error ?? 'skipped') : r.json === undefined ? (r.error ?? 'no JSON result') : `no figure ${what}`;
  return { bench, figure: what, goal, verdict: 'not measured', note: why };
}

/** ours ≤ (or ≥) the peer's, in the same run */
function vsPeer(input: ReportInput, bench: string, re: RegExp, dir: 'lower' | 'higher', what: string): Check[] {
  const goal = dir === 'lower' ? 'ratio ≤ 1.0' : 'ratio ≥ 1.0';
  const found = figure(input, bench, re);
  if (found.length === 0) return [missing(input, bench, goal, what)];
  return found.map(([label, f]) => {
    if (f.netsession === null) return { bench, figure: label, goal, verdict: 'not measured', note: 'no netsession figure' };
    if (f.peer === null) return { bench, figure: label, goal, verdict: 'not measured', note: 'no ConnMan figure in this run' };
    const ok = dir === 'lower' ? f.netsession <= f.peer : f.netsession >= f.peer;
    return { bench, figure: label, goal, verdict: ok ? 'met' : 'not met' };
  });
}

/** ours within an absolute bound, the bound in the goal's unit (ms for times) */
function bound(input: ReportInput, bench: string, re: RegExp, op: '≤' | '≥' | '=', limit: number, goal: string, what: string, unit: 'ms' | 'raw' = 'raw'): Check[] {
  const found = figure(input, bench, re);
  if (found.length === 0) return [missing(input, bench, goal, what)];
  return found.map(([label, f]) => {
    if (f.netsession === null) return { bench, figure: label, goal, verdict: 'not measured', note: 'no netsession figure' };
    let v = f.netsession;
    let note: string | undefined;
    if (unit === 'ms') {
      const k = msPerUnit(label);
      if (k === undefined) note = 'the label names no time unit: taken as ms';
      v *= k ?? 1;
    }
    const ok = op === '≤' ? v <= limit : op === '≥' ? v >= limit : v === limit;
    return { bench, figure: label, goal, verdict: ok ? 'met' : 'not met', ...(note ? { note } : {}) };
  });
}

function combine(checks: Check[]): Verdict {
  if (checks.some((c) => c.verdict === 'not met')) return 'not met';
  if (checks.length > 0 && checks.every((c) => c.verdict === 'met')) return 'met';
  return 'not measured';
}

/** Size the sessions bench ran with (undefined: not known). */
function sessionSize(input: ReportInput, k: 'many' | 'held'): number | undefined {
  return num(at(runOf(input, 'sessions')?.json, 'sizes', k)) ?? undefined;
}

/** A goal about 10,000 sessions can only be judged from a run with 10,000. */
function atSize(input: ReportInput, checks: Check[], need: number): Check[] {
  const many = sessionSize(input, 'many');
  if (many === undefined || many >= need) return checks;
  return checks.map((c) => (c.verdict === 'not measured' ? c : { ...c, verdict: 'not measured', note: `run with ${many} sessions, not ${need.toLocaleString('en')} (reduced sizes); it was ${c.verdict} at that size` }));
}

/**
 * Where a sessions figure has no ConnMan value because ConnMan never completed the step (it
 * told only some sessions, created only some), what it did: "told 0 of 10000 sessions".
 */
export function connmanUnfinished(input: ReportInput, label: string): string | undefined {
  const j = runOf(input, 'sessions')?.json;
  const held = String(at(j, 'sizes', 'held'));
  const many = String(at(j, 'sizes', 'many'));
  const told = (v: unknown): string | undefined => {
    const k = num(at(v, 'notified'));
    const of = num(at(v, 'of'));
    return k !== null && of !== null && k < of ? `told ${k} of ${of} sessions` : undefined;
  };
  const made = (v: unknown, what: 'replies' | 'firstUpdates'): string | undefined => {
    const k = num(at(v, what));
    const of = num(at(v, 'n'));
    return k !== null && of !== null && k < of ? `${k} of ${of} ${what === 'replies' ? 'replies' : 'first Updates'}` : undefined;
  };
  const cm = (lab: string): unknown => at(j, lab, 'connman');
  const m = /^uplink down → all (\d+) sessions notified/.exec(label);
  if (m) return m[1] === many ? told(at(cm('labC'), 'down')) : m[1] === held ? told(at(cm('labA'), 'down')) : undefined;
  if (/^carrier back → all/.test(label)) return told(at(cm('labA'), 'back'));
  if (/concurrent CreateSession.*all replies/.test(label)) return made(at(cm('labA'), 'concurrent'), 'replies');
  if (/concurrent CreateSession.*all first Updates/.test(label)) return made(at(cm('labA'), 'concurrent'), 'firstUpdates');
  if (/^create \d+ sessions, \d+ in flight: all first Updates/.test(label)) return made(at(cm('labA'), 'held'), 'firstUpdates');
  if (/^burst of/.test(label)) return made(at(cm('labB'), 'burst'), 'firstUpdates');
  return undefined;
}

interface GoalDef {
  id: string;
  issue: string;
  text: string;
  check(input: ReportInput): Check[];
  note?: (input: ReportInput, checks: Check[]) => string | undefined;
}

const escRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The performance goals of issues 2–5, each judged from the figures of one run. */
export const GOALS: GoalDef[] = [
  {
    id: 'kernel-dump',
    issue: 'kernel (issue 2)',
    text: 'dump of 10,000 routes ≤ 30 ms',
    check: (i) => bound(i, 'kernel', /^dump \d+ IPv4 routes/, '≤', 30, '≤ 30 ms', 'dump 10,000 routes', 'ms'),
  },
  {
    id: 'kernel-apply',
    issue: 'kernel (issue 2)',
    text: 'apply 1,000 rules + 1,000 routes: ratio vs ip -batch ≤ 1.0 (adding them, and deleting them)',
    check: (i) => [
      ...vsPeer(i, 'kernel', /^add 1000 rules \+ 1000 routes/, 'lower', 'add 1000 rules + 1000 routes').map((c) => ({ ...c, goal: 'ratio vs ip -batch ≤ 1.0' })),
      ...vsPeer(i, 'kernel', /^delete 1000 rules \+ 1000 routes/, 'lower', 'delete 1000 rules + 1000 routes').map((c) => ({ ...c, goal: 'ratio vs ip -batch ≤ 1.0' })),
    ],
  },
  {
    id: 'kernel-mirror',
    issue: 'kernel (issue 2)',
    text: 'change → mirror p99 ≤ 2 ms',
    check: (i) => bound(i, 'kernel', /^change → mirror, our netlink change, p99/, '≤', 2, 'p99 ≤ 2 ms', 'change → mirror p99', 'ms'),
  },
  {
    id: 'core-up',
    issue: 'core (issue 3)',
    text: 'carrier up → ready and → online no worse than ConnMan (ratio ≤ 1.0, p50 and p99)',
    check: (i) => vsPeer(i, 'core', /^carrier up → (ready|online), p(50|99)/, 'lower', 'carrier up → ready/online'),
  },
  {
    id: 'core-down',
    issue: 'core (issue 3)',
    text: 'carrier down → PropertyChanged no worse than ConnMan (ratio ≤ 1.0, p50 and p99)',
    check: (i) => vsPeer(i, 'core', /^carrier down → State PropertyChanged, p(50|99)/, 'lower', 'carrier down → PropertyChanged'),
  },
  {
    id: 'core-down-p99',
    issue: 'core (issue 3)',
    text: 'carrier down → PropertyChanged p99 ≤ 5 ms',
    check: (i) => bound(i, 'core', /^carrier down → State PropertyChanged, p99/, '≤', 5, 'p99 ≤ 5 ms', 'carrier down → PropertyChanged p99', 'ms'),
  },
  {
    id: 'sessions-vs-connman',
    issue: 'sessions (issue 4)',
    text: "every latency and throughput figure no worse than ConnMan's (ratio ≤ 1.0 in the same run)",
    check: (i) => {
      const figs = figuresOf(runOf(i, 'sessions'));
      if (figs.size === 0) return [missing(i, 'sessions', 'ratio ≤ 1.0', 'sessions figures')];
      const many = sessionSize(i, 'many');
      const created = [...figs.entries()].find(([l]) => /^sessions created of/.test(l))?.[1];
      const out: Check[] = [];
      for (const label of figs.keys()) {
        const latency = msPerUnit(label) !== undefined;
        const rate = /\/s\b/.test(label) && !/ \/ with 1/.test(label);
        if (!latency && !rate) continue;
        const [c] = vsPeer(i, 'sessions', new RegExp(`^${escRe(label)}$`), latency ? 'lower' : 'higher', label);
        if (c === undefined) continue;
        const unfinished = c.verdict === 'not measured' && figs.get(label)?.netsession !== null ? connmanUnfinished(i, label) : undefined;
        if (unfinished !== undefined) {
          out.push({ ...c, verdict: 'met', note: `ConnMan did not finish: ${unfinished}` });
          continue;
        }
        // a figure over the many sessions compares unequal work when ConnMan created fewer
        if (many !== undefined && label.includes(`${many} sessions`) && created && created.peer !== null && created.netsession !== null && created.peer < created.netsession) {
          c.note = `ConnMan created ${created.peer} of ${many} sessions (netsession ${created.netsession})`;
        }
        out.push(c);
      }
      return out;
    },
  },
  {
    id: 'sessions-rss',
    issue: 'sessions (issue 4)',
    text: '10,000 sessions in ≤ 200 MB RSS',
    check: (i) =>
      atSize(
        i,
        [
          ...bound(i, 'sessions', /^sessions created of \d+/, '≥', sessionSize(i, 'many') ?? 10_000, 'all created', 'sessions created'),
          ...bound(i, 'sessions', /^RSS with \d+ sessions held \(MiB\)/, '≤', GOAL_MIB, '≤ 200 MB (190.7 MiB)', 'RSS with 10,000 sessions'),
        ],
        10_000,
      ),
  },
  {
    id: 'sessions-tcp',
    issue: 'sessions (issue 4)',
    text: 'TCP connection rate with 10,000 sessions ≥ 0.9 × with 1',
    check: (i) => atSize(i, bound(i, 'sessions', /^TCP rate with \d+ sessions \/ with 1/, '≥', 0.9, '≥ 0.9', 'TCP rate ratio'), 10_000),
  },
  {
    id: 'sessions-seen',
    issue: 'sessions (issue 4)',
    text: 'after any burst, link changes are still seen',
    check: (i) => bound(i, 'sessions', /^link change seen after/, '=', 1, 'yes', 'link change seen'),
  },
  {
    id: 'faults-getprops',
    issue: 'reliability (issue 5)',
    text: 'GetProperties p99 ≤ 50 ms during a flap storm',
    // "GetProperties during 1000 flips in 10 s, p99 (ms)" — not the idle one
    check: (i) => bound(i, 'faults', /^(?=.*GetProperties)(?=.*p99)(?=.*(storm|flap|flip)).*/i, '≤', 50, 'p99 ≤ 50 ms', 'GetProperties p99 during the flap storm', 'ms'),
  },
  {
    id: 'faults-restart',
    issue: 'reliability (issue 5)',
    text: 'restart after SIGKILL converges in ≤ 1 s',
    check: (i) => {
      // "restart after SIGKILL (…) → kernel converged, p50/max (ms)"; not the time to the bus name
      const timed = figure(i, 'faults', /SIGKILL|restart/i).filter(([l]) => msPerUnit(l) !== undefined);
      const converged = timed.filter(([l]) => /converg/i.test(l));
      const found = converged.length > 0 ? converged : timed;
      if (found.length === 0) return [missing(i, 'faults', '≤ 1 s', 'restart after SIGKILL → converged')];
      return found.flatMap(([l]) => bound(i, 'faults', new RegExp(`^${escRe(l)}$`), '≤', 1000, '≤ 1 s', l, 'ms'));
    },
  },
  {
    id: 'faults-clean',
    issue: 'reliability (issue 5)',
    text: '0 crashes / 0 leaks over the fault suite',
    check: (i) => {
      const out: Check[] = [];
      const s = i.suite;
      const cmd = 'node scripts/run-tests.mjs test/faults';
      if (s === undefined || !s.ran) out.push({ bench: 'fault suite', figure: cmd, goal: 'passes', verdict: 'not measured', note: s?.note ?? `not run by the report; run \`${cmd}\`` });
      else {
        const ok = s.exitCode === 0 && (s.fail ?? 0) === 0;
        const failed = s.failed && s.failed.length > 0 ? ` (${s.failed.join('; ')})` : '';
        out.push({ bench: 'fault suite', figure: cmd, goal: 'passes (its tests fail on a crash, a leak, an unanswered call)', verdict: ok ? 'met' : 'not met', note: `${s.pass ?? '?'} passed, ${s.fail ?? '?'} failed${failed}${s.note ? `; ${s.note}` : ''}` });
      }
      // the faults bench may count crashes and leaks itself
      for (const [label, f] of figure(i, 'faults', /crash|leak/i)) {
        out.push({ bench: 'faults', figure: label, goal: '0', verdict: f.netsession === null ? 'not measured' : f.netsession === 0 ? 'met' : 'not met' });
      }
      return out;
    },
  },
];

export function evaluateGoals(input: ReportInput): GoalResult[] {
  return GOALS.map((g) => {
    const checks = g.check(input);
    return { id: g.id, issue: g.issue, text: g.text, verdict: combine(checks), checks };
  });
}

// ---------------------------------------------------------------------------------------
// workloads: what each group of figures measured

interface Group {
  title: string;
  workload: string;
  has: (label: string) => boolean;
}

const n = (v: unknown): string => (typeof v === 'number' ? v.toLocaleString('en') : '?');

export function groupsOf(run: BenchRun): Group[] {
  const j = run.json ?? {};
  if (typeof j.workload === 'string') return [{ title: run.name, workload: j.workload, has: () => true }];
  switch (run.name) {
    case 'kernel': {
      const runs = n(j.runs);
      return [
        { title: 'Route dump', workload: `one network namespace, one veth, 10,000 /32 routes in one table; ours: one rtnetlink dump of IPv4 routes (decoded); ip: \`ip -j -4 route show table all\` (its JSON parsed); median of ${runs} runs`, has: (l) => /^dump/.test(l) },
        { title: 'Apply', workload: `1,000 default routes (one table each) + 1,000 fwmark rules, added then deleted; ours: one rtnetlink batch; ip: one \`ip -batch\` process; median of ${runs} runs`, has: (l) => /^(add|delete) 1000/.test(l) },
        { title: 'Reconciler', workload: `the reconciler (plan, apply, settle) from nothing to those 2,000 objects, again (nothing to do), and back to nothing; median of ${runs} runs`, has: (l) => /^reconcile/.test(l) },
        { title: 'Events', workload: '1,000 route adds by another netlink socket of ours, 300 by a long-lived `ip -batch` fed one line at a time; t0 before the request, end = the KernelMirror event', has: (l) => /^change → mirror/.test(l) },
      ];
    }
    case 'core': {
      const r = at(j, 'rounds');
      const many = n(at(r, 'many'));
      const manyRe = /staged|cold start|CPU used|last carrier/;
      return [
        {
          title: '3 uplinks',
          workload: `a lab of 3 uplinks (veth pairs; dnsmasq DHCP and router advertisements; the online-check HTTP server), one daemon at a time, each in a fresh lab of the same topology; t0 = the bench's netlink request setting the ISP-side veth up/down, end = the D-Bus signal at a subscribed client; ${n(at(r, 'up'))} carrier-up rounds with the other uplinks down (so it is the default service, the one ConnMan online-checks), ${n(at(r, 'down'))} carrier-down rounds with all 3 connected`,
          has: (l) => !manyRe.test(l),
        },
        { title: `${many} uplinks`, workload: `a lab of ${many} uplinks: cold start with every carrier up; staged: carrier on one uplink after the other, 100 ms apart, then idle`, has: (l) => manyRe.test(l) },
      ];
    }
    case 'sessions': {
      const s = at(j, 'sizes');
      const held = String(at(s, 'held'));
      const many = String(at(s, 'many'));
      const inC = (l: string): boolean => /^TCP|^sessions created of/.test(l) || new RegExp(`^(create|RSS with|RSS growth with|uplink down → all) ${escRe(many)} sessions`).test(l);
      const inB = (l: string): boolean => /^burst of|after the burst/.test(l);
      return [
        {
          title: 'Lab A: latency, concurrency, held sessions',
          workload: `3 uplinks, one daemon at a time in a fresh lab, except the latencies: both daemons at once in labs of their own, one call to each in turn (random order each round); the same dbus-next client for both; ${n(at(s, 'rounds'))} sequential CreateSession (settings {}, +5 warm-up, 10 ms apart) and as many Manager.GetProperties, and as many CreateSession from a new connection each (an application's first call); ${n(at(s, 'concurrent'))} connections each sending one CreateSession at once (into a fresh daemon once, and paired ${n(at(s, 'concurrentRounds'))} times: the median); ${n(at(s, 'held'))} sessions held (AllowedInterface = one uplink, ${n(at(s, 'perConn'))} per connection, ${n(at(s, 'window'))} in flight; made once after that burst, and${at(s, 'heldRounds') === undefined ? '' : ` paired ${n(at(s, 'heldRounds'))} times`} in the paired labs: the median); that uplink's carrier down and back (t0 = our netlink request)`,
          has: (l) => !inB(l) && !inC(l),
        },
        { title: 'Lab B: burst', workload: `a fresh daemon; ${held} CreateSession written at once over ${Math.ceil(Number(held) / Number(at(s, 'perConn') ?? 100))} connections; then a carrier loss: are the service and the sessions told?`, has: inB },
        {
          title: 'Lab C: TCP and many sessions',
          workload: `TCP connections/s made in the device namespace with the session's mark (SO_MARK) to a sink behind another uplink, ${n(at(s, 'tcp', 'concurrency'))} loops, median of ${n(at(s, 'tcp', 'runs'))} runs of ${n(at(s, 'tcp', 'seconds'))} s (each in a process of its own, apart from the bench's client state), both daemons at once in labs of their own, their runs in turn (random order each round); with 1 session, then with ${n(at(s, 'many'))} sessions held (${n(at(s, 'manyWindow'))} in flight, cap ${n(at(s, 'capS'))} s) through a session created after them, then with 1 session again once they ended (the figure with 1 session: the median of the runs before and after)`,
          has: inC,
        },
      ];
    }
    case 'faults': {
      const p = at(j, 'params');
      const restart = (l: string): boolean => /restart|SIGKILL/i.test(l);
      return [
        {
          title: 'Flap storm',
          workload: `3 uplinks, one daemon at a time in a fresh lab; Manager.GetProperties every ${n(at(p, 'probeMs'))} ms (client-side round trip), idle for 5 s, then during ${n(at(p, 'flips'))} carrier flips of the ISP-side veths in ${n(at(p, 'stormMs'))} ms (seeded, seed ${String(at(p, 'seed'))}, the same flips for both); then every uplink up`,
          has: (l) => !restart(l),
        },
        {
          title: 'Restart after SIGKILL',
          workload: `netsessiond only: ${n(at(p, 'sessions'))} sessions held (their rules and nft objects stay in the kernel when the daemon is killed), SIGKILL, start again; converged = our kernel state equals a clean start's and stays so for 2 s; ${n(at(p, 'rounds'))} rounds`,
          has: restart,
        },
      ];
    }
    default: {
      const sizes = j.sizes ?? j.params;
      return [{ title: run.name, workload: isObj(sizes) ? `parameters: ${JSON.stringify(sizes)}` : 'see the bench source for its workload', has: () => true }];
    }
  }
}

// ---------------------------------------------------------------------------------------
// latency distributions and cost against session count (the charts' data)

export interface Distribution {
  id: string;
  title: string;
  bench: string;
  unit: string;
  series: { daemon: string; values: number[] }[];
}

export function distributions(input: ReportInput): Distribution[] {
  const out: Distribution[] = [];
  const daemons: Daemon[] = ['netsession', 'connman'];
  const fromPer = (bench: string, key: string, id: string, title: string, field: string): void => {
    const j = runOf(input, bench)?.json;
    const series = daemons.map((d) => ({ daemon: d, values: nums(at(j, key, d, field)) })).filter((s) => s.values.length > 0);
    if (series.length > 0) out.push({ id, title, bench, unit: 'ms', series });
  };
  fromPer('sessions', 'labA', 'sessions-create-reply', 'CreateSession → reply', 'replyMs');
  fromPer('sessions', 'labA', 'sessions-create-first-update', 'CreateSession → first Update', 'firstMs');
  fromPer('sessions', 'labA', 'sessions-getproperties', 'Manager.GetProperties round trip (idle daemon)', 'getPropertiesMs');
  fromPer('core', 'three', 'core-carrier-up-ready', 'carrier up → service ready', 'upReadyMs');
  fromPer('core', 'three', 'core-carrier-up-online', 'carrier up → service online', 'upOnlineMs');
  fromPer('core', 'three', 'core-carrier-down', 'carrier down → State PropertyChanged', 'downMs');
  const restart = at(runOf(input, 'faults')?.json, 'restart');
  const conv = Array.isArray(restart) ? nums(restart.map((r) => at(r, 'convergedMs'))) : [];
  if (conv.length > 0) out.push({ id: 'faults-restart-converged', title: 'restart after SIGKILL → kernel converged', bench: 'faults', unit: 'ms', series: [{ daemon: 'netsession', values: conv }] });
  // any bench's own `samples`
  for (const r of input.runs) {
    const samples = r.json?.samples;
    if (!isObj(samples)) continue;
    for (const [label, v] of Object.entries(samples)) {
      const series = Object.entries(isObj(v) ? v : { netsession: v }).map(([d, xs]) => ({ daemon: d, values: nums(xs) })).filter((s) => s.values.length > 0);
      if (series.length === 0) continue;
      const k = msPerUnit(label) ?? 1;
      out.push({
        id: `${r.name}-${slug(label)}`,
        title: label.replace(/\s*\([^)]*\)\s*$/, ''),
        bench: r.name,
        unit: 'ms',
        series: series.map((s) => ({ daemon: s.daemon, values: k === 1 ? s.values : s.values.map((x) => x * k) })),
      });
    }
  }
  return out;
}

export function slug(s: string): string {
  return (
    s
      .toLowerCase()
      .replace(/→/g, 'to')
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 60) || 'x'
  );
}

export interface CostPoint {
  sessions: number;
  value: number;
}

export interface CostSeries {
  daemon: string;
  /** settled figures at 0 / held / many */
  figures: CostPoint[];
  /** while lab C's many sessions were being created */
  during: CostPoint[];
  /** single points of other workloads (lab A 10 in flight, lab B burst) */
  extra: { label: string; point: CostPoint }[];
}

/** RSS (MiB) and time to create (s) against the number of sessions, per daemon, from the sessions bench. */
export function sessionCost(input: ReportInput): { rss: CostSeries[]; time: CostSeries[]; held?: number; many?: number; window?: number; manyWindow?: number } {
  const j = runOf(input, 'sessions')?.json;
  const rss: CostSeries[] = [];
  const time: CostSeries[] = [];
  if (j === undefined) return { rss, time };
  const held = num(at(j, 'sizes', 'held')) ?? undefined;
  const many = num(at(j, 'sizes', 'many')) ?? undefined;
  for (const d of ['netsession', 'connman']) {
    const a = at(j, 'labA', d);
    const b = at(j, 'labB', d);
    const c = at(j, 'labC', d);
    const mib = (k: unknown): number | null => (num(k) === null ? null : (num(k) as number) / 1024);
    const progress = Array.isArray(at(c, 'many', 'progress')) ? (at(c, 'many', 'progress') as unknown[]) : [];
    const r: CostSeries = { daemon: d, figures: [], during: [], extra: [] };
    const push = (arr: CostPoint[], s: number | null | undefined, v: number | null): void => {
      if (s !== null && s !== undefined && v !== null) arr.push({ sessions: s, value: v });
    };
    push(r.figures, 0, mib(at(a, 'rssIdleKiB')));
    push(r.figures, num(at(a, 'held', 'firstUpdates')), mib(at(a, 'held', 'rssWithKiB')));
    push(r.figures, num(at(c, 'many', 'firstUpdates')), mib(at(c, 'many', 'rssWithKiB')));
    push(r.during, 0, mib(at(c, 'rssBeforeKiB')));
    for (const p of progress) push(r.during, num(at(p, 'n')), mib(at(p, 'rssKiB')));
    if (r.figures.length + r.during.length > 0) rss.push(r);

    const t: CostSeries = { daemon: d, figures: [], during: [], extra: [] };
    const sec = (x: unknown): number | null => (num(x) === null ? null : (num(x) as number) / 1000);
    const manyAll = sec(at(c, 'many', 'allFirstMs'));
    if (progress.length > 0 || manyAll !== null) {
      push(t.during, 0, 0);
      for (const p of progress) push(t.during, num(at(p, 'n')), sec(at(p, 'ms')));
      const last = t.during[t.during.length - 1];
      if (manyAll !== null && many !== undefined && (last === undefined || last.sessions < many)) push(t.during, many, manyAll);
    }
    const heldMs = sec(at(a, 'held', 'allFirstMs'));
    if (heldMs !== null && held !== undefined) t.extra.push({ label: `lab A, ${n(at(j, 'sizes', 'window'))} in flight`, point: { sessions: held, value: heldMs } });
    const burstMs = sec(at(b, 'burst', 'allFirstMs'));
    if (burstMs !== null && held !== undefined) t.extra.push({ label: 'lab B, all at once', point: { sessions: held, value: burstMs } });
    if (t.during.length + t.extra.length > 0) time.push(t);
  }
  return { rss, time, held, many, window: num(at(j, 'sizes', 'window')) ?? undefined, manyWindow: num(at(j, 'sizes', 'manyWindow')) ?? undefined };
}

// ---------------------------------------------------------------------------------------
// charts

export interface Chart {
  file: string;
  title: string;
  svg: string;
}

const colorOf = (d: string): string => (d === 'netsession' ? COLORS.netsession : d === 'connman' ? COLORS.connman : COLORS.reference);
const nameOf = (d: string): string => (d === 'netsession' ? 'netsession' : d === 'connman' ? 'ConnMan' : d);

export function buildCharts(input: ReportInput): Chart[] {
  const charts: Chart[] = [];
  const dists = distributions(input);
  const machine = `${input.machine.cpus} × ${input.machine.model}, Linux ${input.machine.kernel}`;
  if (dists.length > 0) {
    charts.push({
      file: 'latency-overview.svg',
      title: 'Latency distributions, netsession and ConnMan',
      svg: boxChart({
        title: 'Latency distributions (same run, one daemon at a time)',
        subtitle: machine,
        xLabel: 'ms',
        rows: dists.map((d) => ({ label: `${d.title} [${d.bench}]`, series: d.series.map((s) => ({ name: nameOf(s.daemon), color: colorOf(s.daemon), values: s.values })) })),
        log: true,
      }),
    });
    for (const d of dists) {
      const series: CdfSeries[] = d.series.map((s) => ({ name: nameOf(s.daemon), color: colorOf(s.daemon), values: s.values, ...(s.daemon === 'connman' ? { dash: '7 3' } : {}) }));
      charts.push({
        file: `cdf-${d.id}.svg`,
        title: `${d.title} (${d.bench})`,
        svg: cdfChart({ title: `${d.title} — CDF`, subtitle: `bench/${d.bench}.ts; ${machine}`, xLabel: d.unit, unit: d.unit, series, log: 'auto' }),
      });
    }
  }
  const cost = sessionCost(input);
  const win = cost.manyWindow === undefined ? '' : `, ${cost.manyWindow} in flight`;
  if (cost.rss.length > 0) {
    const series: XYSeries[] = [];
    for (const r of cost.rss) {
      if (r.figures.length > 0) series.push({ name: `${nameOf(r.daemon)}: settled (0, ${cost.held ?? '?'}, ${cost.many ?? '?'} held)`, color: colorOf(r.daemon), points: r.figures.map((p) => [p.sessions, p.value] as const) });
      if (r.during.length > 0) series.push({ name: `${nameOf(r.daemon)}: while creating (lab C${win})`, color: colorOf(r.daemon), dash: '5 4', markers: false, points: r.during.map((p) => [p.sessions, p.value] as const) });
    }
    charts.push({
      file: 'sessions-rss.svg',
      title: 'Daemon RSS against session count',
      svg: lineChart({ title: 'Daemon RSS against sessions held', subtitle: `bench/sessions.ts; ${machine}`, xLabel: 'sessions held', yLabel: 'RSS (MiB)', series }),
    });
  }
  if (cost.time.length > 0) {
    const series: XYSeries[] = [];
    for (const t of cost.time) {
      if (t.during.length > 0) series.push({ name: `${nameOf(t.daemon)}: create ${cost.many ?? '?'} (lab C${win})`, color: colorOf(t.daemon), points: t.during.map((p) => [p.sessions, p.value] as const), markers: t.during.length <= 3 });
      for (const [i, e] of t.extra.entries()) {
        series.push({ name: `${nameOf(t.daemon)}: create ${cost.held ?? '?'} (${e.label})`, color: colorOf(t.daemon), points: [[e.point.sessions, e.point.value]], line: false, shape: i === 0 ? 'square' : 'triangle' });
      }
    }
    charts.push({
      file: 'sessions-create-time.svg',
      title: 'Time to create sessions against session count',
      svg: lineChart({ title: 'Time until every session got its first Update', subtitle: `bench/sessions.ts; ${machine}`, xLabel: 'sessions created', yLabel: 'seconds since the first CreateSession', series }),
    });
  }
  return charts;
}

// ---------------------------------------------------------------------------------------
// markdown

const mdCell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
const verdictMd = (v: Verdict): string => (v === 'met' ? '✅ met' : v === 'not met' ? '❌ NOT met' : '➖ not measured');
const dur = (s: number): string => (s >= 90 ? `${(s / 60).toFixed(1)} min` : `${s.toFixed(0)} s`);

const TITLES: Record<string, string> = {
  kernel: 'Kernel layer (issue 2) — `bench/kernel.ts`',
  core: 'Connection-manager core (issue 3) — `bench/core.ts`',
  sessions: 'Sessions (issue 4) — `bench/sessions.ts`',
  faults: 'Reliability under faults (issue 5) — `bench/faults.ts`',
};

function checkValue(input: ReportInput, c: Check): string {
  if (c.bench === 'fault suite') return input.suite?.ran ? `exit ${input.suite.exitCode}` : '–';
  const f = figuresOf(runOf(input, c.bench)).get(c.figure);
  if (f === undefined) return '–';
  const r = ratioOf(c.figure, f);
  const u = unitOf(c.figure);
  const v = `${fmtValue(c.figure, f.netsession)}${u ? ` ${u}` : ''}`;
  return c.goal.startsWith('ratio') && r !== undefined ? `${v} vs ${fmtValue(c.figure, f.peer)}${u ? ` ${u}` : ''} (×${fmtRatio(r)})` : v;
}

export function renderReport(input: ReportInput, goals: GoalResult[], charts: Chart[], chartDir = 'report'): string {
  const m = input.machine;
  const L: string[] = [];
  const tally = { met: 0, 'not met': 0, 'not measured': 0 } as Record<Verdict, number>;
  for (const g of goals) tally[g.verdict]++;
  L.push('# netsession benchmark report', '');
  L.push(
    `Generated ${input.date} by \`${input.command}\` in ${dur(input.totalS)}${input.revision ? `, netsession at ${input.revision}` : ''}; side by side with ConnMan ${m.connman || '(version unknown)'} in twin labs.`,
  );
  L.push('');
  if (input.quick) {
    L.push('> **Quick run** (`REPORT_QUICK=1`): reduced sizes, a smoke test of the report. Goals stated for 10,000 sessions are not judged; the others are judged on the reduced workloads. Run `npm run bench:report` for the real figures.', '');
  }
  L.push('## Machine', '');
  L.push('| | |', '| --- | --- |');
  L.push(`| CPU | ${m.cpus} × ${mdCell(m.model)} |`);
  if (m.memGiB !== undefined) L.push(`| memory | ${m.memGiB.toFixed(1)} GiB |`);
  L.push(`| kernel | Linux ${m.kernel} |`, `| node | ${m.node} |`, `| ConnMan | ${m.connman || '–'} (Debian's connmand) |`);
  if (m.loadStart) L.push(`| load average at start / end | ${m.loadStart.map((x) => x.toFixed(2)).join(' ')} / ${m.loadEnd?.map((x) => x.toFixed(2)).join(' ') ?? '–'} |`);
  L.push('');
  L.push(
    'How the figures were made: each bench is one process that measures netsession and then ConnMan, one daemon at a time, each in a fresh lab of the very same topology built by `src/lab` (the twin-lab recipe of `shared/connman-twin/connman-lab.sh`: connmand confined to the lab\'s device namespace, on the lab\'s own D-Bus, ethernet plugin only). So every ratio (netsession / ConnMan, lower is better for times, higher for rates) compares two figures of one run on one machine. The machine is shared (2 cores; other work may have run at the same time): figures are noisy, ratios less so.',
  );
  L.push('');

  // goals
  L.push('## Goals', '');
  L.push(`${goals.length} goals of the earlier issues: **${tally.met} met**, **${tally['not met']} not met**, ${tally['not measured']} not measured.`, '');
  for (const g of goals) {
    const bad = g.checks.filter((c) => c.verdict === 'not met');
    const unmeasured = g.checks.filter((c) => c.verdict === 'not measured');
    let detail: string;
    if (g.checks.length === 1) {
      const c = g.checks[0] as Check;
      detail = [c.verdict === 'not measured' ? '' : checkValue(input, c), c.note ?? ''].filter((x) => x !== '').join('; ');
    } else {
      const parts = [`${g.checks.length - bad.length - unmeasured.length} of ${g.checks.length} figures met`];
      const list = (cs: Check[], f: (c: Check) => string): string => `${cs.slice(0, 6).map(f).join('; ')}${cs.length > 6 ? `; and ${cs.length - 6} more (see the tables)` : ''}`;
      if (bad.length > 0) parts.push(`not met: ${list(bad, (c) => `${c.figure} ${checkValue(input, c)}`)}`);
      if (unmeasured.length > 0) parts.push(`not measured: ${list(unmeasured, (c) => `${c.figure}${c.note ? ` (${c.note})` : ''}`)}`);
      detail = parts.join('. ');
    }
    L.push(`- ${verdictMd(g.verdict)} — **${g.issue}**: ${g.text}${detail ? ` — ${detail}` : ''}`);
  }
  L.push('');

  // figures
  L.push('## Figures', '');
  L.push('Goal column: the goals of the issues that the figure is judged against (all of them, also those a bench\'s own table leaves out). Ratio = netsession / reference.', '');
  const checksByFigure = new Map<string, Check[]>();
  for (const g of goals) for (const c of g.checks) checksByFigure.set(`${c.bench}\u0000${c.figure}`, [...(checksByFigure.get(`${c.bench}\u0000${c.figure}`) ?? []), c]);
  for (const run of input.runs) {
    L.push(`### ${TITLES[run.name] ?? `\`bench/${run.name}.ts\``}`, '');
    const status = !run.ran
      ? `not run: ${run.error ?? 'skipped'}`
      : `\`${run.command}\`${run.env && Object.keys(run.env).length > 0 ? ` with ${Object.entries(run.env).map(([k, v]) => `${k}=${v}`).join(' ')}` : ''}: ${dur(run.durationS)}, exit ${run.exitCode ?? run.signal}${run.error ? ` — **${run.error}**` : ''}${run.note ? ` (${run.note})` : ''}`;
    L.push(status, '');
    const errs = at(run.json, 'errors');
    if (Array.isArray(errs) && errs.length > 0) L.push(...errs.map((e) => `- **error:** ${mdCell(String(e)).slice(0, 600)}`), '');
    const figs = figuresOf(run);
    if (figs.size === 0) continue;
    const peer = peerName(run);
    const groups = groupsOf(run);
    const placed = new Set<string>();
    const table = (labels: string[]): void => {
      L.push(`| figure | netsession | ${peer} | ratio | goal | met? |`, '| --- | ---: | ---: | ---: | --- | --- |');
      for (const label of labels) {
        const f = figs.get(label) as FigureValue;
        const r = ratioOf(label, f);
        const cs = checksByFigure.get(`${run.name}\u0000${label}`) ?? [];
        const goal = cs.map((c) => c.goal).join('; ');
        const met = cs.map((c) => `${verdictMd(c.verdict)}${c.note ? ` (${c.note})` : ''}`).join('; ');
        L.push(`| ${mdCell(label)} | ${fmtValue(label, f.netsession)} | ${fmtValue(label, f.peer)} | ${fmtRatio(r)} | ${mdCell(goal)} | ${mdCell(met)} |`);
      }
      L.push('');
    };
    // a figure without any value (a part the bench skipped) gets no row
    const valued = (l: string): boolean => {
      const f = figs.get(l) as FigureValue;
      return f.netsession !== null || f.peer !== null;
    };
    for (const g of groups) {
      const labels = [...figs.keys()].filter((l) => !placed.has(l) && g.has(l));
      if (labels.length === 0) continue;
      for (const l of labels) placed.add(l);
      if (groups.length > 1) L.push(`#### ${g.title}`, '');
      L.push(`*Workload:* ${/[.?!]$/.test(g.workload) ? g.workload : `${g.workload}.`}`, '');
      if (labels.some(valued)) table(labels.filter(valued));
      else L.push('Not measured in this run.', '');
    }
    const rest = [...figs.keys()].filter((l) => !placed.has(l) && valued(l));
    if (rest.length > 0) table(rest);
  }
  if (input.suite) {
    const s = input.suite;
    L.push('### Fault suite (issue 5) — `test/faults`', '');
    L.push(
      s.ran
        ? `\`${s.command}\`${s.env && Object.keys(s.env).length > 0 ? ` with ${Object.entries(s.env).map(([k, v]) => `${k}=${v}`).join(' ')}` : ''}: ${dur(s.durationS)}, exit ${s.exitCode}; tests ${s.tests ?? '?'}, passed ${s.pass ?? '?'}, failed ${s.fail ?? '?'}${s.skipped ? `, skipped ${s.skipped}` : ''}${s.failed && s.failed.length > 0 ? ` (failed: ${s.failed.map((x) => `“${mdCell(x)}”`).join(', ')})` : ''}${s.note ? `; ${s.note}` : ''}.`
        : `not run: ${s.note ?? 'skipped'}. To run it: \`${s.command}\` (D-Bus fuzzing and hostile clients; each test fails on a crash, a leak of kernel state, sessions, agents or file descriptors, or a call left unanswered).`,
      '',
    );
  }

  // charts
  if (charts.length > 0) {
    L.push('## Charts', '');
    const lat = charts.filter((c) => c.file === 'latency-overview.svg' || c.file.startsWith('cdf-'));
    const cost = charts.filter((c) => c.file.startsWith('sessions-'));
    if (lat.length > 0) {
      L.push('### Latency distributions', '');
      L.push('Raw samples of the runs above; netsession blue, ConnMan orange (dashed in the CDFs). Box: p25–p75, bar: p50, whiskers: p1–p99, diamond: maximum.', '');
      for (const c of lat) L.push(`![${c.title}](${chartDir}/${c.file})`, '');
    }
    if (cost.length > 0) {
      L.push('### Cost against session count', '');
      L.push(
        'From the sessions bench: settled RSS with 0 sessions (lab A, idle), with the held sessions (lab A) and with the many sessions (lab C); the dashed line samples RSS while lab C creates its sessions (not settled). Time: until every session of lab C got its first Update (sampled on the way), and lab A\'s / lab B\'s single figures.',
        '',
      );
      for (const c of cost) L.push(`![${c.title}](${chartDir}/${c.file})`, '');
    }
  }

  // raw output
  L.push('## Each bench\'s own output', '');
  L.push(`The tables and notes each bench printed (its JSON line left out). Raw stdout/stderr of this run: \`${input.rawDir}\` (temporary).`, '');
  for (const run of input.runs) {
    if (!run.ran) continue;
    L.push(`<details><summary>bench/${run.name}.ts</summary>`, '', '```text', run.text.replace(/```/g, "'''"), '```', '', '</details>', '');
  }
  L.push('## Reproduce', '');
  L.push(
    '```sh',
    'npm run bench:report                   # every bench + the fault suite, writes bench/REPORT.md and bench/report/*.svg',
    'REPORT_QUICK=1 npm run bench:report    # reduced sizes: a smoke test (a few minutes)',
    'REPORT_BENCHES=kernel,core npm run bench:report   # a subset (kernel, core, sessions, faults, suite)',
    '```',
    '',
    'Every `BENCH_*` / `FUZZ_*` variable of the benches passes through (e.g. `BENCH_SESSIONS_MANY=2000`); see the head of each bench file.',
    '',
  );
  return L.join('\n');
}
