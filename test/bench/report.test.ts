// The pure parts of the benchmark report (bench/lib/report-model.ts, bench/lib/svg-chart.ts):
// parsing a bench's output, judging the goals, the markdown, and SVG that is well-formed XML
// with the expected series. No root, no lab.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type BenchRun,
  buildCharts,
  distributions,
  evaluateGoals,
  figuresOf,
  fmtRatio,
  fmtValue,
  msPerUnit,
  parseTestSummary,
  type ReportInput,
  renderReport,
  sessionCost,
  splitOutput,
  unitOf,
} from '../../bench/lib/report-model.ts';
import { boxChart, cdfChart, escapeXml, lineChart, logTicks, niceTicks, percentile } from '../../bench/lib/svg-chart.ts';

// ---------------------------------------------------------------------------------------
// a small XML well-formedness check: tags balance, attributes are quoted, text has no raw < or &

interface El {
  name: string;
  attrs: Record<string, string>;
  /** data-series of the series group it is in */
  inSeries?: string;
}

function checkXml(xml: string): { root: string; elements: El[] } {
  let s = xml.replace(/^<\?xml[^?]*\?>\s*/, '');
  const stack: string[] = [];
  const seriesStack: (string | undefined)[] = [];
  const elements: El[] = [];
  let root = '';
  const text = (t: string): void => {
    assert.ok(!/&(?!(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/.test(t), `raw & in text: ${t.slice(0, 80)}`);
  };
  while (s.length > 0) {
    const lt = s.indexOf('<');
    if (lt < 0) {
      text(s);
      assert.equal(s.trim(), '', 'text after the root element');
      break;
    }
    text(s.slice(0, lt));
    if (stack.length === 0) assert.equal(s.slice(0, lt).trim(), '', 'text outside the root element');
    const gt = s.indexOf('>', lt);
    assert.ok(gt > lt, 'unterminated tag');
    const tag = s.slice(lt + 1, gt);
    s = s.slice(gt + 1);
    if (tag.startsWith('/')) {
      const name = tag.slice(1).trim();
      assert.equal(stack.pop(), name, `closing </${name}> does not match`);
      seriesStack.pop();
      continue;
    }
    const selfClosing = tag.endsWith('/');
    const body = selfClosing ? tag.slice(0, -1) : tag;
    const m = /^([A-Za-z_][\w:.-]*)/.exec(body);
    assert.ok(m, `bad tag <${tag}>`);
    const name = m[1] as string;
    const rest = body.slice(name.length);
    const attrs: Record<string, string> = {};
    const attrRe = /\s+([A-Za-z_][\w:.-]*)="([^"<]*)"/y;
    let pos = 0;
    for (;;) {
      attrRe.lastIndex = pos;
      const a = attrRe.exec(rest);
      if (!a) break;
      assert.ok(!((a[1] as string) in attrs), `duplicate attribute ${a[1]} in <${name}>`);
      text(a[2] as string);
      attrs[a[1] as string] = a[2] as string;
      pos = attrRe.lastIndex;
    }
    assert.equal(rest.slice(pos).trim(), '', `bad attributes in <${tag}>`);
    if (stack.length === 0) {
      assert.equal(root, '', 'a second root element');
      root = name;
    }
    const inSeries = attrs.class === 'series' ? attrs['data-series'] : seriesStack[seriesStack.length - 1];
    elements.push({ name, attrs, ...(inSeries !== undefined ? { inSeries } : {}) });
    if (!selfClosing) {
      stack.push(name);
      seriesStack.push(inSeries);
    }
  }
  assert.deepEqual(stack, [], 'unclosed elements');
  return { root, elements };
}

const seriesNames = (xml: string): string[] => checkXml(xml).elements.filter((e) => e.attrs.class === 'series').map((e) => e.attrs['data-series'] as string);

// ---------------------------------------------------------------------------------------
// fixtures: outputs as the benches print them

const machine = { cpus: 2, model: 'Test CPU', kernel: '6.1.0-test', node: 'v20.20.2', connman: '1.41' };
const range = (n: number, f: (i: number) => number): number[] => Array.from({ length: n }, (_, i) => f(i));

