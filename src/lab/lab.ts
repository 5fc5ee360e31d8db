// The lab's imperative shell: builds a topology (topology.ts) out of network namespaces, veth
// pairs, dnsmasq, our internet server and a private dbus-daemon; tears it down again (also
// after a crash); reports and changes its state. Nothing here touches the root network
// namespace: every address, route and sysctl is set inside the lab's own namespaces.
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { basename } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { renderBusConfig } from './bus-config.ts';
import { DAEMON_PID_FILE, type LabDaemonInfo, type LabDaemonSpec, daemonFiles, daemonPid, startLabDaemon, stopLabDaemon } from './lab-daemon.ts';
import { dnsmasqArgv } from './dnsmasq.ts';
import {
  boundPorts,
  boundPortsInNetns,
  type Identity,
  isOurs,
  isRunning,
  listNetns,
  pidsInNetns,
  procInfo,
  readPidFile,
  run,
  spawnDetached,
  tail,
  terminate,
} from './processes.ts';
import {
  allNetns,
  BUS_LOG_FILE,
  BUS_PID_FILE,
  CONNMAN_BUS_POLICY,
  INTERNET_LOG_FILE,
  INTERNET_PID_FILE,
  deviceBatch,
  type IspAction,
  type IspMode,
  internetAddressCommands,
  internetPrefixes,
  ispBatch,
  ispShellScript,
  LAB_JSON_FILE,
  LAB_ROOT,
  type LabInfo,
  type LabUplinkInfo,
  LabUsageError,
  type LinkState,
  labDir,
  labInfo,
  netnsPrefix,
  parseIspAction,
  parseLinkState,
  parseUplinkRef,
  resolveTopology,
  rootBatch,
  type Topology,
  type TopologySpec,
  topologyFromJson,
  type Uplink,
  uplinkFiles,
  validateLabName,
} from './topology.ts';

/** No lab of that name: the CLI exits 1 with this message. */
export class LabNotFoundError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LabNotFoundError';
  }
}

const READY_TIMEOUT_MS = 20_000;
const INTERNET_SERVER = fileURLToPath(new URL('./internet-server.ts', import.meta.url));
/** tsx resolved from this project (not from the cwd of whoever runs the lab). */
const TSX_LOADER = import.meta.resolve('tsx');
/** /proc/PID/comm of a node process: the executable's name, cut to 15 characters by the kernel. */
const NODE_COMM = basename(process.execPath).slice(0, 15);

/** What each pid file in the state dir must point at; the marker is the lab dir (in every argv). */
function identityFor(pidFile: string, dir: string): Identity | undefined {
  const marker = `${dir}/`;
  const f = basename(pidFile);
  if (f === BUS_PID_FILE) return { comm: 'dbus-daemon', marker };
  if (/^isp[0-9]+\.dnsmasq\.pid$/.test(f)) return { comm: 'dnsmasq', marker };
  if (f === INTERNET_PID_FILE) return { comm: NODE_COMM, marker };
  // one internet server per ISP, as labs built by earlier versions still have
  if (/^isp[0-9]+\.http\.pid$/.test(f)) return { comm: NODE_COMM, marker };
  if (f === DAEMON_PID_FILE) return { comm: NODE_COMM, marker };
  return undefined;
}

/** Environment for processes we start: nothing of a test runner or of our own loader leaks in. */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.NODE_TEST_CONTEXT;
  delete env.NODE_OPTIONS;
  return env;
}

function ip(args: readonly string[], input?: string): Promise<unknown> {
  return run('ip', args, input === undefined ? {} : { input });
}

function writeMode(t: Topology, u: Uplink, mode: IspMode): void {
  writeFileSync(uplinkFiles(t.dir, u.index).modeFile, `${mode}\n`);
}

function startBus(t: Topology): number {
  // inside the device namespace, so a crashed lab's bus is found by `lab down` with the
  // namespace even when its pid file is gone; the socket is a path, reachable from anywhere
  return spawnDetached({
    argv: [
      'ip',
      'netns',
      'exec',
      t.device.netns,
      'dbus-daemon',
      `--config-file=${t.bus.config}`,
      '--nofork',
      '--nopidfile',
      '--nosyslog',
    ],
    pidFile: `${t.dir}/${BUS_PID_FILE}`,
    logFile: `${t.dir}/${BUS_LOG_FILE}`,
    cwd: t.dir,
    env: childEnv(),
  });
}

