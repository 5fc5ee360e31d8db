// The cgroup v2 hierarchy as nft's `socket cgroupv2` needs it: where it is visible, whether
// nft can resolve cgroup paths here, and which cgroups exist now, with their ids.
//
// nft 1.0.x resolves a cgroup path to its id (the directory's inode, which is what a rule
// stores) under /sys/fs/cgroup only, and a transaction that names a cgroup that does not
// exist fails as a whole. /sys/fs/cgroup is cgroup2 on a systemd host with the unified
// hierarchy; it is not on a hybrid host (cgroup2 at /sys/fs/cgroup/unified), nor inside
// `ip netns exec`, which remounts /sys. There a private mount namespace with cgroup2 mounted
// at /sys/fs/cgroup serves (`unshare -m`, private propagation: nothing leaks out of it).
import { spawn } from 'node:child_process';
import { readFileSync, statSync, statfsSync } from 'node:fs';

export const CGROUP2_SUPER_MAGIC = 0x63677270;
/** where nft looks cgroup paths up */
export const NFT_CGROUP_ROOT = '/sys/fs/cgroup';

/** A shell command line that mounts cgroup2 at /sys/fs/cgroup and then runs its arguments ($0 "$@"). */
const MOUNT_THEN_EXEC = `mount -t cgroup2 none ${NFT_CGROUP_ROOT} && exec "$0" "$@"`;

/** argv that runs `argv` in a private mount namespace with cgroup2 at /sys/fs/cgroup. */
export function withPrivateCgroup2(argv: readonly string[]): string[] {
  return ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', MOUNT_THEN_EXEC, ...argv];
}

export interface MountEntry {
  /** the mounted subtree of the filesystem (`/` = all of it) */
  root: string;
  mountPoint: string;
  fsType: string;
}

const unescapeOctal = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));

/** /proc/<pid>/mountinfo, in order (a later mount on the same point hides an earlier one). */
export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    if (f.length < 10 || sep < 0 || f[3] === undefined || f[4] === undefined || f[sep + 1] === undefined) continue;
    out.push({ root: unescapeOctal(f[3]), mountPoint: unescapeOctal(f[4]), fsType: f[sep + 1]! });
  }
  return out;
}

export interface Cgroup2View {
  /** a mount point of the whole cgroup2 hierarchy in this mount namespace, if any */
  mount?: string;
  /** /sys/fs/cgroup here is not that hierarchy: nft must run with a private cgroup2 mount to resolve cgroup paths */
  nftNeedsMount: boolean;
}

const isCgroup2 = (dir: string): boolean => {
  try {
    return statfsSync(dir).type === CGROUP2_SUPER_MAGIC;
  } catch {
    return false;
  }
};

/**
 * Where cgroup2 is, from mountinfo, each candidate confirmed by statfs (a mount can be hidden
 * by a later one above it). Only mounts of the whole hierarchy count: cgroup paths (as
 * /proc/<pid>/cgroup shows them) are relative to its root.
 */
export function detectCgroup2(mountinfo = '/proc/self/mountinfo'): Cgroup2View {
  let entries: MountEntry[] = [];
  try {
    entries = parseMountinfo(readFileSync(mountinfo, 'utf8'));
  } catch {
    /* no /proc: nothing visible */
  }
  const whole = entries.filter((e) => e.fsType === 'cgroup2' && e.root === '/').map((e) => e.mountPoint);
  const atNftRoot = whole.includes(NFT_CGROUP_ROOT) && isCgroup2(NFT_CGROUP_ROOT);
  const mount = atNftRoot ? NFT_CGROUP_ROOT : whole.reverse().find(isCgroup2);
  return { ...(mount ? { mount } : {}), nftNeedsMount: !atNftRoot };
}

/** A cgroup path as /proc/<pid>/cgroup prints it ("/a/b"), checked before it goes near a file system call. */
export function checkCgroupPath(path: string): boolean {
  return path.startsWith('/') && !path.includes('\0') && path.split('/').slice(1).every((s) => s !== '' && s !== '.' && s !== '..');
}

/**
 * The ids of those cgroups (paths relative to the cgroup2 root, "/a/b") that exist now, by
 * path. Through the visible mount when there is one (a stat each); otherwise one process in a
 * private mount namespace (about as much as a spawn of nft). The root ("/") is id 1.
 */
export async function cgroupIds(paths: readonly string[], view: Cgroup2View): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const want = [...new Set(paths.filter((p) => checkCgroupPath(p) || p === '/'))];
  if (want.length === 0) return out;
  if (view.mount !== undefined) {
    for (const p of want) {
      try {
        const st = statSync(`${view.mount}${p === '/' ? '' : p}`, { bigint: true });
        if (st.isDirectory()) out.set(p, String(st.ino));
      } catch {
        /* not there */
      }
    }
    return out;
  }
  const script = `cd ${NFT_CGROUP_ROOT} && for p; do if [ -d "./$p" ]; then stat -c %i -- "./$p"; else echo -; fi; done`;
  const [cmd, ...args] = withPrivateCgroup2(['sh', '-c', script, 'sh', ...want]);
  const stdout = await new Promise<string>((resolve, reject) => {
    const p = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let so = '';
    let se = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => {
      so += d;
    });
    p.stderr.setEncoding('utf8').on('data', (d: string) => {
      se += d;
    });
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve(so) : reject(new Error(`cgroup2 lookup failed (${code}): ${se.trim()}`))));
  });
  const lines = stdout.split('\n');
  want.forEach((p, i) => {
    const id = lines[i]?.trim();
    if (id && /^\d+$/.test(id)) out.set(p, id);
  });
  return out;
}