function kernelJson(dumpMs: number, addMs: number, ipAddMs: number, p99: number): Record<string, unknown> {
  return {
    bench: 'kernel',
    machine,
    runs: 7,
    figures: {
      'dump 10004 IPv4 routes (ms)': { netsession: dumpMs, ip: 60 },
      'add 1000 rules + 1000 routes (ms)': { netsession: addMs, ip: ipAddMs },
      'delete 1000 rules + 1000 routes (ms)': { netsession: 10, ip: 20 },
      'reconcile 2000 objects, up (ms)': { netsession: 30 },
      'change → mirror, our netlink change, p50 (ms)': { netsession: 0.2 },
      'change → mirror, our netlink change, p99 (ms)': { netsession: p99 },
    },
    results: {},
    samples: { 'change → mirror, our netlink change (ms)': { netsession: range(100, (i) => 0.1 + i / 100) } },
  };
}

function coreJson(): Record<string, unknown> {
  return {
    bench: 'core',
    machine,
    rounds: { up: 20, down: 50, many: 50 },
    figures: {
      'carrier up → ready, p50 (ms)': { netsession: 40, connman: 120 },
      'carrier up → ready, p99 (ms)': { netsession: 80, connman: 200 },
      'carrier up → online, p50 (ms)': { netsession: 60, connman: 150 },
      'carrier up → online, p99 (ms)': { netsession: 90, connman: 300 },
      'carrier down → State PropertyChanged, p50 (ms)': { netsession: 1.2, connman: 1 },
      'carrier down → State PropertyChanged, p99 (ms)': { netsession: 7, connman: 3 },
      'RSS idle, 3 uplinks (MiB)': { netsession: 70, connman: 5 },
      'RSS idle, 50 uplinks, staged carrier (MiB)': { netsession: 80, connman: 6 },
    },
    three: {
      netsession: { upReadyMs: range(20, (i) => 40 + i), upOnlineMs: range(20, (i) => 60 + i), downMs: range(50, (i) => 1 + i / 10) },
      connman: { upReadyMs: range(20, (i) => 120 + i * 4), upOnlineMs: [], downMs: range(50, (i) => 1 + i / 20) },
    },
    many: {},
    errors: [],
  };
}

function sessionsJson(many: number): Record<string, unknown> {
  const lab = (base: number) => ({ getPropertiesMs: range(30, (i) => base / 4 + i / 100), replyMs: range(30, (i) => base + i / 10), firstMs: range(30, (i) => base * 2 + i / 10) });
  return {
    bench: 'sessions',
    machine,
    sizes: { rounds: 30, concurrent: 10, held: 1000, many, perConn: 100, window: 10, manyWindow: 100, capS: 240, tcp: { seconds: 3, runs: 5, concurrency: 16 } },
    figures: {
      'Manager.GetProperties round trip, p50 (ms; the floor of bus + client)': { netsession: 0.3, connman: 0.25 },
      'CreateSession → reply, p50 (ms)': { netsession: 1, connman: 2 },
      'CreateSession → first Update, p99 (ms)': { netsession: 3, connman: 2 },
      'RSS idle, 3 uplinks, no session (MiB)': { netsession: 70, connman: 5 },
      'link change seen after carrier came back under 1000 sessions': { netsession: 1, connman: 0 },
      'link change seen after the burst of 1000': { netsession: 1, connman: 0 },
      'TCP connections/s through a session, 1 session': { netsession: 5000, connman: 4800 },
      [`sessions created of ${many} (cap 240 s)`]: { netsession: many, connman: 3000 },
      [`create ${many} sessions, 100 in flight: sessions/s`]: { netsession: 900, connman: 100 },
      [`RSS with ${many} sessions held (MiB)`]: { netsession: 150, connman: 40 },
      [`TCP rate with ${many} sessions / with 1`]: { netsession: 0.95, connman: 0.5 },
    },
    labA: { netsession: { ...lab(1), rssIdleKiB: 70_000, held: { firstUpdates: 1000, rssWithKiB: 80_000, allFirstMs: 2000 } }, connman: { ...lab(2), rssIdleKiB: 5000, held: { firstUpdates: 1000, rssWithKiB: 9000, allFirstMs: 9000 } } },
    labB: { netsession: { burst: { allFirstMs: 1500 } }, connman: { burst: { allFirstMs: 6000 } } },
    labC: {
      netsession: { rssBeforeKiB: 72_000, many: { firstUpdates: many, rssWithKiB: 150 * 1024, allFirstMs: 11_000, progress: range(20, (i) => i).map((i) => ({ n: ((i + 1) * many) / 20, ms: (i + 1) * 500, rssKiB: 72_000 + i * 4000 })) } },
      connman: { rssBeforeKiB: 5000, many: { firstUpdates: 3000, rssWithKiB: 40 * 1024, progress: [{ n: 3000, ms: 240_000, rssKiB: 40_000 }] } },
    },
    errors: [],
  };
}