function startDnsmasq(t: Topology, u: Uplink): number {
  const f = uplinkFiles(t.dir, u.index);
  // `ip netns exec` execs in place: the pid we get is dnsmasq's
  return spawnDetached({
    argv: ['ip', 'netns', 'exec', u.ispNetns, ...dnsmasqArgv(t, u, f)],
    pidFile: f.dnsmasqPid,
    logFile: f.dnsmasqOut,
    cwd: t.dir,
    env: childEnv(),
  });
}

/**
 * The one internet server of the lab: it lives in the first ISP's namespace (so `lab down`
 * finds it there even without its pid file) and listens in every ISP's namespace.
 */
function startInternet(t: Topology): number {
  const first = t.uplinks[0] as Uplink;
  return spawnDetached({
    argv: [
      'ip',
      'netns',
      'exec',
      first.ispNetns,
      process.execPath,
      '--import',
      TSX_LOADER,
      INTERNET_SERVER,
      '--port',
      String(t.internet.httpPort),
      '--echo-port',
      String(t.internet.echoPort),
      ...t.uplinks.flatMap((u) => ['--serve', `${u.name}:${u.ispNetns}:${uplinkFiles(t.dir, u.index).modeFile}`]),
    ],
    pidFile: `${t.dir}/${INTERNET_PID_FILE}`,
    logFile: `${t.dir}/${INTERNET_LOG_FILE}`,
    cwd: t.dir,
    env: childEnv(),
  });
}

/** The lab's internet server runs and listens on both ports in u's namespace. */
function internetListens(t: Topology, u: Uplink): boolean {
  const ports = boundPortsInNetns(u.ispNetns, 'tcp');
  return ports.has(t.internet.httpPort) && ports.has(t.internet.echoPort);
}

/** One readiness condition: undefined when met, else what is still missing. A throw = failure. */
type Probe = () => string | undefined;

function processProbe(what: string, pid: number, comm: string, log: string, ready: () => boolean): Probe {
  return () => {
    if (!isRunning(pid)) throw new Error(`${what} (pid ${pid}) exited during start-up; ${log}:\n${tail(log)}`);
    // before `ip netns exec` has exec'd, /proc/PID/net still shows the root namespace
    if (procInfo(pid)?.comm !== comm) return `${what}: starting`;
    return ready() ? undefined : `${what}: not listening yet`;
  };
}

async function waitFor(probes: readonly Probe[], timeoutMs = READY_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let pending = probes;
  for (;;) {
    const missing: string[] = [];
    pending = pending.filter((p) => {
      const m = p();
      if (m !== undefined) missing.push(m);
      return m !== undefined;
    });
    if (pending.length === 0) return;
    if (Date.now() > deadline) throw new Error(`lab did not come up in ${timeoutMs} ms: ${missing.join('; ')}`);
    await sleep(25);
  }
}

function dnsmasqProbe(t: Topology, u: Uplink, pid: number): Probe {
  const f = uplinkFiles(t.dir, u.index);
  return processProbe(`dnsmasq of ${u.name}`, pid, 'dnsmasq', f.dnsmasqOut, () => boundPorts(pid, 'udp').has(67));
}

function internetProbe(t: Topology, pid: number): Probe {
  return processProbe('internet server', pid, NODE_COMM, `${t.dir}/${INTERNET_LOG_FILE}`, () =>
    t.uplinks.every((u) => internetListens(t, u)),
  );
}

/** A real HTTP request to the internet, from inside the ISP namespace, over IPv4 and IPv6. */
async function checkInternetAnswers(t: Topology, u: Uplink): Promise<void> {
  const urls = [`http://${t.internet.ipv4}/online/status.html`, `http://[${t.internet.ipv6}]/online/status.html`];
  const r = await run(
    'ip',
    ['netns', 'exec', u.ispNetns, 'curl', '-sS', '-o', '/dev/null', '-w', '%{http_code}\\n', '--max-time', '3', ...urls],
    { check: false },
  );
  const codes = r.stdout.trim().split('\n');
  if (codes.length !== urls.length || codes.some((c) => c !== '200')) {
    throw new Error(`internet server of ${u.name} does not answer (${codes.join(',')}): ${r.stderr.trim()}`);
  }
}

