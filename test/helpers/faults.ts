// For the fault suite (test/faults): what the kernel holds of ours in a lab's device
// namespace, whether the daemon is alive, its memory and descriptors, its log, and the
// sessions its object tree still has.
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import dbus, { type MessageBus } from 'dbus-next';
import { unwrap, waitFor } from './connman.ts';
import { kernelCanon } from './ip-json.ts';

/** netsessiond's protocol tag on routes and rules, and the start of its table range (defaults) */
export const OUR_PROTO = 83;
export const OUR_TABLES = 65536;
const SOURCE_RULE_PRIORITY = 10950;

export interface KernelSnapshot {
  /** our rules, IPv4 and IPv6 (canonical lines) */
  rules: string[];
  /** routes in our tables, and ours anywhere else (main) */
  routes: string[];
  /** `nft list table inet netsession` without counter values; '' when the table does not exist */
  nft: string;
}

function nftTable(ns: string): string {
  const r = spawnSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'table', 'inet', 'netsession'], { encoding: 'utf8' });
  if (r.status !== 0) return '';
  return r.stdout.replace(/ packets \d+ bytes \d+/g, '').replace(/ expires \S+/g, '');
}

export function kernelSnapshot(ns: string): KernelSnapshot {
  const c = kernelCanon(ns);
  return {
    rules: c.rules.filter((l) => l.endsWith(` proto=${OUR_PROTO}`)),
    routes: c.routes.filter((l) => Number(/ t=(\d+) /.exec(l)?.[1] ?? 0) >= OUR_TABLES || l.includes(` proto=${OUR_PROTO} `)),
    nft: nftTable(ns),
  };
}

/** Rules that belong to sessions (not the services' `from <address>` rules, which follow addresses). */
export const sessionRules = (s: KernelSnapshot): string[] => s.rules.filter((l) => !new RegExp(`^rule \\d+ ${SOURCE_RULE_PRIORITY} `).test(l));

/** '' when equal, else what differs (a few lines of each kind). */
export function diffSnapshots(before: KernelSnapshot, now: KernelSnapshot): string {
  const out: string[] = [];
  for (const k of ['rules', 'routes'] as const) {
    const extra = now[k].filter((l) => !before[k].includes(l));
    const missing = before[k].filter((l) => !now[k].includes(l));
    if (extra.length > 0) out.push(`${extra.length} extra ${k}: ${JSON.stringify(extra.slice(0, 4))}`);
    if (missing.length > 0) out.push(`${missing.length} missing ${k}: ${JSON.stringify(missing.slice(0, 4))}`);
  }
  if (before.nft !== now.nft) out.push(`nft table differs: before ${JSON.stringify(before.nft.slice(0, 300))}, now ${JSON.stringify(now.nft.slice(0, 300))}`);
  return out.join('; ');
}

/** The process's state letter (R, S, D, Z …), undefined when it is gone. */
export function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return undefined;
  }
}

export const isAlive = (pid: number): boolean => {
  const s = procState(pid);
  return s !== undefined && s !== 'Z' && s !== 'X';
};

/** VmRSS in KiB */
export function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? Number.NaN);
}

export const fdCount = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

/** Threads and children of a process (a leaked helper process shows here). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      out.push(...readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number));
    } catch {
      /* the thread ended */
    }
  }
  return out.sort((a, b) => a - b);
}

export const fileSize = (path: string): number => {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
};

/** Log lines written since `offset` that speak of a bug: errors, uncaught exceptions, failed reconciles or handlers. */
export function logProblems(path: string, offset: number): string[] {
  const text = readFileSync(path).subarray(offset).toString('utf8');
  return text.split('\n').filter((l) => / ERROR |uncaught exception|reconcile failed|D-Bus handler failed|unhandled/i.test(l));
}

/** A bus connection that is ready (its unique name known) and never throws on a broken socket. */
export async function openBus(address: string): Promise<MessageBus> {
  const bus = dbus.sessionBus({ busAddress: address });
  bus.on('error', () => {
    /* a connection the test closes or the bus drops: the calls on it fail instead */
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no D-Bus connection to ${address} within 10 s`)), 10_000);
    bus.once('connect', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  return bus;
}

/**
 * Leaves the bus. Calls that still come in on the half-closed connection are taken without a
 * word: dbus-next would answer them on a closed stream and throw outside of any test.
 */
export function closeBus(bus: MessageBus): void {
  bus.addMethodHandler(() => true);
  bus.disconnect();
}

export const uniqueName = (bus: MessageBus): string => (bus as unknown as { name: string }).name;

/** ConnMan's session path: /sessions/<owner with ':' and '.' as '_'><notifier>. */
export const sessionPathOf = (owner: string, notifier: string): string => `/sessions/${owner.replace(/[:.]/g, '_')}${notifier}`;

/** Every object under /sessions with the net.connman.Session interface (from the daemon's introspection). */
export async function sessionObjects(bus: MessageBus, root = '/sessions'): Promise<string[]> {
  const out: string[] = [];
  const walk = async (path: string): Promise<void> => {
    let xml: string;
    try {
      const r = await bus.call(new dbus.Message({ destination: 'net.connman', path, interface: 'org.freedesktop.DBus.Introspectable', member: 'Introspect' }));
      xml = String(r?.body[0] ?? '');
    } catch {
      return;
    }
    if (xml.includes('<interface name="net.connman.Session">')) out.push(path);
    const children = [...xml.matchAll(/<node\s+name="([^"]+)"\s*\/?>/g)].map((m) => m[1]!);
    for (const c of children) await walk(`${path === '/' ? '' : path}/${c}`);
  };
  await walk(root);
  return out.sort();
}

/** The kernel's state once it stops changing (the same twice, half a second apart). */
export async function stableSnapshot(ns: string): Promise<KernelSnapshot> {
  let last = kernelSnapshot(ns);
  return await waitFor(
    'the kernel to settle',
    async () => {
      await new Promise((r) => setTimeout(r, 500));
      const now = kernelSnapshot(ns);
      const same = diffSnapshots(last, now) === '';
      last = now;
      return same ? now : undefined;
    },
    15_000,
    0,
  );
}

type Variant = InstanceType<typeof dbus.Variant>;

/** Every service online with IPv4 and IPv6 (address and router), so what the kernel holds for them is complete. */
export async function servicesSettled(bus: MessageBus, count = 3): Promise<[string, Record<string, Variant>][]> {
  return await waitFor(
    `${count} services online, IPv4 and IPv6`,
    async () => {
      const r = await bus.call(new dbus.Message({ destination: 'net.connman', path: '/', interface: 'net.connman.Manager', member: 'GetServices' }));
      const list = (r?.body[0] ?? []) as [string, Record<string, Variant>][];
      const up = (p: Record<string, Variant>, k: string): boolean => Boolean((unwrap(p[k]) as Record<string, unknown> | undefined)?.Gateway);
      return list.length === count && list.every(([, p]) => p.State?.value === 'online' && up(p, 'IPv4') && up(p, 'IPv6')) ? list : undefined;
    },
    30_000,
    100,
  );
}

/** Processes in a network namespace. */
export function netnsPids(ns: string): number[] {
  const r = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' });
  return r.stdout.split(/\s+/).filter(Boolean).map(Number).sort((a, b) => a - b);
}

/** The network namespaces whose names start with a prefix. */
export function namespacesOf(prefix: string): string[] {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  return r.stdout.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith(prefix)).sort();
}