function benchRun(name: string, json: Record<string, unknown> | undefined, extra: Partial<BenchRun> = {}): BenchRun {
  return { name, command: `node --import tsx bench/${name}.ts`, ran: true, exitCode: 0, durationS: 12, json, text: '| figure |\n| --- |', ...extra };
}

function input(runs: BenchRun[], over: Partial<ReportInput> = {}): ReportInput {
  return {
    date: '2026-11-21T14:00:00Z',
    command: 'npm run bench:report',
    quick: false,
    machine,
    runs,
    suite: { command: 'node scripts/run-tests.mjs test/faults', ran: true, exitCode: 0, durationS: 100, tests: 7, pass: 7, fail: 0 },
    rawDir: '/tmp/x',
    totalS: 600,
    ...over,
  };
}

const full = (): ReportInput =>
  input([benchRun('kernel', kernelJson(12, 8, 16, 0.9)), benchRun('core', coreJson()), benchRun('sessions', sessionsJson(10_000))]);

const goal = (i: ReportInput, id: string) => {
  const g = evaluateGoals(i).find((x) => x.id === id);
  assert.ok(g, `goal ${id}`);
  return g;
};

// ---------------------------------------------------------------------------------------

describe('bench output parsing', () => {
  test('the last line that is a JSON object, and the text before it', () => {
    const out = '| a | b |\n| --- | --- |\n\nnotes\n\n{"bench":"core","figures":{}}\n\n';
    const r = splitOutput(out);
    assert.equal(r.json?.bench, 'core');
    assert.equal(r.text, '| a | b |\n| --- | --- |\n\nnotes');
    assert.equal(splitOutput('table\nno json').json, undefined);
    assert.equal(splitOutput('{"a":1}\nafter').json, undefined, 'only the last line counts');
    assert.equal(splitOutput('{broken').json, undefined);
  });

  test('figures: the convention, the ip reference of the kernel bench, and flat numbers', () => {
    const k = figuresOf(benchRun('kernel', kernelJson(12, 8, 16, 0.9)));
    assert.deepEqual(k.get('add 1000 rules + 1000 routes (ms)'), { netsession: 8, peer: 16 });
    assert.deepEqual(k.get('reconcile 2000 objects, up (ms)'), { netsession: 30, peer: null });
    const s = figuresOf(benchRun('sessions', { figures: { 'x (ms)': { netsession: null, connman: 2 } } }));
    assert.deepEqual(s.get('x (ms)'), { netsession: null, peer: 2 });
    const flat = figuresOf(benchRun('kernel', { 'dump.ours.ms': 3, note: 'x' }));
    assert.deepEqual([...flat.keys()], ['dump.ours.ms']);
  });

  test("node's test runner summary, TAP or spec", () => {
    assert.deepEqual(parseTestSummary('ok 1 - a\n    not ok 2 - b leaks\nnot ok 3 - suite\n# tests 5\n# pass 4\n# fail 1\n# skipped 0\n'), {
      tests: 5,
      pass: 4,
      fail: 1,
      skipped: 0,
      failed: ['b leaks', 'suite'],
    });
    assert.deepEqual(parseTestSummary('ℹ tests 2\nℹ pass 2\nℹ fail 0\n'), { tests: 2, pass: 2, fail: 0, skipped: undefined, failed: [] });
  });

  test('units and values', () => {
    assert.equal(msPerUnit('restart → converged (s)'), 1000);
    assert.equal(msPerUnit('p99 (ms; the floor)'), 1);
    assert.equal(msPerUnit('RSS (MiB)'), undefined);
    assert.equal(msPerUnit('sessions/s'), undefined);
    assert.equal(fmtValue('link change seen after x', 1), 'yes');
    assert.equal(fmtValue('link change seen after x', 0), 'no');
    assert.equal(fmtValue('a (ms)', 0.1234), '0.12');
    assert.equal(fmtValue('a (ms)', 123.4), '123');
    assert.equal(fmtValue('a (ms)', null), '–');
    assert.equal(fmtRatio(0.0038), '0.0038');
    assert.equal(fmtRatio(1.234), '1.23');
    assert.equal(fmtRatio(undefined), '–');
    assert.equal(unitOf('p99 (ms; the floor)'), 'ms');
    assert.equal(unitOf('RSS with 10 sessions held (MiB)'), 'MiB');
    assert.equal(unitOf('sessions created of 10 (cap 240 s)'), '');
  });
});

