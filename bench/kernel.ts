// Kernel-layer benchmark (issue: foundation). Prints figures; asserts nothing.
//   dump of 10,000 routes: ours vs `ip -j route show table all`
//   applying 1,000 rules + 1,000 routes (and deleting them): ours vs `ip -batch`
//   event latency from a change to the mirror (p50/p99)
// Runs in its own network namespace (nsb-<pid>), removed at the end.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { cpus, release } from 'node:os';
import { type KernelMirror, openKernelMirror } from '../src/kernel/kernel-mirror.ts';
import { AF_INET } from '../src/kernel/netlink/constants.ts';
import { Nft } from '../src/kernel/nft/nft.ts';
import { DEFAULT_OWNERSHIP } from '../src/kernel/reconciler/ownership.ts';
import { Reconciler } from '../src/kernel/reconciler/reconciler.ts';
import { type RtOp, Rtnetlink } from '../src/kernel/rtnetlink/client.ts';
import { normalizeRoute } from '../src/kernel/rtnetlink/route.ts';
import { normalizeRule } from '../src/kernel/rtnetlink/rule.ts';

const NS = `nsb-${process.pid}`;
const RUNS = Number(process.env.BENCH_RUNS ?? 7);

const ms = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const f = (x: number): string => x.toFixed(2);

