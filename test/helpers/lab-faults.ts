// For the kernel, network and process fault tests (test/faults/kernel-faults.test.ts,
// process-faults.test.ts), on top of helpers/faults.ts: what the kernel holds of ours
// including our addresses, a Manager.GetProperties prober, carrier flips on the ISP side of
// a lab's uplinks, the daemon's log since an offset, the services by interface, the
// daemon's heap after a full garbage collection, netlink drops.
import { spawnSync } from 'node:child_process';
import { closeSync, fstatSync, openSync, readFileSync, readSync, readdirSync, rmSync, statSync } from 'node:fs';
import dbus, { type MessageBus } from 'dbus-next';
import { Rtnetlink } from '../../src/kernel/rtnetlink/client.ts';
import type { LabInfo } from '../../src/lab/topology.ts';
import { unwrap, waitFor } from './connman.ts';
import { type KernelSnapshot, OUR_PROTO, diffSnapshots, kernelSnapshot, rssKiB } from './faults.ts';

export interface OursSnapshot extends KernelSnapshot {
  /** addresses tagged with our protocol: `<ifname> <address>/<prefix>` */
  addresses: string[];
}

/** Addresses carrying our protocol tag (IFA_PROTO; iproute2 6.1 does not print it, so through rtnetlink). */
export async function ourAddresses(ns: string): Promise<string[]> {
  const rtnl = Rtnetlink.open({ netns: ns });
  try {
    const names = new Map((await rtnl.dumpLinks()).map((l) => [l.index, l.name]));
    return (await rtnl.dumpAddresses())
      .filter((a) => a.protocol === OUR_PROTO)
      .map((a) => `${names.get(a.index) ?? a.index} ${a.address}/${a.prefixLen}`)
      .sort();
  } finally {
    rtnl.close();
  }
}

export async function oursSnapshot(ns: string): Promise<OursSnapshot> {
  return { ...kernelSnapshot(ns), addresses: await ourAddresses(ns) };
}

/** '' when equal, else what differs. */
export function diffOurs(before: OursSnapshot, now: OursSnapshot): string {
  const out = [diffSnapshots(before, now)].filter(Boolean);
  const extra = now.addresses.filter((a) => !before.addresses.includes(a));
  const missing = before.addresses.filter((a) => !now.addresses.includes(a));
  if (extra.length > 0) out.push(`extra addresses: ${JSON.stringify(extra)}`);
  if (missing.length > 0) out.push(`missing addresses: ${JSON.stringify(missing)}`);
  return out.join('; ');
}

/** Our kernel state once it stops changing (the same twice, 600 ms apart). */
export async function stableOurs(ns: string, mask: (s: OursSnapshot) => OursSnapshot = (s) => s, timeoutMs = 20_000): Promise<OursSnapshot> {
  let last = mask(await oursSnapshot(ns));
  return await waitFor(
    'the kernel to settle',
    async () => {
      await new Promise((r) => setTimeout(r, 600));
      const now = mask(await oursSnapshot(ns));
      const same = diffOurs(last, now) === '';
      last = now;
      return same ? now : undefined;
    },
    timeoutMs,
    0,
  );
}

/** Waits until our kernel state equals `want` (after `mask`); the difference in the error otherwise. */
export async function untilOurs(what: string, ns: string, want: OursSnapshot, timeoutMs: number, mask: (s: OursSnapshot) => OursSnapshot = (s) => s): Promise<number> {
  const t0 = performance.now();
  let diff = '';
  await waitFor(
    what,
    async () => {
      diff = diffOurs(want, mask(await oursSnapshot(ns)));
      return diff === '';
    },
    timeoutMs,
    50,
  ).catch((e: unknown) => {
    throw new Error(`${(e as Error).message}: ${diff}`);
  });
  return performance.now() - t0;
}

/**
 * Leaves one uplink out of a snapshot: its table, routes through its interface, its
 * addresses and its entries in the nft maps (for comparisons while that uplink's lease may
 * expire: the uplink must be no session's service and not the default one meanwhile).
 */
export function withoutUplink(s: OursSnapshot, u: { ifname: string; ifindex: number; table: number }): OursSnapshot {
  return {
    rules: s.rules.filter((l) => !l.includes(` t=${u.table} `)),
    routes: s.routes.filter((l) => !l.includes(` t=${u.table} `) && !l.includes(` dev=${u.ifindex} `)),
    nft: s.nft.replace(new RegExp(`,?\\s*"${u.ifname}" : [0-9a-f.:]+`, 'g'), ''),
    addresses: s.addresses.filter((a) => !a.startsWith(`${u.ifname} `)),
  };
}