describe('goals', () => {
  test('kernel: absolute bounds and ratios against ip', () => {
    const i = full();
    assert.equal(goal(i, 'kernel-dump').verdict, 'met');
    assert.equal(goal(i, 'kernel-apply').verdict, 'met');
    assert.equal(goal(i, 'kernel-mirror').verdict, 'met');
    const bad = input([benchRun('kernel', kernelJson(31, 20, 16, 2.5))]);
    assert.equal(goal(bad, 'kernel-dump').verdict, 'not met');
    const apply = goal(bad, 'kernel-apply');
    assert.equal(apply.verdict, 'not met');
    assert.deepEqual(
      apply.checks.map((c) => c.verdict),
      ['not met', 'met'],
    );
    assert.equal(goal(bad, 'kernel-mirror').verdict, 'not met');
  });

  test('core: ratio ≤ 1.0 per figure and p99 ≤ 5 ms', () => {
    const i = full();
    assert.equal(goal(i, 'core-up').verdict, 'met');
    assert.equal(goal(i, 'core-up').checks.length, 4);
    const down = goal(i, 'core-down');
    assert.equal(down.verdict, 'not met');
    assert.deepEqual(
      down.checks.map((c) => [c.figure, c.verdict]),
      [
        ['carrier down → State PropertyChanged, p50 (ms)', 'not met'],
        ['carrier down → State PropertyChanged, p99 (ms)', 'not met'],
      ],
    );
    assert.equal(goal(i, 'core-down-p99').verdict, 'not met');
  });

  test('sessions: every latency and throughput figure, sizes, link changes seen', () => {
    const i = full();
    const all = goal(i, 'sessions-vs-connman');
    const by = Object.fromEntries(all.checks.map((c) => [c.figure, c.verdict]));
    assert.equal(by['CreateSession → reply, p50 (ms)'], 'met');
    assert.equal(by['CreateSession → first Update, p99 (ms)'], 'not met');
    assert.equal(by['Manager.GetProperties round trip, p50 (ms; the floor of bus + client)'], 'not met');
    assert.equal(by['TCP connections/s through a session, 1 session'], 'met');
    assert.equal(by['create 10000 sessions, 100 in flight: sessions/s'], 'met');
    assert.equal(by['RSS idle, 3 uplinks, no session (MiB)'], undefined, 'RSS is no latency or throughput figure');
    assert.equal(by['TCP rate with 10000 sessions / with 1'], undefined, 'a ratio of rates has its own goal');
    assert.match(all.checks.find((c) => c.figure.startsWith('create 10000'))?.note ?? '', /ConnMan created 3000 of 10000/);
    assert.equal(all.verdict, 'not met');
    assert.equal(goal(i, 'sessions-rss').verdict, 'met');
    assert.equal(goal(i, 'sessions-tcp').verdict, 'met');
    assert.equal(goal(i, 'sessions-seen').verdict, 'met', "ConnMan going blind is not netsession's goal");
  });

  test('a figure ConnMan never finished is no worse for netsession', () => {
    const j = sessionsJson(10_000);
    (j.figures as Record<string, unknown>)['uplink down → all 10000 sessions notified (ms)'] = { netsession: 2300, connman: null };
    (j.figures as Record<string, unknown>)['uplink down → all 1000 sessions notified (ms)'] = { netsession: 200, connman: null };
    (j.labC as Record<string, Record<string, unknown>>).connman!.down = { of: 10_000, notified: 0, allMs: null };
    const c = goal(input([benchRun('sessions', j)]), 'sessions-vs-connman').checks;
    const many = c.find((x) => x.figure.startsWith('uplink down → all 10000'));
    assert.equal(many?.verdict, 'met');
    assert.equal(many?.note, 'ConnMan did not finish: told 0 of 10000 sessions');
    const held = c.find((x) => x.figure.startsWith('uplink down → all 1000 '));
    assert.equal(held?.verdict, 'not measured', 'no record of what ConnMan did: not judged');
  });

  test('a goal for 10,000 sessions is not judged on a smaller run', () => {
    const small = input([benchRun('sessions', sessionsJson(500))], { quick: true });
    const rss = goal(small, 'sessions-rss');
    assert.equal(rss.verdict, 'not measured');
    assert.match(rss.checks[0]?.note ?? '', /500 sessions, not 10,000.*met at that size/);
    assert.equal(goal(small, 'sessions-tcp').verdict, 'not measured');
  });

  test('missing benches and figures are not measured, with the reason', () => {
    const none = input([benchRun('faults', undefined, { ran: false, error: 'bench/faults.ts does not exist (yet)' })], { suite: undefined });
    const g = goal(none, 'faults-getprops');
    assert.equal(g.verdict, 'not measured');
    assert.equal(g.checks[0]?.note, 'bench/faults.ts does not exist (yet)');
    assert.equal(goal(none, 'kernel-dump').checks[0]?.note, 'bench kernel not run');
    assert.equal(goal(none, 'faults-clean').verdict, 'not measured');
    const noJson = input([benchRun('core', undefined, { error: 'printed no JSON result line' })]);
    assert.equal(goal(noJson, 'core-up').checks[0]?.note, 'printed no JSON result line');
  });

  test('reliability: the faults bench figures (any wording, any time unit) and the fault suite', () => {
    const faults = {
      bench: 'faults',
      machine,
      params: { flips: 1000, stormMs: 10_000, probeMs: 10, rounds: 5, sessions: 1000, seed: 7 },
      figures: {
        'GetProperties idle, p99 (ms)': { netsession: 60, connman: 1 },
        'GetProperties during 1000 flips in 10 s, p99 (ms)': { netsession: 12, connman: 30 },
        'restart → bus name owned (node start-up included), p50 (ms)': { netsession: 1500 },
        'restart after SIGKILL → converged, p50 (s)': { netsession: 0.4 },
        'restart after SIGKILL → converged, max (s)': { netsession: 1.2 },
        'crashes over the storm': { netsession: 0 },
      },
      samples: { 'GetProperties during a flap storm (ms)': { netsession: [1, 2, 3], connman: [2, 4, 8] } },
    };
    const i = input([benchRun('faults', faults)]);
    const gp = goal(i, 'faults-getprops');
    assert.equal(gp.verdict, 'met', 'the idle p99 is no storm figure');
    assert.deepEqual(
      gp.checks.map((c) => c.figure),
      ['GetProperties during 1000 flips in 10 s, p99 (ms)'],
    );
    const restart = goal(i, 'faults-restart');
    assert.equal(restart.verdict, 'not met', '1.2 s > 1 s');
    assert.equal(restart.checks.length, 2, 'the convergence figures, not the time to the bus name');
    const md = renderReport(i, evaluateGoals(i), []);
    assert.match(md, /#### Restart after SIGKILL\n\n\*Workload:\* netsessiond only: 1,000 sessions held/);
    const clean = goal(i, 'faults-clean');
    assert.equal(clean.verdict, 'met');
    assert.equal(clean.checks.length, 2);
    const failed = input([benchRun('faults', faults)], { suite: { command: 'x', ran: true, exitCode: 1, durationS: 5, pass: 6, fail: 1, failed: ['routes come back'] } });
    assert.equal(goal(failed, 'faults-clean').verdict, 'not met');
    assert.match(goal(failed, 'faults-clean').checks[0]?.note ?? '', /6 passed, 1 failed \(routes come back\)/);
    // its samples become a distribution
    const d = distributions(i).find((x) => x.bench === 'faults');
    assert.equal(d?.title, 'GetProperties during a flap storm');
    assert.deepEqual(
      d?.series.map((s) => s.daemon),
      ['netsession', 'connman'],
    );
  });
});

describe('report markdown', () => {
  test('machine, tables per bench with ratio and verdicts, the goal list, chart links', () => {
    const i = full();
    const charts = buildCharts(i);
    const md = renderReport({ ...i, revision: 'abc1234 + uncommitted changes' }, evaluateGoals(i), charts);
    assert.match(md, /netsession at abc1234 \+ uncommitted changes/);
    assert.match(md, /^# netsession benchmark report/);
    assert.match(md, /\| CPU \| 2 × Test CPU \|/);
    assert.match(md, /\| ConnMan \| 1\.41/);
    assert.match(md, /\| figure \| netsession \| ip \(iproute2\) \| ratio \| goal \| met\? \|/);
    assert.match(md, /\| figure \| netsession \| ConnMan \| ratio \| goal \| met\? \|/);
    assert.match(md, /\| add 1000 rules \+ 1000 routes \(ms\) \| 8 \| 16 \| 0\.50 \| ratio vs ip -batch ≤ 1\.0 \| ✅ met \|/);
    assert.match(md, /\| carrier down → State PropertyChanged, p99 \(ms\) \| 7 \| 3 \| 2\.33 \| ratio ≤ 1\.0; p99 ≤ 5 ms \| ❌ NOT met; ❌ NOT met \|/);
    assert.match(md, /\*Workload:\* a lab of 3 uplinks/);
    assert.match(md, /#### Lab C: TCP and many sessions/);
    // every goal in the summary
    for (const g of evaluateGoals(i)) assert.ok(md.includes(g.text), g.text);
    assert.match(md, /13 goals of the earlier issues: \*\*\d+ met\*\*/);
    for (const c of charts) assert.ok(md.includes(`](report/${c.file})`), c.file);
    assert.match(md, /<details><summary>bench\/core\.ts<\/summary>/);
  });

  test('a quick run says so', () => {
    const md = renderReport(input([], { quick: true }), [], []);
    assert.match(md, /\*\*Quick run\*\*/);
  });
});

describe('svg charts', () => {
  test('ticks', () => {
    assert.deepEqual(niceTicks(0, 9.3), [0, 2, 4, 6, 8, 10]);
    assert.deepEqual(niceTicks(0, 10_000), [0, 2000, 4000, 6000, 8000, 10_000]);
    assert.deepEqual(logTicks(0.3, 4000), [0.1, 1, 10, 100, 1000, 10_000]);
    assert.deepEqual(logTicks(0.3, 40), [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100]);
    assert.equal(percentile([5, 1, 3, 2, 4], 50), 3);
    assert.equal(percentile(range(100, (x) => x + 1), 99), 99);
  });

  test('escaping', () => {
    assert.equal(escapeXml(`a<b>&"c'`), 'a&lt;b&gt;&amp;&quot;c&apos;');
  });

  test('a CDF: well-formed SVG, one step path per series, names and percentiles in the legend', () => {
    const svg = cdfChart({
      title: 'CreateSession → reply <&>',
      xLabel: 'ms',
      unit: 'ms',
      series: [
        { name: 'netsession', color: '#00f', values: [1, 2, 3, 4] },
        { name: 'ConnMan', color: '#f80', values: [10, 20, 30, 400], dash: '7 3' },
        { name: 'empty', color: '#000', values: [] },
      ],
    });
    const x = checkXml(svg);
    assert.equal(x.root, 'svg');
    assert.deepEqual(seriesNames(svg), ['netsession', 'ConnMan']);
    assert.match(svg, /netsession — n=4, p50 2 ms, p99 4 ms/);
    assert.match(svg, /\(log scale\)/, '1…400 spans more than 50×');
    assert.match(svg, /CreateSession → reply &lt;&amp;&gt;/);
    const paths = x.elements.filter((e) => e.name === 'path');
    assert.equal(paths.length, 2);
    for (const p of paths) assert.match(p.attrs.d ?? '', /^M[\d.]+,[\d.]+( L[\d.]+,[\d.]+)+$/);
  });

  test('a box plot: a group per row and series', () => {
    const svg = boxChart({
      title: 'Latency',
      xLabel: 'ms',
      rows: [
        { label: 'a', series: [{ name: 'netsession', color: '#00f', values: [1, 2, 3] }, { name: 'ConnMan', color: '#f80', values: [2, 3, 4] }] },
        { label: 'b', series: [{ name: 'netsession', color: '#00f', values: [0.1, 0.2] }] },
        { label: 'c', series: [{ name: 'ConnMan', color: '#f80', values: [] }] },
      ],
      log: true,
    });
    const x = checkXml(svg);
    const groups = x.elements.filter((e) => e.attrs.class === 'series');
    assert.deepEqual(
      groups.map((g) => [g.attrs['data-row'], g.attrs['data-series']]),
      [
        ['a', 'netsession'],
        ['a', 'ConnMan'],
        ['b', 'netsession'],
      ],
    );
  });

  test('a line chart: series with their points', () => {
    const svg = lineChart({
      title: 'RSS',
      xLabel: 'sessions',
      yLabel: 'MiB',
      series: [
        { name: 'netsession', color: '#00f', points: [[0, 70], [1000, 80], [10_000, 150]] },
        { name: 'ConnMan', color: '#f80', points: [[1000, 9]], line: false },
      ],
    });
    const x = checkXml(svg);
    assert.deepEqual(seriesNames(svg), ['netsession', 'ConnMan']);
    assert.equal(x.elements.filter((e) => e.name === 'circle' && e.inSeries === 'netsession').length, 3);
    assert.equal(x.elements.filter((e) => e.name === 'circle' && e.inSeries === 'ConnMan').length, 1);
    assert.equal(x.elements.filter((e) => e.name === 'path' && e.attrs.stroke === '#f80').length, 0, 'a single point without a line');
    assert.match(svg, />10,000</);
  });

  test("the report's charts: distributions of both daemons, cost against session count", () => {
    const i = full();
    const charts = buildCharts(i);
    const files = charts.map((c) => c.file);
    assert.deepEqual(files, [
      'latency-overview.svg',
      'cdf-sessions-create-reply.svg',
      'cdf-sessions-create-first-update.svg',
      'cdf-sessions-getproperties.svg',
      'cdf-core-carrier-up-ready.svg',
      'cdf-core-carrier-up-online.svg',
      'cdf-core-carrier-down.svg',
      'cdf-kernel-change-to-mirror-our-netlink-change-ms.svg',
      'sessions-rss.svg',
      'sessions-create-time.svg',
    ]);
    for (const c of charts) checkXml(c.svg);
    const by = (f: string): string => charts.find((c) => c.file === f)?.svg ?? '';
    assert.deepEqual(seriesNames(by('cdf-sessions-create-reply.svg')), ['netsession', 'ConnMan']);
    assert.deepEqual(seriesNames(by('cdf-core-carrier-up-online.svg')), ['netsession'], 'ConnMan never went online: no empty series');
    const overview = seriesNames(by('latency-overview.svg'));
    assert.equal(overview.filter((s) => s === 'ConnMan').length, 5);
    assert.deepEqual(seriesNames(by('sessions-rss.svg')), [
      'netsession: settled (0, 1000, 10000 held)',
      'netsession: while creating (lab C, 100 in flight)',
      'ConnMan: settled (0, 1000, 10000 held)',
      'ConnMan: while creating (lab C, 100 in flight)',
    ]);
    assert.deepEqual(seriesNames(by('sessions-create-time.svg')), [
      'netsession: create 10000 (lab C, 100 in flight)',
      'netsession: create 1000 (lab A, 10 in flight)',
      'netsession: create 1000 (lab B, all at once)',
      'ConnMan: create 10000 (lab C, 100 in flight)',
      'ConnMan: create 1000 (lab A, 10 in flight)',
      'ConnMan: create 1000 (lab B, all at once)',
    ]);
  });

  test('session cost: settled figures at 0 / held / many, and the creation curve', () => {
    const c = sessionCost(full());
    const ns = c.rss.find((s) => s.daemon === 'netsession');
    assert.deepEqual(
      ns?.figures.map((p) => [p.sessions, Math.round(p.value)]),
      [
        [0, 68],
        [1000, 78],
        [10_000, 150],
      ],
    );
    assert.equal(ns?.during.length, 21);
    const t = c.time.find((s) => s.daemon === 'connman');
    assert.deepEqual(t?.during, [
      { sessions: 0, value: 0 },
      { sessions: 3000, value: 240 },
    ]);
  });
});
