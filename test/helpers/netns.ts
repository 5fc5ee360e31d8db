// Throw-away network namespaces for kernel tests. Names carry the prefix `nst-<pid>-`, so
// leftovers of a crashed run are recognisable; every namespace is removed in t.after.
import { execFileSync, spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';

let counter = 0;

export const isRoot = (): boolean => process.getuid?.() === 0;

export function sh(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 1 << 28 });
}

export function ipIn(ns: string, ...args: string[]): string {
  return sh('ip', ['-n', ns, ...args]);
}

/** `ip -batch`; lines starting with `-6 ` go to a second `ip -6 -batch` (batch lines take no options). */
export function ipBatch(ns: string, lines: string[], force = false): void {
  const v6 = lines.filter((l) => l.startsWith('-6 ')).map((l) => l.slice(3));
  const v4 = lines.filter((l) => !l.startsWith('-6 '));
  for (const [fam, ls] of [[[], v4], [['-6'], v6]] as const) {
    if (ls.length === 0) continue;
    const r = spawnSync('ip', ['-n', ns, ...fam, ...(force ? ['-force'] : []), '-batch', '-'], { input: `${ls.join('\n')}\n`, encoding: 'utf8', maxBuffer: 1 << 26 });
    if (r.status !== 0 && !force) throw new Error(`ip -batch failed: ${r.stderr}`);
  }
}

export function deleteNetns(name: string): void {
  const pids = spawnSync('ip', ['netns', 'pids', name], { encoding: 'utf8' }).stdout.split(/\s+/).filter(Boolean);
  for (const pid of pids) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  spawnSync('ip', ['netns', 'del', name]);
}

/**
 * A namespace with `lo` up and a veth pair `t0`/`t1` (t0 has 192.0.2.10/24 and
 * 2001:db8::10/64), enough for gateway routes to resolve.
 */
export function makeNetns(t: TestContext | undefined, tag = 'k'): string {
  const name = `nst-${process.pid}-${tag}${counter++}`;
  sh('ip', ['netns', 'add', name]);
  const cleanup = (): void => deleteNetns(name);
  if (t) t.after(cleanup);
  try {
    // no duplicate address detection: link-local addresses (and their local routes) exist
    // at once instead of appearing a second later in the middle of a test
    sh('ip', ['netns', 'exec', name, 'sysctl', '-qw', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0']);
    ipBatch(name, [
      'link set lo up',
      'link add t0 type veth peer name t1',
      'link set t0 up',
      'link set t1 up',
      'addr add 192.0.2.10/24 dev t0',
      'addr add 2001:db8::10/64 dev t0 nodad',
    ]);
  } catch (e) {
    cleanup();
    throw e;
  }
  return name;
}

/**
 * How the kernel routes a packet with this mark: `ip route get` says the device, or
 * undefined when the answer is that there is no way (unreachable, fail closed).
 */
export function routeWithMark(ns: string, dst: string, mark: number): string | undefined {
  const r = spawnSync('ip', ['-n', ns, 'route', 'get', dst, 'mark', String(mark)], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  return /\bdev (\S+)/.exec(r.stdout)?.[1] ?? r.stdout.trim();
}