// ---- the daemon over D-Bus ----------------------------------------------------------------

type Variant = InstanceType<typeof dbus.Variant>;
export type Props = Record<string, unknown>;

export async function call(bus: MessageBus, path: string, iface: string, member: string, signature = '', body: unknown[] = []): Promise<unknown[]> {
  const r = await bus.call(new dbus.Message({ destination: 'net.connman', path, interface: iface, member, signature, body }));
  return r?.body ?? [];
}

export interface ServiceView {
  path: string;
  id: string;
  ifname: string;
  state: string;
  props: Props;
}

/** Manager.GetServices, in the daemon's order, variants unwrapped. */
export async function services(bus: MessageBus): Promise<ServiceView[]> {
  const [list] = (await call(bus, '/', 'net.connman.Manager', 'GetServices')) as [[string, Record<string, Variant>][]];
  return list.map(([path, raw]) => {
    const props = unwrap(raw) as Props;
    return { path, id: path.split('/').pop() ?? '', ifname: String((props.Ethernet as Props | undefined)?.Interface ?? ''), state: String(props.State), props };
  });
}

export const ipv4Of = (s: ServiceView): Props => (s.props.IPv4 ?? {}) as Props;
export const ipv6Of = (s: ServiceView): Props => (s.props.IPv6 ?? {}) as Props;

/** Waits until `ok` holds for the services (by interface name); returns them. */
export async function untilServices(bus: MessageBus, what: string, ok: (by: Map<string, ServiceView>) => boolean, timeoutMs: number): Promise<Map<string, ServiceView>> {
  let last = '';
  return await waitFor(
    what,
    async () => {
      const by = new Map((await services(bus)).map((s) => [s.ifname, s]));
      last = [...by.values()].map((s) => `${s.ifname}=${s.state}`).join(' ');
      return ok(by) ? by : undefined;
    },
    timeoutMs,
    100,
  ).catch((e: unknown) => {
    throw new Error(`${(e as Error).message} (services: ${last})`);
  });
}

/** Online with IPv4 (and IPv6 with a router, unless the service has IPv6 off). */
export function fullyOnline(s: ServiceView | undefined): boolean {
  if (s?.state !== 'online' || !ipv4Of(s).Gateway) return false;
  const v6 = ipv6Of(s);
  return s.props['IPv6.Configuration'] !== undefined && (s.props['IPv6.Configuration'] as Props).Method === 'off' ? true : Boolean(v6.Gateway);
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Manager.GetProperties sent every `everyMs` (whether the previous one was answered or not), each timed. */
export class GetPropertiesProber {
  readonly latencies: number[] = [];
  readonly failures: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly bus: MessageBus,
    private readonly everyMs: number,
    private readonly timeoutMs: number,
  ) {}

  start(): this {
    this.timer = setInterval(() => {
      const t0 = performance.now();
      const p = withTimeout(call(this.bus, '/', 'net.connman.Manager', 'GetProperties'), this.timeoutMs, 'Manager.GetProperties').then(
        () => {
          this.latencies.push(performance.now() - t0);
        },
        (e: unknown) => {
          this.failures.push(e instanceof Error ? e.message : String(e));
        },
      );
      this.pending.add(p);
      void p.finally(() => this.pending.delete(p));
    }, this.everyMs);
    return this;
  }

  async stop(): Promise<this> {
    clearInterval(this.timer);
    await Promise.allSettled([...this.pending]);
    return this;
  }

  get max(): number {
    return this.latencies.reduce((a, b) => Math.max(a, b), 0);
  }

  pct(p: number): number {
    return pct(this.latencies, p);
  }

  summary(): string {
    const f = (x: number): string => x.toFixed(1);
    return `${this.latencies.length} calls, p50 ${f(this.pct(50))} ms, p99 ${f(this.pct(99))} ms, max ${f(this.max)} ms, ${this.failures.length} unanswered`;
  }
}

/** Nearest-rank percentile; NaN for no samples. */
export function pct(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number;
}

// ---- the lab --------------------------------------------------------------------------------

