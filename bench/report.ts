// The benchmark report: runs the benchmarks one after the other (each its own child process,
// each measuring netsession and ConnMan 1.41 side by side in twin labs), then the fault
// suite, and writes bench/REPORT.md (machine, figures and ratios, every performance goal of
// issues 2–5 marked met or not met) with SVG charts in bench/report/.
//
//   npm run bench:report                  (node --import tsx bench/report.ts)
//   env: REPORT_QUICK=1     reduced sizes (a smoke test; what a variable set by hand says wins)
//        REPORT_BENCHES=kernel,core,sessions,faults,suite   which parts (default: all;
//                           faults only when bench/faults.ts exists)
//        REPORT_OUT=bench   where REPORT.md and report/ go
//        REPORT_WAIT_S=900  how long a bench waits while another run of it (someone else's,
//                           on the same fixed lab names) is going on
//        REPORT_FROM=/tmp/netsession-bench/report-…/input.json   writes the report again from
//                           the results of an earlier run (no bench runs)
//        BENCH_* / FUZZ_*   pass through to the benches and the fault suite
// Raw output of every child: /tmp/netsession-bench/report-<time>/. The pure parts (parsing,
// goals, markdown, charts) are in lib/report-model.ts and lib/svg-chart.ts.
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../src/lab/processes.ts';
import { type BenchRun, buildCharts, evaluateGoals, parseTestSummary, type ReportInput, renderReport, type SuiteRun, splitOutput } from './lib/report-model.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const QUICK = process.env.REPORT_QUICK === '1';
const OUT = join(ROOT, process.env.REPORT_OUT ?? 'bench');
const STAMP = new Date().toISOString().replace(/[:.]/g, '-');
const RAW = `/tmp/netsession-bench/report-${STAMP}`;
const PARTS = new Set((process.env.REPORT_BENCHES ?? 'kernel,core,sessions,faults,suite').split(',').map((s) => s.trim()));
for (const p of PARTS) if (!['kernel', 'core', 'sessions', 'faults', 'suite'].includes(p)) throw new Error(`REPORT_BENCHES: unknown part ${p} (kernel, core, sessions, faults, suite)`);

interface BenchSpec {
  name: string;
  script: string;
  /** the fixed lab names it builds (a second run of the same bench at the same time breaks both) */
  labs: string[];
  /** REPORT_QUICK sizes (a variable already set wins) */
  quick: Record<string, string>;
  timeoutS: number;
}

const BENCHES: BenchSpec[] = [
  { name: 'kernel', script: 'bench/kernel.ts', labs: [], quick: { BENCH_RUNS: '3' }, timeoutS: 600 },
  { name: 'core', script: 'bench/core.ts', labs: ['bcore3', 'bcoremny'], quick: { BENCH_UP_ROUNDS: '3', BENCH_DOWN_ROUNDS: '5', BENCH_SKIP_MANY: '1' }, timeoutS: 1800 },
  {
    name: 'sessions',
    script: 'bench/sessions.ts',
    labs: ['bsess', 'bsessbst', 'bsessmny'],
    quick: {
      BENCH_CREATE_ROUNDS: '30',
      BENCH_CONCURRENT: '10',
      BENCH_SESSIONS_HELD: '100',
      BENCH_SESSIONS_MANY: '500',
      BENCH_SESSIONS_PER_CONN: '50',
      BENCH_SESSIONS_CAP_S: '60',
      BENCH_TCP_SECONDS: '1',
      BENCH_TCP_RUNS: '1',
    },
    timeoutS: 2700,
  },
  // issue 5: GetProperties latency during a link flap storm, restart after SIGKILL
  {
    name: 'faults',
    script: 'bench/faults.ts',
    labs: ['bfaults'],
    quick: { BENCH_FLIPS: '200', BENCH_STORM_MS: '3000', BENCH_RESTART_ROUNDS: '2', BENCH_SESSIONS: '100' },
    timeoutS: 1800,
  },
];
const SUITE = { args: ['scripts/run-tests.mjs', 'test/faults'], quick: { FUZZ_CALLS: '5000' }, timeoutS: 2400 };

/** the child being waited for, so that an interruption stops it (by its pid) first */
let child: { stop(sig: NodeJS.Signals): void } | undefined;
let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    interrupted = true;
    process.stderr.write(`report: ${sig}, stopping the running bench (it cleans up its labs)\n`);
    if (child !== undefined) child.stop('SIGTERM');
    else process.exit(130);
  });
}

function quickEnv(quick: Record<string, string>): Record<string, string> {
  if (!QUICK) return {};
  return Object.fromEntries(Object.entries(quick).filter(([k]) => process.env[k] === undefined));
}

interface ChildResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  durationS: number;
  timedOut: boolean;
}

