// Shared by the CLI, client and connmanctl tests: a lab with netsessiond, the CLI as a child
// process, and the kernel's view of the device namespace (what `ip` says, not what the
// daemon says).
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ConnmanClient, type ServiceEntry } from '../../src/client/index.ts';
import { type LabUpResult, labDown, labUp } from '../../src/lab/lab.ts';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = join(ROOT, 'bin/netsessionctl.js');
export const isRoot = process.getuid?.() === 0;
export const rootSkip = !isRoot && 'needs root (network namespaces)';

/** Environment for children: nothing of the test runner or of our loader leaks in. */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.NODE_TEST_CONTEXT;
  delete env.NODE_OPTIONS;
  delete env.DBUS_SYSTEM_BUS_ADDRESS;
  return { ...env, ...extra };
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a program to its end (async, so the test's own bus connection keeps reading). */
export function run(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = childEnv(), timeoutMs = 30_000): Promise<RunResult> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

/** `netsessionctl ARGS…` */
export function ctl(args: readonly string[], env?: NodeJS.ProcessEnv): Promise<RunResult> {
  return run(process.execPath, [CLI, ...args], env);
}

/** A long-running child whose output is collected as it comes. */
export interface Running {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  /** resolves with the exit code (or 128+n for a signal) */
  exited: Promise<number>;
}

export function start(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = childEnv()): Running {
  const child = spawn(cmd, args, { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => {
    out += s;
  });
  child.stderr?.setEncoding('utf8').on('data', (s: string) => {
    err += s;
  });
  const exited = new Promise<number>((resolve) => {
    child.on('close', (code, signal) => resolve(code ?? (signal === 'SIGINT' ? 130 : signal === 'SIGTERM' ? 143 : 137)));
  });
  return { child, out: () => out, err: () => err, exited };
}

export async function eventually<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 10_000, stepMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
    await sleep(stepMs);
  }
}

/** Unique lab name for this test file: letters/digits, at most 8. */
export function labNameFor(prefix: string): string {
  return `${prefix}${process.pid % 1000}`;
}

export interface TestLab {
  info: LabUpResult;
  name: string;
  bus: string;
  netns: string;
  client: ConnmanClient;
  /** the service on an interface, as the daemon lists it now */
  serviceOn(ifname: string): Promise<ServiceEntry>;
  down(): Promise<void>;
}

/** Brings a lab up with netsessiond and waits until every service is online. */
export async function startLab(prefix: string, uplinks = 3): Promise<TestLab> {
  const name = labNameFor(prefix);
  const info = await labUp({ name, uplinks, daemon: true });
  let client: ConnmanClient | undefined;
  try {
    client = await ConnmanClient.connect(info.bus.address);
    const c = client;
    await eventually(
      'every service online',
      async () => {
        const s = await c.services();
        return s.length === uplinks && s.every((x) => x.properties.State === 'online');
      },
      20_000,
    );
    const lab: TestLab = {
      info,
      name,
      bus: info.bus.address,
      netns: info.device.netns,
      client: c,
      serviceOn: async (ifname) => {
        const s = (await c.services()).find((x) => x.properties.Ethernet.Interface === ifname);
        if (!s) throw new Error(`no service on ${ifname}`);
        return s;
      },
      down: async () => {
        c.close();
        await labDown(name);
      },
    };
    return lab;
  } catch (err) {
    client?.close();
    await labDown(name);
    throw err;
  }
}

interface IpAddr {
  family: string;
  local: string;
  prefixlen: number;
  scope: string;
}

/** Global addresses on an interface of a namespace, as `ip -j addr` reports them: "a/len". */
export function kernelAddresses(netns: string, ifname: string, family: 'inet' | 'inet6' | 'all' = 'all'): string[] {
  const out = execFileSync('ip', ['-n', netns, '-j', 'addr', 'show', 'dev', ifname], { encoding: 'utf8' });
  const links = JSON.parse(out || '[]') as { addr_info?: IpAddr[] }[];
  return links
    .flatMap((l) => l.addr_info ?? [])
    .filter((a) => a.scope === 'global' && (family === 'all' || a.family === family))
    .map((a) => `${a.local}/${a.prefixlen}`);
}

/** Default routes of a namespace's table main, as "via dev". */
export function kernelDefaultRoutes(netns: string): string[] {
  const out = execFileSync('ip', ['-n', netns, '-4', '-j', 'route', 'show', 'default'], { encoding: 'utf8' });
  return (JSON.parse(out || '[]') as { gateway?: string; dev?: string }[]).map((r) => `${r.gateway ?? ''} ${r.dev ?? ''}`);
}