function ip(args: string[], input?: string): void {
  const r = spawnSync('ip', ['-n', NS, ...args], { input, encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
}

async function ipBatchTimed(lines: string): Promise<number> {
  const t0 = process.hrtime.bigint();
  const p = spawn('ip', ['-n', NS, '-batch', '-'], { stdio: ['pipe', 'ignore', 'inherit'] });
  p.stdin.end(lines);
  const [code] = (await once(p, 'close')) as [number];
  if (code !== 0) throw new Error('ip -batch failed');
  return ms(t0);
}

async function main(): Promise<void> {
  spawnSync('ip', ['netns', 'add', NS]);
  const results: Record<string, number | string> = {};
  /** raw samples of the latency figures (for the report's distribution charts) */
  const samples: Record<string, { netsession: number[] }> = {};
  let mirror: KernelMirror | undefined;
  let rtnl: Rtnetlink | undefined;
  try {
    ip(['link', 'set', 'lo', 'up']);
    ip(['link', 'add', 'b0', 'type', 'veth', 'peer', 'name', 'b1']);
    ip(['link', 'set', 'b0', 'up']);
    ip(['link', 'set', 'b1', 'up']);
    ip(['addr', 'add', '192.0.2.10/24', 'dev', 'b0']);
    const oif = Number(JSON.parse(spawnSync('ip', ['-n', NS, '-j', 'link', 'show', 'b0'], { encoding: 'utf8' }).stdout)[0].ifindex);
    rtnl = Rtnetlink.open({ netns: NS });

    // ---- 1. dump of 10,000 routes ----
    let batch = '';
    for (let i = 0; i < 10000; i++) batch += `route add 198.18.${i >> 8}.${i & 255}/32 via 192.0.2.1 table 500\n`;
    ip(['-batch', '-'], batch);
    const oursDump: number[] = [];
    const ipDump: number[] = [];
    let count = 0;
    for (let i = 0; i < RUNS; i++) {
      let t0 = process.hrtime.bigint();
      count = (await rtnl.dumpRoutes(AF_INET)).length;
      oursDump.push(ms(t0));
      t0 = process.hrtime.bigint();
      const p = spawn('ip', ['-n', NS, '-j', '-4', 'route', 'show', 'table', 'all'], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      p.stdout.setEncoding('utf8').on('data', (d: string) => {
        out += d;
      });
      await once(p, 'close');
      JSON.parse(out);
      ipDump.push(ms(t0));
    }
    results['dump.routes'] = count;
    results['dump.ours.ms'] = median(oursDump);
    results['dump.ip_json.ms'] = median(ipDump);
    ip(['route', 'flush', 'table', '500']);

    // ---- 2. apply 1,000 rules + 1,000 routes ----
    const routes = Array.from({ length: 1000 }, (_, i) =>
      normalizeRoute({ table: 0x10000 + i, dst: 'default', gateway: '192.0.2.1', oif, protocol: DEFAULT_OWNERSHIP.protocol }),
    );
    const rules = Array.from({ length: 1000 }, (_, i) =>
      normalizeRule({ family: AF_INET, priority: 10000 + (i % 1000), protocol: DEFAULT_OWNERSHIP.protocol, table: 0x10000 + i, fwmark: 0x10000 + i, fwmask: 0x1ffff }),
    );
    const adds: RtOp[] = [...routes.map((route) => ({ op: 'add' as const, route })), ...rules.map((rule) => ({ op: 'add' as const, rule }))];
    const dels: RtOp[] = [...rules.map((rule) => ({ op: 'delete' as const, rule })), ...routes.map((route) => ({ op: 'delete' as const, route }))];
    let ipAdd = '';
    let ipDel = '';
    for (let i = 0; i < 1000; i++) ipAdd += `route add default via 192.0.2.1 dev b0 table ${0x10000 + i} proto 83\n`;
    for (let i = 0; i < 1000; i++) ipAdd += `rule add fwmark ${0x10000 + i}/0x1ffff table ${0x10000 + i} prio ${10000 + i} proto 83\n`;
    for (let i = 0; i < 1000; i++) ipDel += `rule del fwmark ${0x10000 + i}/0x1ffff table ${0x10000 + i} prio ${10000 + i}\n`;
    for (let i = 0; i < 1000; i++) ipDel += `route del default table ${0x10000 + i}\n`;
    const oursAdd: number[] = [];
    const oursDel: number[] = [];
    const ipAddT: number[] = [];
    const ipDelT: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      let t0 = process.hrtime.bigint();
      const ra = await rtnl.apply(adds);
      oursAdd.push(ms(t0));
      if (ra.some((r) => !r.ok)) throw new Error('apply failed');
      t0 = process.hrtime.bigint();
      const rd = await rtnl.apply(dels);
      oursDel.push(ms(t0));
      if (rd.some((r) => !r.ok)) throw new Error('delete failed');
      ipAddT.push(await ipBatchTimed(ipAdd));
      ipDelT.push(await ipBatchTimed(ipDel));
    }
    results['apply.ours.add.ms'] = median(oursAdd);
    results['apply.ip_batch.add.ms'] = median(ipAddT);
    results['apply.ours.del.ms'] = median(oursDel);
    results['apply.ip_batch.del.ms'] = median(ipDelT);

    // the same through the reconciler (plan + apply + settle), from empty and back
    mirror = await openKernelMirror({ netns: NS, rtnl });
    const rec = new Reconciler(mirror, new Nft({ netns: NS }), DEFAULT_OWNERSHIP);
    const recUp: number[] = [];
    const recNoop: number[] = [];
    const recDown: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      let t0 = process.hrtime.bigint();
      await rec.reconcile({ routes, rules });
      recUp.push(ms(t0));
      t0 = process.hrtime.bigint();
      const again = await rec.reconcile({ routes, rules });
      recNoop.push(ms(t0));
      if (!again.unchanged) throw new Error('second reconcile changed something');
      t0 = process.hrtime.bigint();
      await rec.reconcile({ routes: [], rules: [] });
      recDown.push(ms(t0));
    }
    results['reconcile.2000.up.ms'] = median(recUp);
    results['reconcile.2000.noop.ms'] = median(recNoop);
    results['reconcile.2000.down.ms'] = median(recDown);

    // ---- 3. change → mirror latency ----
    const lat: number[] = [];
    const latIp: number[] = [];
    let waiting: { dst: string; resolve: (t: bigint) => void } | undefined;
    mirror.onEvent((ev) => {
      if (waiting && ev.kind === 'route' && ev.op === 'new' && ev.route.dst === waiting.dst) {
        const w = waiting;
        waiting = undefined;
        w.resolve(process.hrtime.bigint());
      }
    });
    const other = Rtnetlink.open({ netns: NS });
    for (let i = 0; i < 1000; i++) {
      const dst = `198.18.${10 + (i >> 8)}.${i & 255}`;
      const seen = new Promise<bigint>((resolve) => {
        waiting = { dst, resolve };
      });
      const t0 = process.hrtime.bigint();
      await other.applyOne({ op: 'add', route: normalizeRoute({ table: 600, dst, gateway: '192.0.2.1', oif, protocol: 83 }) });
      lat.push(Number((await seen) - t0) / 1e6);
    }
    other.close();
    // a foreign process making the change: a long-lived `ip -batch` fed one line at a time
    const feeder = spawn('ip', ['-n', NS, '-batch', '-'], { stdio: ['pipe', 'ignore', 'inherit'] });
    for (let i = 0; i < 300; i++) {
      const dst = `198.18.${20 + (i >> 8)}.${i & 255}`;
      const seen = new Promise<bigint>((resolve) => {
        waiting = { dst, resolve };
      });
      const t0 = process.hrtime.bigint();
      feeder.stdin.write(`route add ${dst}/32 via 192.0.2.1 table 601\n`);
      latIp.push(Number((await seen) - t0) / 1e6);
    }
    feeder.stdin.end();
    await once(feeder, 'close');
    results['event.netlink.p50.ms'] = pct(lat, 50);
    results['event.netlink.p99.ms'] = pct(lat, 99);
    results['event.ip_batch.p50.ms'] = pct(latIp, 50);
    results['event.ip_batch.p99.ms'] = pct(latIp, 99);
    samples['change → mirror, our netlink change (ms)'] = { netsession: lat.map((x) => +x.toFixed(4)) };
    samples['change → mirror, foreign ip -batch line (ms)'] = { netsession: latIp.map((x) => +x.toFixed(4)) };
  } finally {
    mirror?.close();
    rtnl?.close();
    spawnSync('ip', ['netns', 'del', NS]);
  }

  const r = results as Record<string, number>;
  const ratio = (a: number, b: number): string => (a / b).toFixed(2);
  const goal = (ok: boolean): string => (ok ? 'met' : 'NOT met');
  console.log(`netsession kernel benchmark — ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}, median of ${RUNS} runs`);
  console.log('');
  console.log('| figure | netsession | reference | ratio | goal |');
  console.log('| --- | ---: | ---: | ---: | --- |');
  console.log(`| dump ${r['dump.routes']} IPv4 routes (ms) | ${f(r['dump.ours.ms']!)} | ip -j route: ${f(r['dump.ip_json.ms']!)} | ${ratio(r['dump.ours.ms']!, r['dump.ip_json.ms']!)} | ≤ 30 ms: ${goal(r['dump.ours.ms']! <= 30)} |`);
  console.log(`| add 1000 rules + 1000 routes (ms) | ${f(r['apply.ours.add.ms']!)} | ip -batch: ${f(r['apply.ip_batch.add.ms']!)} | ${ratio(r['apply.ours.add.ms']!, r['apply.ip_batch.add.ms']!)} | ratio ≤ 1.0: ${goal(r['apply.ours.add.ms']! <= r['apply.ip_batch.add.ms']!)} |`);
  console.log(`| delete them (ms) | ${f(r['apply.ours.del.ms']!)} | ip -batch: ${f(r['apply.ip_batch.del.ms']!)} | ${ratio(r['apply.ours.del.ms']!, r['apply.ip_batch.del.ms']!)} | ratio ≤ 1.0: ${goal(r['apply.ours.del.ms']! <= r['apply.ip_batch.del.ms']!)} |`);
  console.log(`| reconcile 2000 objects: up / no-op / down (ms) | ${f(r['reconcile.2000.up.ms']!)} / ${f(r['reconcile.2000.noop.ms']!)} / ${f(r['reconcile.2000.down.ms']!)} | | | |`);
  console.log(`| change → mirror, our netlink change (ms) | p50 ${f(r['event.netlink.p50.ms']!)}, p99 ${f(r['event.netlink.p99.ms']!)} | | | p99 ≤ 2 ms: ${goal(r['event.netlink.p99.ms']! <= 2)} |`);
  console.log(`| change → mirror, foreign ip -batch line (ms) | p50 ${f(r['event.ip_batch.p50.ms']!)}, p99 ${f(r['event.ip_batch.p99.ms']!)} | | | |`);
  console.log('');
  // the reference is iproute2 (`ip`), not ConnMan: the figures' second value is named `ip`
  const vsIp = (netsession: number | undefined, ipRef: number | undefined): { netsession: number | null; ip: number | null } => ({ netsession: netsession ?? null, ip: ipRef ?? null });
  const fig = (netsession: number | undefined): { netsession: number | null } => ({ netsession: netsession ?? null });
  const json = {
    bench: 'kernel',
    machine: { cpus: cpus().length, model: cpus()[0]?.model, kernel: release(), node: process.version },
    runs: RUNS,
    figures: {
      [`dump ${r['dump.routes']} IPv4 routes (ms)`]: vsIp(r['dump.ours.ms'], r['dump.ip_json.ms']),
      'add 1000 rules + 1000 routes (ms)': vsIp(r['apply.ours.add.ms'], r['apply.ip_batch.add.ms']),
      'delete 1000 rules + 1000 routes (ms)': vsIp(r['apply.ours.del.ms'], r['apply.ip_batch.del.ms']),
      'reconcile 2000 objects, up (ms)': fig(r['reconcile.2000.up.ms']),
      'reconcile 2000 objects, no-op (ms)': fig(r['reconcile.2000.noop.ms']),
      'reconcile 2000 objects, down (ms)': fig(r['reconcile.2000.down.ms']),
      'change → mirror, our netlink change, p50 (ms)': fig(r['event.netlink.p50.ms']),
      'change → mirror, our netlink change, p99 (ms)': fig(r['event.netlink.p99.ms']),
      'change → mirror, foreign ip -batch line, p50 (ms)': fig(r['event.ip_batch.p50.ms']),
      'change → mirror, foreign ip -batch line, p99 (ms)': fig(r['event.ip_batch.p99.ms']),
    },
    results,
    samples,
  };
  console.log(JSON.stringify(json));
}

await main();