function mkdir755(path: string): void {
  mkdirSync(path, { recursive: true });
  // /tmp is world-writable: a directory someone else made (or a symlink) could redirect
  // what we, as root, write there
  const st = lstatSync(path);
  if (!st.isDirectory() || st.uid !== process.getuid?.()) {
    throw new Error(`${path} is not a directory of ours (owner uid ${st.uid}); remove it first`);
  }
  // explicit: the umask must not make the bus socket unreachable for non-root clients
  chmodSync(path, 0o755);
}

export interface LabUpResult extends LabInfo {
  /** wall-clock time of `lab up` in milliseconds (without the teardown of an old lab) */
  upMs: number;
}

/**
 * Builds a lab and waits until it works: every internet server answers, every dnsmasq
 * listens, the bus socket exists. A lab of the same name is torn down first; a failure tears
 * down what was built and rethrows.
 */
export async function labUp(spec: TopologySpec = {}): Promise<LabUpResult> {
  const t = resolveTopology(spec);
  await labDown(t.name);
  const started = performance.now();
  try {
    mkdir755(LAB_ROOT);
    mkdir755(t.dir);
    mkdir755(`${t.dir}/bus`);
    writeFileSync(
      t.bus.config,
      renderBusConfig({ labName: t.name, listenAddress: t.bus.address, includes: [CONNMAN_BUS_POLICY] }),
    );
    for (const u of t.uplinks) writeMode(t, u, 'online');

    await ip(['-batch', '-'], rootBatch(t));
    // node + tsx needs a few hundred ms of CPU: start the internet server first; it listens
    // on '::' and needs no address to do so, only the namespaces
    const httpPid = startInternet(t);
    await Promise.all([
      ip(['-n', t.device.netns, '-batch', '-'], deviceBatch(t)),
      ...t.uplinks.map((u) =>
        run('ip', ['netns', 'exec', u.ispNetns, 'sh', '-c', ispShellScript(u)], { input: ispBatch(t, u) }),
      ),
    ]);
    // dnsmasq binds to the gateway's addresses, so it starts after they exist
    const busPid = startBus(t);
    const probes: Probe[] = [
      processProbe('dbus-daemon', busPid, 'dbus-daemon', `${t.dir}/${BUS_LOG_FILE}`, () => isSocket(t.bus.socket)),
      internetProbe(t, httpPid),
    ];
    for (const u of t.uplinks) if (u.dhcp) probes.push(dnsmasqProbe(t, u, startDnsmasq(t, u)));
    await waitFor(probes);
    await Promise.all(t.uplinks.map((u) => checkInternetAnswers(t, u)));

    // initial states other than the default, declared in the spec
    for (const u of t.uplinks) {
      if (u.mode !== 'online') await setIspMode(t, u, u.mode);
      if (u.link !== 'up') await ip(['-n', u.ispNetns, 'link', 'set', u.ispIfname, u.link]);
    }
    const info: LabInfo = labInfo(t);
    if (spec.daemon) info.daemon = await startLabDaemon(t, spec.daemon === true ? {} : spec.daemon, childEnv());
    writeFileSync(`${t.dir}/${LAB_JSON_FILE}`, `${JSON.stringify(info, null, 2)}\n`);
    return { ...info, upMs: Math.round(performance.now() - started) };
  } catch (err) {
    await labDown(t.name).catch(() => {});
    throw err;
  }
}

function isSocket(path: string): boolean {
  try {
    return statSync(path).isSocket();
  } catch {
    return false;
  }
}

export interface LabDownResult {
  name: string;
  /** namespaces deleted */
  netns: string[];
  /** pids stopped (from pid files and found inside the namespaces) */
  stopped: number[];
  /** the state directory existed and was removed */
  removedDir: boolean;
}

/**
 * Removes everything of a lab, whatever state it is in (half built, crashed, pid files lost):
 * processes from pid files (if /proc says they still are ours), any process inside the lab's
 * namespaces (found by prefix), the namespaces, the state directory. No lab: nothing to do.
 */
