// ConnMan 1.41 (Debian's connmand) as the side-by-side peer, run inside a lab built by our
// own labUp() without a daemon, so both daemons see the very same topology. The recipe is
// that of /work/shared/connman-twin/connman-lab.sh: connmand runs in the lab's device
// namespace inside a private mount + UTS namespace (its /var/lib, /run, /etc/resolv.conf and
// hostname are private), on the lab's bus (whose config already includes connman.conf), and
// only with the ethernet plugin family (every other plugin disabled).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { isOurs, isRunning, procInfo, run, spawnDetached, tail, terminate } from '../../src/lab/processes.ts';
import type { LabInfo } from '../../src/lab/topology.ts';

/** Plugins we never want: they would look for hardware or daemons the lab does not have. */
const DISABLED_PLUGINS = 'wifi,bluetooth,ofono,dundee,vpn,pacrunner,neard,iwd,gadget,polkit,hh2serial_gps,tist,nmcompat';
const PID_FILE = 'connmand.pid';

export interface ConnmanOptions {
  /** EnableOnlineCheck; default true */
  onlineCheck?: boolean;
  /** connmand -d PATTERNS (debug log); default none */
  debug?: string;
}

export interface ConnmanPeer {
  pid: number;
  version: string;
  dir: string;
  log: string;
  config: string;
  /** SIGTERM by pid (connmand removes its addresses and routes), SIGKILL after a grace time */
  stop(): Promise<void>;
}

/** main.conf exactly as the twin writes it, pointed at the lab's internet. */
export function connmanMainConf(lab: LabInfo, onlineCheck: boolean): string {
  const port = lab.internet.httpPort === 80 ? '' : `:${lab.internet.httpPort}`;
  return [
    '[General]',
    `# lab ${lab.name}: connmand confined to netns ${lab.device.netns}`,
    'TimeUpdates=manual',
    'TimezoneUpdates=manual',
    'AllowHostnameUpdates=false',
    'AllowDomainnameUpdates=false',
    'FallbackTimeservers=',
    'SingleConnectedTechnology=false',
    'PreferredTechnologies=ethernet',
    'DefaultAutoConnectTechnologies=ethernet',
    'NetworkInterfaceBlacklist=vmnet,vboxnet,virbr,ifb,ve-,vb-',
    `EnableOnlineCheck=${onlineCheck}`,
    `OnlineCheckIPv4URL=http://${lab.internet.ipv4}${port}/online/status.html`,
    `OnlineCheckIPv6URL=http://[${lab.internet.ipv6}]${port}/online/status.html`,
    '',
  ].join('\n');
}

/** Single-quoted for sh: every path here is ours, but a quote must never break the script. */
function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

async function ownsConnman(busAddress: string): Promise<boolean> {
  const r = await run(
    'dbus-send',
    [`--bus=${busAddress}`, '--print-reply', '--dest=org.freedesktop.DBus', '/', 'org.freedesktop.DBus.NameHasOwner', 'string:net.connman'],
    { check: false },
  );
  return /boolean true/.test(r.stdout);
}

/**
 * Starts connmand in the lab's device namespace and waits until it owns net.connman. Its
 * files live in <lab dir>/connman/, so `labDown` removes them; connmand itself runs in the
 * device namespace, so `labDown` would stop it too, but callers stop it first (stop()).
 */
export async function startConnman(lab: LabInfo, opts: ConnmanOptions = {}): Promise<ConnmanPeer> {
  const dir = `${lab.dir}/connman`;
  mkdirSync(`${dir}/varlib/connman`, { recursive: true });
  mkdirSync(`${dir}/run/connman`, { recursive: true });
  const config = `${dir}/main.conf`;
  const log = `${dir}/connmand.log`;
  const resolv = `${dir}/resolv.conf`;
  writeFileSync(config, connmanMainConf(lab, opts.onlineCheck ?? true));
  writeFileSync(resolv, `# private resolv.conf of connmand in lab ${lab.name}\n`);
  const version = (await run('connmand', ['-v'])).stdout.trim();
  const ifaces = lab.uplinks.map((u) => u.ifname).join(',');
  const debug = opts.debug === undefined ? '' : ` -d ${q(opts.debug)}`;
  // ip netns exec, unshare (without --fork) and sh's exec all exec in place: the pid we
  // spawn ends up being connmand's. The bind mounts exist only in the new mount namespace.
  const script = [
    `mount --bind ${q(`${dir}/varlib`)} /var/lib`,
    `mount --bind ${q(`${dir}/run`)} /run`,
    `mount --bind ${q(resolv)} /etc/resolv.conf`,
    `hostname ${q(lab.device.netns)}`,
    `exec connmand -n${debug} -c ${q(config)} -i ${q(ifaces)} -P ${DISABLED_PLUGINS}`,
  ].join(' && ');
  const pid = spawnDetached({
    argv: ['ip', 'netns', 'exec', lab.device.netns, 'unshare', '-m', '-u', '--propagation', 'private', 'sh', '-c', script],
    pidFile: `${lab.dir}/${PID_FILE}`,
    logFile: log,
    cwd: dir,
    env: { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: lab.bus.address },
  });
  const stop = async (): Promise<void> => {
    // the pid is ours only while it still is this connmand (it could have died and been reused)
    if (isOurs(pid, { comm: 'connmand', marker: `${dir}/` })) await terminate([pid], 10_000);
  };
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (!isRunning(pid)) throw new Error(`connmand exited at start; ${log}:\n${tail(log, 10)}`);
    if (procInfo(pid)?.comm === 'connmand' && (await ownsConnman(lab.bus.address))) {
      return { pid, version, dir, log, config, stop };
    }
    await sleep(25);
  }
  await stop();
  throw new Error(`connmand did not take net.connman within 15 s; ${log}:\n${tail(log, 10)}`);
}

/** For a caller that lost its handle (Ctrl-C): the connmand of a lab, if its pid file still names one. */
export async function stopConnmanOfLab(labDir: string): Promise<void> {
  let pid: number;
  try {
    pid = Number(readFileSync(`${labDir}/${PID_FILE}`, 'utf8').trim());
  } catch {
    return;
  }
  if (Number.isInteger(pid) && pid > 1 && isOurs(pid, { comm: 'connmand', marker: `${labDir}/connman/` })) {
    await terminate([pid], 10_000);
  }
}