/** The ISP sides of a lab's uplinks, set up or down with our own netlink requests (the device side gets or loses carrier). */
export class CarrierFlipper {
  private constructor(private readonly links: { rtnl: Rtnetlink; index: number }[]) {}

  static async open(lab: LabInfo): Promise<CarrierFlipper> {
    const links: { rtnl: Rtnetlink; index: number }[] = [];
    try {
      for (const u of lab.uplinks) {
        const rtnl = Rtnetlink.open({ netns: u.ispNetns });
        links.push({ rtnl, index: -1 });
        const link = (await rtnl.dumpLinks()).find((l) => l.name === u.ispIfname);
        if (link === undefined) throw new Error(`${u.ispIfname} not found in ${u.ispNetns}`);
        links[links.length - 1]!.index = link.index;
      }
    } catch (e) {
      for (const l of links) l.rtnl.close();
      throw e;
    }
    return new CarrierFlipper(links);
  }

  async set(i: number, up: boolean): Promise<void> {
    const l = this.links[i];
    if (l === undefined) throw new Error(`no uplink ${i}`);
    await l.rtnl.applyOne({ op: 'set', link: { index: l.index, up } });
  }

  close(): void {
    for (const l of this.links) l.rtnl.close();
  }
}

/** The daemon's log from a byte offset on. */
export function logSince(path: string, offset: number): string {
  return readFileSync(path).subarray(offset).toString('utf8');
}

/** Drops counted on the netlink sockets of a process's network namespace that listen to multicast groups. */
export function netlinkDrops(pid: number): number {
  let drops = 0;
  for (const line of readFileSync(`/proc/${pid}/net/netlink`, 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    // sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
    if (f.length >= 10 && f[1] === '0' && f[3] !== '00000000') drops += Number(f[8]);
  }
  return drops;
}

/** `ip -n <ns> -batch -` with the lines given; throws with ip's stderr. */
export function ipBatchIn(ns: string, lines: readonly string[], family: '' | '-6' = '', force = false): void {
  const r = spawnSync('ip', ['-n', ns, ...(family ? [family] : []), ...(force ? ['-force'] : []), '-batch', '-'], { input: `${lines.join('\n')}\n`, encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0 && !force) throw new Error(`ip -batch: ${r.stderr.trim()}`);
}

export function ipIn(ns: string, ...args: string[]): string {
  const r = spawnSync('ip', ['-n', ns, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip -n ${ns} ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

export type J = Record<string, unknown>;
export const ipJson = (ns: string, ...args: string[]): J[] => JSON.parse(ipIn(ns, '-j', ...args) || '[]') as J[];

// ---- memory -----------------------------------------------------------------------------

/**
 * The daemon's heap after a full garbage collection (KiB), and its RSS then: SIGUSR2 makes
 * a daemon started with --heapsnapshot-signal=SIGUSR2 write a heap snapshot into its working
 * directory (the lab's), which collects first; the snapshot's nodes add up to the live heap.
 */
export async function heapAfterGc(dir: string, pid: number): Promise<{ heap: number; rss: number }> {
  const old = new Set(readdirSync(dir));
  process.kill(pid, 'SIGUSR2');
  const file = await waitFor(
    'the heap snapshot',
    async () => {
      const f = readdirSync(dir).find((x) => x.endsWith('.heapsnapshot') && !old.has(x));
      if (!f) return undefined;
      const size = statSync(`${dir}/${f}`).size;
      await new Promise((r) => setTimeout(r, 300));
      return size > 0 && statSync(`${dir}/${f}`).size === size && isComplete(`${dir}/${f}`) ? `${dir}/${f}` : undefined;
    },
    60_000,
    200,
  );
  const rss = rssKiB(pid);
  const snap = JSON.parse(readFileSync(file, 'utf8')) as { snapshot: { meta: { node_fields: string[] } }; nodes: number[] };
  rmSync(file);
  const fields = snap.snapshot.meta.node_fields;
  const selfSize = fields.indexOf('self_size');
  let heap = 0;
  for (let k = selfSize; k < snap.nodes.length; k += fields.length) heap += snap.nodes[k]!;
  return { heap: heap / 1024, rss };
}

function isComplete(file: string): boolean {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const tail = Buffer.alloc(Math.min(16, size));
    readSync(fd, tail, 0, tail.length, size - tail.length);
    return tail.toString('utf8').trimEnd().endsWith('}');
  } finally {
    closeSync(fd);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