export async function labDown(name: string): Promise<LabDownResult> {
  const dir = labDir(name);
  const prefix = netnsPrefix(name);
  const targets = new Set<number>();
  let pidFiles: string[] = [];
  try {
    pidFiles = readdirSync(dir).filter((f) => f.endsWith('.pid'));
  } catch {
    // no state dir: look for namespaces only
  }
  for (const f of pidFiles) {
    const pid = readPidFile(`${dir}/${f}`);
    const id = identityFor(f, dir);
    if (pid !== undefined && id !== undefined && isOurs(pid, id)) targets.add(pid);
  }
  // the daemon goes first and gently: on SIGTERM it removes its kernel state and releases its leases
  const daemon = readPidFile(`${dir}/${DAEMON_PID_FILE}`);
  if (daemon !== undefined && isOurs(daemon, { comm: NODE_COMM, marker: `${dir}/` })) await terminate([daemon], 6000);
  const namespaces = listNetns().filter((n) => n.startsWith(prefix));
  // every process in a namespace this lab created is one the lab started (or one a user
  // started in it with `lab exec`): it goes with the lab
  for (const pid of pidsInNetns(namespaces)) if (pid !== process.pid) targets.add(pid);
  const stopped = [...targets];
  await terminate(stopped);
  if (namespaces.length > 0) {
    // -force: carry on past a namespace that vanished meanwhile; checked below
    await run('ip', ['-force', '-batch', '-'], {
      input: `${namespaces.map((n) => `netns del ${n}`).join('\n')}\n`,
      check: false,
    });
    const left = listNetns().filter((n) => n.startsWith(prefix));
    if (left.length > 0) throw new Error(`could not delete namespaces ${left.join(', ')}`);
  }
  const removedDir = existsSync(dir);
  rmSync(dir, { recursive: true, force: true });
  return { name, netns: namespaces, stopped, removedDir };
}

/** Reads a running lab's topology from its lab.json; LabNotFoundError when there is none. */
export function loadLab(name: string): Topology {
  const dir = labDir(name);
  let text: string;
  try {
    text = readFileSync(`${dir}/${LAB_JSON_FILE}`, 'utf8');
  } catch {
    const leftovers = listNetns().filter((n) => n.startsWith(netnsPrefix(name)));
    const hint =
      leftovers.length > 0
        ? ` (but namespaces ${leftovers.join(', ')} exist: remove them with \`netsessionctl lab down --name ${name}\`)`
        : '';
    throw new LabNotFoundError(`no lab named ${JSON.stringify(name)}${hint}`);
  }
  return topologyFromJson(text);
}

export interface ProcessStatus {
  role: string;
  pidFile: string;
  pid: number | null;
  alive: boolean;
}

export interface UplinkStatus extends LabUplinkInfo {
  /** content of the mode file: online | portal | no-upstream */
  mode: string;
  /** ISP-side link admin state */
  link: LinkState | 'missing';
  /** the internet addresses are on the ISP's lo */
  upstream: boolean;
  dhcp: boolean;
  http: boolean;
  /** device side: carrier and addresses */
  device: { carrier: boolean; operstate: string; addresses4: string[]; addresses6: string[] };
}

export interface LabStatus extends Omit<LabInfo, 'uplinks'> {
  netns: { present: string[]; missing: string[] };
  processes: ProcessStatus[];
  uplinks: UplinkStatus[];
  bus: LabInfo['bus'] & { alive: boolean };
  /** every namespace and process is there */
  healthy: boolean;
}

interface IpAddrInfo {
  family?: string;
  local?: string;
  prefixlen?: number;
  scope?: string;
}
interface IpLinkAddr {
  ifname?: string;
  flags?: string[];
  operstate?: string;
  addr_info?: IpAddrInfo[];
}

async function ipAddrShow(netns: string): Promise<IpLinkAddr[]> {
  const r = await run('ip', ['-n', netns, '-j', 'address', 'show'], { check: false });
  if (r.code !== 0) return [];
  const data: unknown = JSON.parse(r.stdout || '[]');
  return Array.isArray(data) ? (data as IpLinkAddr[]) : [];
}

function processStatus(t: Topology, role: string, file: string): ProcessStatus {
  const pidFile = `${t.dir}/${file}`;
  const pid = readPidFile(pidFile) ?? null;
  const id = identityFor(file, t.dir);
  return { role, pidFile, pid, alive: pid !== null && id !== undefined && isOurs(pid, id) };
}