/**
 * Runs one child: stdout kept (and to <name>.out), stderr shown (and to <name>.err). A bench
 * stops its labs itself on SIGTERM; the fault suite's runner does not pass a signal on to the
 * test process it waits for, so `group` starts it in its own process group, stopped as one.
 */
function runChild(name: string, args: string[], env: Record<string, string>, timeoutS: number, group = false): Promise<ChildResult> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const out = createWriteStream(join(RAW, `${name}.out`));
    const err = createWriteStream(join(RAW, `${name}.err`));
    const p = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: group });
    const stop = (sig: NodeJS.Signals): void => {
      if (p.pid === undefined || p.exitCode !== null || p.signalCode !== null) return;
      try {
        if (group) process.kill(-p.pid, sig);
        else p.kill(sig);
      } catch {
        // gone already
      }
    };
    child = { stop };
    let stdout = '';
    let timedOut = false;
    p.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      out.write(d);
    });
    p.stderr.setEncoding('utf8').on('data', (d: string) => {
      process.stderr.write(d);
      err.write(d);
    });
    let kill: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      process.stderr.write(`report: ${name} still running after ${timeoutS} s, SIGTERM to pid ${p.pid}\n`);
      stop('SIGTERM');
      kill = setTimeout(() => stop('SIGKILL'), 120_000);
    }, timeoutS * 1000);
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      if (kill) clearTimeout(kill);
      child = undefined;
      out.end();
      err.end();
      resolve({ code, signal, stdout, durationS: (performance.now() - t0) / 1000, timedOut });
    });
  });
}

const WAIT_S = Number(process.env.REPORT_WAIT_S ?? 900);

/** Another run of this bench (someone else's): its process, or its labs. */
async function busy(spec: BenchSpec): Promise<string | undefined> {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').join(' ');
    } catch {
      continue;
    }
    if (cmd.includes(spec.script) && !cmd.includes('bench/report.ts')) return `pid ${d} runs ${spec.script}`;
  }
  if (spec.labs.length === 0) return undefined;
  const ns = (await run('ip', ['netns', 'list'], { check: false })).stdout;
  const lab = spec.labs.find((l) => ns.includes(`nsl-${l}-`));
  return lab === undefined ? undefined : `lab ${lab} exists`;
}

/** Waits (at most REPORT_WAIT_S) until no other run of the bench is going on; says how long it waited, or why it gave up. */
async function waitFree(spec: BenchSpec): Promise<string | undefined> {
  const t0 = performance.now();
  let why = await busy(spec);
  if (why === undefined) return undefined;
  process.stderr.write(`report: ${spec.name}: ${why}: another run of it would break this one (same labs); waiting up to ${WAIT_S} s\n`);
  while (why !== undefined && performance.now() - t0 < WAIT_S * 1000 && !interrupted) {
    await new Promise((r) => setTimeout(r, 5000));
    why = await busy(spec);
  }
  const s = ((performance.now() - t0) / 1000).toFixed(0);
  return why === undefined ? `waited ${s} s for another run of the bench to end` : `ran while another run of the bench was going on (${why}) after waiting ${s} s: figures may be disturbed`;
}

