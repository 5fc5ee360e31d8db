// Runs nft: scripts applied atomically with `nft -f -`, our table read back with `nft -j`.
import { spawn } from 'node:child_process';
import { withPrivateCgroup2 } from '../cgroup2.ts';
import { type ObservedNftTable, parseNftTable } from './observed.ts';

export class NftError extends Error {
  constructor(
    message: string,
    readonly stderr: string,
  ) {
    super(message);
    this.name = 'NftError';
  }
}

export interface NftOptions {
  /** run inside this network namespace (`ip netns exec`) */
  netns?: string;
  nftPath?: string;
  /**
   * nft resolves `socket cgroupv2` paths under /sys/fs/cgroup only. Where that is not the
   * cgroup2 hierarchy (see ../cgroup2.ts), scripts that name a cgroup run in a private mount
   * namespace with cgroup2 mounted there. Listing needs nothing (rules keep cgroup ids).
   */
  cgroup2Mount?: boolean;
}

export class Nft {
  constructor(private readonly opts: NftOptions = {}) {}

  private run(args: string[], input?: string, cgroup2Mount = false): Promise<{ code: number; stdout: string; stderr: string }> {
    const nft = [this.opts.nftPath ?? 'nft', ...args];
    const inner = cgroup2Mount ? withPrivateCgroup2(nft) : nft;
    const [cmd, ...argv] = this.opts.netns ? ['ip', 'netns', 'exec', this.opts.netns, ...inner] : inner;
    return new Promise((resolve, reject) => {
      const p = spawn(cmd!, argv, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      p.stdout?.setEncoding('utf8').on('data', (d: string) => {
        stdout += d;
      });
      p.stderr?.setEncoding('utf8').on('data', (d: string) => {
        stderr += d;
      });
      p.on('error', reject);
      p.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
      if (p.stdin) {
        // nft may exit before reading all of its input (a parse error): that is its answer, not ours to crash on
        p.stdin.on('error', () => undefined);
        p.stdin.end(input);
      }
    });
  }

  /** Applies a script as one transaction: all of it or none of it. */
  async apply(script: string): Promise<void> {
    const r = await this.run(['-f', '-'], script, this.opts.cgroup2Mount === true && /\bsocket cgroupv2\b/.test(script));
    if (r.code !== 0) throw new NftError(`nft -f failed: ${r.stderr.trim().split('\n')[0] ?? ''}`, r.stderr);
  }

  /** Our table as nft shows it, or undefined when it does not exist. */
  async observe(family: string, name: string): Promise<ObservedNftTable | undefined> {
    const r = await this.run(['-j', 'list', 'table', family, name]);
    if (r.code !== 0) {
      if (/No such file or directory/.test(r.stderr)) return undefined;
      throw new NftError(`nft list table failed: ${r.stderr.trim()}`, r.stderr);
    }
    return parseNftTable(r.stdout);
  }
}