/** The lab JSON plus what is alive and the state of every link (LabNotFoundError when none). */
export async function labStatus(name: string): Promise<LabStatus> {
  const t = loadLab(name);
  const info = labInfo(t);
  const present = new Set(listNetns());
  const wanted = allNetns(t);
  const [dev, ...isps] = await Promise.all([t.device.netns, ...t.uplinks.map((u) => u.ispNetns)].map(ipAddrShow));
  const bus = processStatus(t, 'dbus-daemon', BUS_PID_FILE);
  const internet = processStatus(t, 'internet', INTERNET_PID_FILE);
  const processes: ProcessStatus[] = [bus, internet];
  const uplinks = t.uplinks.map((u, i): UplinkStatus => {
    const f = uplinkFiles(t.dir, u.index);
    const dnsmasq = processStatus(t, `dnsmasq ${u.name}`, basename(f.dnsmasqPid));
    processes.push(dnsmasq);
    const ispLinks = isps[i] ?? [];
    const gw = ispLinks.find((l) => l.ifname === u.ispIfname);
    const lo = ispLinks.find((l) => l.ifname === 'lo');
    const eth = (dev ?? []).find((l) => l.ifname === u.ifname);
    const loAddrs = (lo?.addr_info ?? []).map((a) => a.local);
    const global = (fam: string) =>
      (eth?.addr_info ?? [])
        .filter((a) => a.family === fam && a.scope === 'global')
        .map((a) => `${a.local}/${a.prefixlen}`);
    let mode = 'online';
    try {
      mode = readFileSync(f.modeFile, 'utf8').trim() || 'online';
    } catch {
      // missing mode file: the server treats it as online too
    }
    return {
      ...(info.uplinks[i] as LabUplinkInfo),
      mode,
      link: gw === undefined ? 'missing' : gw.flags?.includes('UP') ? 'up' : 'down',
      upstream: loAddrs.includes(t.internet.ipv4) && loAddrs.includes(t.internet.ipv6),
      dhcp: dnsmasq.alive,
      http: internet.alive && internetListens(t, u),
      device: {
        carrier: eth !== undefined && !(eth.flags ?? []).includes('NO-CARRIER') && (eth.flags ?? []).includes('LOWER_UP'),
        operstate: eth?.operstate ?? 'missing',
        addresses4: global('inet'),
        addresses6: global('inet6'),
      },
    };
  });
  const missing = wanted.filter((n) => !present.has(n));
  return {
    ...info,
    bus: { ...info.bus, alive: bus.alive },
    netns: { present: wanted.filter((n) => present.has(n)), missing },
    processes,
    uplinks,
    // dnsmasq may be off on purpose (dhcp-off), so it does not count against health
    healthy: missing.length === 0 && processes.filter((p) => !p.role.startsWith('dnsmasq')).every((p) => p.alive),
  };
}

/** `lab link UPLINK up|down`: the ISP side of the veth; the device side loses carrier. */
export async function labLink(name: string, uplink: string, state: string): Promise<void> {
  validateLabName(name);
  const s = parseLinkState(state);
  parseUplinkRef(uplink);
  const t = loadLab(name);
  const u = t.uplinks[parseUplinkRef(uplink, t.uplinks.length)] as Uplink;
  await ip(['-n', u.ispNetns, 'link', 'set', u.ispIfname, s]);
}

async function setIspMode(t: Topology, u: Uplink, mode: IspMode): Promise<void> {
  if (mode === 'no-upstream') {
    writeMode(t, u, 'no-upstream');
    const lo = (await ipAddrShow(u.ispNetns)).find((l) => l.ifname === 'lo');
    const have = new Set((lo?.addr_info ?? []).map((a) => a.local));
    const present = internetPrefixes(t).filter((p) => have.has(p.slice(0, p.indexOf('/'))));
    const del = internetAddressCommands(t, 'del', present);
    if (del.length > 0) await ip(['-n', u.ispNetns, '-batch', '-'], `${del.join('\n')}\n`);
  } else {
    await ip(['-n', u.ispNetns, '-batch', '-'], `${internetAddressCommands(t, 'replace').join('\n')}\n`);
    writeMode(t, u, mode);
  }
}

