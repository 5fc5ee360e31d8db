// netsessiond inside a lab: configured for the lab (online checks pointed at the lab's
// internet, resolv.conf and state in the lab's directory, the lab's bus), started in the
// device namespace, stopped cleanly (SIGTERM, so it removes its kernel state) before the
// lab itself goes.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { isOurs, isRunning, readPidFile, run, spawnDetached, terminate } from './processes.ts';
import type { Topology } from './topology.ts';

export const DAEMON_PID_FILE = 'netsessiond.pid';
const DAEMON_BIN = fileURLToPath(new URL('../../bin/netsessiond.js', import.meta.url));
const NODE_COMM = basename(process.execPath).slice(0, 15);

export interface LabDaemonSpec {
  logLevel?: 'error' | 'warn' | 'info' | 'debug';
  /** extra lines for the [General] group of the daemon's config */
  general?: string[];
  /** extra lines for the [netsession] group */
  netsession?: string[];
  args?: string[];
  /**
   * a command the daemon is started through, put between `ip netns exec <device>` and the
   * daemon's own argv (which it gets as its arguments); it must exec them in place, so the
   * pid stays the daemon's: e.g. `unshare -m --propagation private sh -c '<mounts> && exec "$@"' sh`
   * (the fault tests give the daemon a read-only or full state directory that way)
   */
  wrap?: string[];
}

export interface LabDaemonInfo {
  pid: number;
  log: string;
  stateDir: string;
  config: string;
  resolvConf: string;
  policyDir: string;
}

export function daemonFiles(t: Topology): Omit<LabDaemonInfo, 'pid'> {
  return {
    log: `${t.dir}/netsessiond.log`,
    stateDir: `${t.dir}/netsessiond-state`,
    config: `${t.dir}/netsessiond.conf`,
    resolvConf: `${t.dir}/resolv.conf`,
    policyDir: `${t.dir}/session-policy`,
  };
}

/** The daemon's config for this lab (pure). */
export function daemonConfig(t: Topology, spec: LabDaemonSpec = {}): string {
  const f = daemonFiles(t);
  return [
    `# netsessiond in lab ${t.name}`,
    '[General]',
    'PreferredTechnologies=ethernet',
    `OnlineCheckIPv4URL=http://${t.internet.ipv4}:${t.internet.httpPort}/online/status.html`,
    `OnlineCheckIPv6URL=http://[${t.internet.ipv6}]:${t.internet.httpPort}/online/status.html`,
    ...(spec.general ?? []),
    '[netsession]',
    `ResolvConf=${f.resolvConf}`,
    `SessionPolicyDir=${f.policyDir}`,
    'OnlineCheckTimeout=3',
    ...(spec.netsession ?? []),
    '',
  ].join('\n');
}

export function daemonPid(t: Topology): number | undefined {
  const pid = readPidFile(`${t.dir}/${DAEMON_PID_FILE}`);
  return pid !== undefined && isOurs(pid, { comm: NODE_COMM, marker: `${t.dir}/` }) ? pid : undefined;
}

/**
 * Whether process `pid` owns `name` on the lab's bus. Asking for the owner's pid, not only
 * whether the name has one: right after a SIGKILL the bus may not have noticed yet that the
 * old daemon's connection is gone, and its name would pass for the new daemon's.
 */
async function ownsBusName(t: Topology, name: string, pid: number): Promise<boolean> {
  const r = await run(
    'dbus-send',
    [`--bus=${t.bus.address}`, '--print-reply', '--dest=org.freedesktop.DBus', '/', 'org.freedesktop.DBus.GetConnectionUnixProcessID', `string:${name}`],
    { check: false },
  );
  return new RegExp(`uint32 ${pid}\\b`).test(r.stdout);
}

/** Starts netsessiond in the lab's device namespace and waits until it owns net.connman. */
export async function startLabDaemon(t: Topology, spec: LabDaemonSpec = {}, env: NodeJS.ProcessEnv = process.env): Promise<LabDaemonInfo> {
  const f = daemonFiles(t);
  if (!existsSync(f.config) || spec.general || spec.netsession) writeFileSync(f.config, daemonConfig(t, spec));
  mkdirSync(f.policyDir, { recursive: true, mode: 0o755 });
  const pid = spawnDetached({
    argv: [
      'ip', 'netns', 'exec', t.device.netns,
      ...(spec.wrap ?? []),
      process.execPath, DAEMON_BIN,
      '--config', f.config,
      '--state-dir', f.stateDir,
      '--bus', t.bus.address,
      '--log-level', spec.logLevel ?? 'info',
      ...(spec.args ?? []),
    ],
    pidFile: `${t.dir}/${DAEMON_PID_FILE}`,
    logFile: f.log,
    cwd: t.dir,
    env,
  });
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (!isRunning(pid)) throw new Error(`netsessiond exited at start; see ${f.log}:\n${tailOf(f.log)}`);
    if (await ownsBusName(t, 'net.connman', pid)) return { pid, ...f };
    await sleep(25);
  }
  throw new Error(`netsessiond did not take net.connman within 15 s; see ${f.log}`);
}

/** Stops the lab's daemon: SIGTERM (clean: it removes its kernel state), or SIGKILL to simulate a crash. */
export async function stopLabDaemon(t: Topology, signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<boolean> {
  const pid = daemonPid(t);
  if (pid === undefined) return false;
  if (signal === 'SIGKILL') {
    process.kill(pid, 'SIGKILL');
    while (isRunning(pid)) await sleep(10);
  } else await terminate([pid], 6000);
  return true;
}

function tailOf(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-8).join('\n');
  } catch {
    return '';
  }
}
