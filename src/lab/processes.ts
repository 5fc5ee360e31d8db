// Processes of the lab: run a command and collect its output, start a long-lived process that
// survives us (detached, pid file, log file), and stop processes we started — by pid, only
// after checking /proc that the pid still is what we started.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { inNetns } from '../kernel/sys/netns.ts';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** written to the command's stdin (e.g. an `ip -batch -` script) */
  input?: string;
  /** reject when the command fails (default true) */
  check?: boolean;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/** Runs a command to completion. Rejects with its stderr when it fails, unless check is false. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
      timeout: opts.timeoutMs ?? 20_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    child.on('error', reject);
    // the command may exit before reading its stdin; that is its answer, not our error
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
    child.on('close', (code, signal) => {
      const r: RunResult = { code, signal, stdout, stderr };
      if (opts.check !== false && code !== 0) {
        const how = code === null ? `signal ${signal}` : `exit ${code}`;
        reject(new Error(`${cmd} ${args.join(' ')} failed (${how}): ${stderr.trim() || stdout.trim()}`));
      } else {
        resolve(r);
      }
    });
  });
}

export interface DetachedOptions {
  argv: readonly string[];
  pidFile: string;
  /** stdout and stderr are appended here */
  logFile: string;
  cwd: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * Starts a process that outlives us: its own session (detached), stdio to a log file, not
 * holding our event loop (unref). Its pid is written to pidFile before we return.
 */
export function spawnDetached(opts: DetachedOptions): number {
  const [cmd, ...args] = opts.argv;
  if (cmd === undefined) throw new Error('spawnDetached: empty argv');
  const fd = openSync(opts.logFile, 'a', 0o644);
  try {
    const child = spawn(cmd, args, {
      detached: true,
      stdio: ['ignore', fd, fd],
      cwd: opts.cwd,
      env: opts.env ?? process.env,
    });
    // a failed exec is reported through pid === undefined below; the event must not crash us
    child.on('error', () => {});
    if (child.pid === undefined) throw new Error(`cannot start ${cmd}`);
    child.unref();
    writeFileSync(opts.pidFile, `${child.pid}\n`);
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

export function readPidFile(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(pid) && pid > 1 ? pid : undefined;
  } catch {
    return undefined;
  }
}

export interface ProcInfo {
  comm: string;
  /** R, S, D, Z, … from /proc/PID/stat */
  state: string;
  cmdline: string[];
}

export function procInfo(pid: number): ProcInfo | undefined {
  try {
    const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may hold spaces and parentheses: the state follows the last ')'
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] ?? '?';
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
    return { comm, state, cmdline };
  } catch {
    return undefined;
  }
}

/** Running = exists and is not a zombie waiting for its parent. */
export function isRunning(pid: number): boolean {
  const info = procInfo(pid);
  return info !== undefined && info.state !== 'Z' && info.state !== 'X';
}

/** What a process we started looks like: its comm, and a string its command line contains. */
export interface Identity {
  comm: string;
  marker: string;
}

/** True when pid is running and still is the process we started (guards against pid reuse). */
export function isOurs(pid: number, id: Identity): boolean {
  const info = procInfo(pid);
  return (
    info !== undefined &&
    info.state !== 'Z' &&
    info.state !== 'X' &&
    info.comm === id.comm &&
    info.cmdline.some((a) => a.includes(id.marker))
  );
}

/**
 * SIGTERM to every pid, wait up to graceMs for all to go, then SIGKILL the rest.
 * Callers pass only pids they have checked to be theirs.
 */
export async function terminate(pids: readonly number[], graceMs = 3000): Promise<void> {
  const kill = (pid: number, sig: NodeJS.Signals): void => {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  };
  for (const pid of pids) kill(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  let left = pids.filter(isRunning);
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(20);
    left = left.filter(isRunning);
  }
  for (const pid of left) kill(pid, 'SIGKILL');
  const killDeadline = Date.now() + 2000;
  while (left.length > 0 && Date.now() < killDeadline) {
    await sleep(20);
    left = left.filter(isRunning);
  }
}

export const NETNS_RUN_DIR = '/run/netns';

/** Names of the named network namespaces (what `ip netns list` shows), without spawning ip. */
export function listNetns(): string[] {
  try {
    return readdirSync(NETNS_RUN_DIR).sort();
  } catch {
    return [];
  }
}

/**
 * Pids of every process inside the given named namespaces — what `ip netns pids` does (compare
 * /proc/PID/ns/net with the namespace file), for all namespaces in one pass over /proc.
 */
export function pidsInNetns(names: readonly string[]): number[] {
  const wanted = new Set<string>();
  for (const n of names) {
    try {
      const st = statSync(`${NETNS_RUN_DIR}/${n}`);
      wanted.add(`${st.dev}:${st.ino}`);
    } catch {
      // namespace file gone meanwhile
    }
  }
  if (wanted.size === 0) return [];
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue;
    try {
      const st = statSync(`/proc/${entry}/ns/net`);
      if (wanted.has(`${st.dev}:${st.ino}`)) pids.push(Number(entry));
    } catch {
      // exited meanwhile, or a kernel thread without a readable ns link
    }
  }
  return pids;
}

/** Local ports in LISTEN (tcp) or bound (udp) state in the network namespace of pid. */
export function boundPorts(pid: number, proto: 'tcp' | 'udp'): Set<number> {
  // /proc/PID/net shows the sockets of PID's network namespace, not ours
  return parsePorts(proto, (file) => readFileSync(`/proc/${pid}/net/${file}`, 'utf8'));
}

/**
 * The same, for a named namespace, whoever holds the sockets: /proc/thread-self/net shows
 * the namespace of the calling thread, which inNetns switches for the (synchronous) reads.
 */
export function boundPortsInNetns(netns: string, proto: 'tcp' | 'udp'): Set<number> {
  try {
    return inNetns(netns, () => parsePorts(proto, (file) => readFileSync(`/proc/thread-self/net/${file}`, 'utf8')));
  } catch {
    // namespace gone
    return new Set();
  }
}

function parsePorts(proto: 'tcp' | 'udp', read: (file: string) => string): Set<number> {
  const ports = new Set<number>();
  for (const file of [proto, `${proto}6`]) {
    let text: string;
    try {
      text = read(file);
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      const local = f[1];
      const state = f[3];
      if (local === undefined || state === undefined) continue;
      // tcp: 0A = LISTEN; udp: 07 = unconnected (bound)
      if ((proto === 'tcp' && state !== '0A') || (proto === 'udp' && state !== '07')) continue;
      ports.add(Number.parseInt(local.slice(local.lastIndexOf(':') + 1), 16));
    }
  }
  return ports;
}

/** The last lines of a log file, for error messages. */
export function tail(path: string, lines = 5): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