async function stopDnsmasq(t: Topology, u: Uplink): Promise<void> {
  const f = uplinkFiles(t.dir, u.index);
  const pid = readPidFile(f.dnsmasqPid);
  const id = identityFor(f.dnsmasqPid, t.dir);
  if (pid !== undefined && id !== undefined && isOurs(pid, id)) await terminate([pid]);
  rmSync(f.dnsmasqPid, { force: true });
}

/** `lab isp UPLINK online|no-upstream|portal|dhcp-off|dhcp-on`. */
export async function labIsp(name: string, uplink: string, action: string): Promise<void> {
  validateLabName(name);
  const a: IspAction = parseIspAction(action);
  parseUplinkRef(uplink);
  const t = loadLab(name);
  const u = t.uplinks[parseUplinkRef(uplink, t.uplinks.length)] as Uplink;
  switch (a) {
    case 'online':
    case 'portal':
    case 'no-upstream':
      await setIspMode(t, u, a);
      return;
    case 'dhcp-off':
      await stopDnsmasq(t, u);
      return;
    case 'dhcp-on': {
      await stopDnsmasq(t, u);
      const pid = startDnsmasq(t, u);
      await waitFor([dnsmasqProbe(t, u, pid)]);
      return;
    }
  }
}

/**
 * `lab exec -- CMD…`: runs CMD in the device namespace with the lab bus as the system bus,
 * stdio inherited. Resolves to CMD's exit code (128 + signal number when killed).
 */
export async function labExec(name: string, argv: readonly string[]): Promise<number> {
  validateLabName(name);
  if (argv.length === 0) throw new LabUsageError('lab exec: no command given (lab exec [--name N] -- CMD…)');
  const t = loadLab(name);
  const child = spawn('ip', ['netns', 'exec', t.device.netns, ...argv], {
    stdio: 'inherit',
    env: childEnv({ DBUS_SYSTEM_BUS_ADDRESS: t.bus.address }),
  });
  // Ctrl-C reaches the child through the terminal; we stay to report its exit code.
  // A kill aimed at us is passed on.
  const ignore = (): void => {};
  const forward = (sig: NodeJS.Signals): void => {
    child.kill(sig);
  };
  process.on('SIGINT', ignore);
  process.on('SIGQUIT', ignore);
  process.on('SIGTERM', forward);
  process.on('SIGHUP', forward);
  try {
    return await new Promise<number>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code, signal) => {
        resolve(code ?? 128 + (signal === null ? 0 : (osConstants.signals[signal] ?? 0)));
      });
    });
  } finally {
    process.off('SIGINT', ignore);
    process.off('SIGQUIT', ignore);
    process.off('SIGTERM', forward);
    process.off('SIGHUP', forward);
  }
}

/** Names of the labs that have a state dir or namespaces (for `lab status` without a lab). */
export function listLabs(): string[] {
  const names = new Set<string>();
  try {
    for (const d of readdirSync(LAB_ROOT)) if (/^[A-Za-z0-9]{1,8}$/.test(d)) names.add(d);
  } catch {
    // no lab root yet
  }
  for (const n of listNetns()) {
    const m = /^nsl-([A-Za-z0-9]{1,8})-/.exec(n);
    if (m?.[1] !== undefined) names.add(m[1]);
  }
  return [...names].sort();
}

/** Starts, stops (SIGTERM) or kills (SIGKILL) the netsessiond of a running lab. */
export async function labDaemon(name: string, action: 'start' | 'stop' | 'kill', spec: LabDaemonSpec = {}): Promise<LabDaemonInfo | undefined> {
  const t = loadLab(name);
  const file = `${t.dir}/${LAB_JSON_FILE}`;
  const info = JSON.parse(readFileSync(file, 'utf8')) as LabInfo;
  if (action === 'start') {
    const running = daemonPid(t);
    if (running !== undefined) throw new LabUsageError(`lab ${name} already runs netsessiond (pid ${running})`);
    info.daemon = await startLabDaemon(t, spec, childEnv());
  } else {
    await stopLabDaemon(t, action === 'kill' ? 'SIGKILL' : 'SIGTERM');
    delete info.daemon;
  }
  writeFileSync(file, `${JSON.stringify(info, null, 2)}\n`);
  return info.daemon;
}

export { daemonFiles };