async function runBench(spec: BenchSpec): Promise<BenchRun> {
  const command = `node --import tsx ${spec.script}`;
  if (!existsSync(join(ROOT, spec.script))) return { name: spec.name, command, ran: false, exitCode: null, durationS: 0, json: undefined, text: '', error: `${spec.script} does not exist (yet)` };
  const waited = await waitFree(spec);
  const env = quickEnv(spec.quick);
  process.stderr.write(`report: ${command}${Object.keys(env).length > 0 ? ` (${Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ')})` : ''}\n`);
  const r = await runChild(spec.name, ['--import', 'tsx', spec.script], env, spec.timeoutS);
  const { json, text } = splitOutput(r.stdout);
  let error: string | undefined;
  if (r.timedOut) error = `stopped after ${spec.timeoutS} s`;
  else if (json === undefined) error = 'printed no JSON result line';
  else if (json.bench !== undefined && json.bench !== spec.name) error = `its JSON says bench ${String(json.bench)}`;
  process.stderr.write(`report: ${spec.name} done in ${r.durationS.toFixed(0)} s, exit ${r.code ?? r.signal}${error ? ` (${error})` : ''}\n`);
  return { name: spec.name, command, ran: true, exitCode: r.code, signal: r.signal, durationS: r.durationS, json, text, env, ...(error ? { error } : {}), ...(waited ? { note: waited } : {}) };
}

async function runSuite(): Promise<SuiteRun> {
  const command = `node ${SUITE.args.join(' ')}`;
  const env = quickEnv(SUITE.quick);
  process.stderr.write(`report: ${command}${Object.keys(env).length > 0 ? ` (${Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ')})` : ''}\n`);
  const r = await runChild('fault-suite', SUITE.args, env, SUITE.timeoutS, true);
  const counts = parseTestSummary(r.stdout);
  process.stderr.write(`report: fault suite done in ${r.durationS.toFixed(0)} s, exit ${r.code ?? r.signal}\n`);
  return {
    command,
    ran: true,
    exitCode: r.code,
    durationS: r.durationS,
    ...counts,
    env,
    ...(r.timedOut ? { note: `stopped after ${SUITE.timeoutS} s` } : env.FUZZ_CALLS ? { note: `reduced fuzzing (FUZZ_CALLS=${env.FUZZ_CALLS})` } : {}),
  };
}

/** REPORT.md and the charts from the results of a run. */
function write(input: ReportInput): void {
  const goals = evaluateGoals(input);
  const charts = buildCharts(input);
  const chartDir = join(OUT, 'report');
  mkdirSync(chartDir, { recursive: true });
  // the charts of an earlier report go: only this run's are linked
  for (const f of readdirSync(chartDir)) if (f.endsWith('.svg')) rmSync(join(chartDir, f));
  for (const c of charts) writeFileSync(join(chartDir, c.file), c.svg);
  writeFileSync(join(OUT, 'REPORT.md'), renderReport(input, goals, charts, 'report'));
  console.log(`report: ${join(OUT, 'REPORT.md')} and ${charts.length} charts in ${chartDir} (the run took ${(input.totalS / 60).toFixed(1)} min; raw output in ${input.rawDir})`);
  for (const g of goals) console.log(`  ${g.verdict === 'met' ? 'met         ' : g.verdict === 'not met' ? 'NOT MET     ' : 'not measured'}  ${g.issue}: ${g.text}`);
}

async function main(): Promise<void> {
  if (process.env.REPORT_FROM !== undefined) {
    write(JSON.parse(readFileSync(process.env.REPORT_FROM, 'utf8')) as ReportInput);
    return;
  }
  const t0 = performance.now();
  mkdirSync(RAW, { recursive: true });
  const cpu = cpus();
  const connman = (await run('connmand', ['-v'], { check: false }).catch(() => ({ stdout: '' }))).stdout.trim();
  const machine: ReportInput['machine'] = {
    cpus: cpu.length,
    model: cpu[0]?.model ?? 'cpu',
    kernel: release(),
    node: process.version,
    connman,
    memGiB: totalmem() / 2 ** 30,
    loadStart: loadavg(),
  };
  const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const head = (await run('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { check: false }).catch(() => ({ stdout: '' }))).stdout.trim();
  // uncommitted changes other than the report's own output
  const dirty = (await run('git', ['-C', ROOT, 'status', '--porcelain', '--untracked-files=no', '--', '.', ':!bench/REPORT.md', ':!bench/report'], { check: false }).catch(() => ({ stdout: '' }))).stdout.trim();
  const revision = head === '' ? undefined : dirty === '' ? head : `${head} + uncommitted changes`;
  const runs: BenchRun[] = [];
  for (const spec of BENCHES) {
    if (interrupted) break;
    if (!PARTS.has(spec.name)) continue;
    runs.push(await runBench(spec));
  }
  let suite: SuiteRun | undefined;
  if (!interrupted) {
    suite = PARTS.has('suite')
      ? await runSuite()
      : { command: `node ${SUITE.args.join(' ')}`, ran: false, exitCode: null, durationS: 0, note: 'left out (REPORT_BENCHES)' };
  }
  if (interrupted) {
    process.stderr.write('report: interrupted, no report written\n');
    process.exit(130);
  }
  machine.loadEnd = loadavg();
  const envShown = [
    ...(QUICK ? ['REPORT_QUICK=1'] : []),
    ...Object.entries(process.env)
      .filter(([k]) => /^(BENCH_|FUZZ_|FAULTS_)/.test(k) || (k === 'REPORT_BENCHES' && process.env.REPORT_BENCHES !== undefined))
      .map(([k, v]) => `${k}=${v}`),
  ];
  const input: ReportInput = {
    date,
    command: `${envShown.length > 0 ? `${envShown.join(' ')} ` : ''}npm run bench:report`,
    ...(revision ? { revision } : {}),
    quick: QUICK,
    machine,
    runs,
    suite,
    rawDir: RAW,
    totalS: (performance.now() - t0) / 1000,
  };
  // first: the results survive a failure to write the report
  writeFileSync(join(RAW, 'input.json'), JSON.stringify(input));
  write(input);
  const broken = runs.filter((r) => r.ran && r.error !== undefined);
  if (broken.length > 0) {
    console.log(`report: ${broken.map((r) => `${r.name}: ${r.error}`).join('; ')}`);
    process.exitCode = 1;
  }
}

await main();
