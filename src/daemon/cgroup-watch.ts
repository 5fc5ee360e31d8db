// Which cgroups of cgroup policies exist now, with their ids (imperative). Our nft table names
// only those: nft fails a whole transaction over a cgroup that does not exist, and a rule
// keeps the id of the cgroup it was made for. Looked up on every reconcile where that is a
// stat (a cgroup2 mount is visible here), otherwise (a private mount namespace, one process)
// when the set of wanted cgroups changes; and every few seconds while any is wanted, so that a
// cgroup made later, removed, or made again (a new id) gets its rule: a change found that way
// calls onChange (the daemon reconciles).
import { type Cgroup2View, cgroupIds, detectCgroup2 } from '../kernel/cgroup2.ts';

export interface CgroupWatchOptions {
  onChange: () => void;
  warn: (message: string) => void;
  /** default 5000 ms */
  intervalMs?: number;
  /** default: detected from /proc/self/mountinfo */
  view?: Cgroup2View;
}

export type ExistingCgroup = { path: string; id: string };

const keyOf = (cgs: readonly ExistingCgroup[]): string => cgs.map((c) => `${c.path}=${c.id}`).join('\n');

export class CgroupWatch {
  readonly view: Cgroup2View;
  private wanted: readonly string[] = [];
  private known: readonly ExistingCgroup[] = [];
  private poll: NodeJS.Timeout | undefined;
  private warned = false;
  private closed = false;

  constructor(private readonly opts: CgroupWatchOptions) {
    this.view = opts.view ?? detectCgroup2();
  }

  /** The existing ones among `wanted` (cgroup v2 paths), with their ids. */
  async existing(wanted: readonly string[]): Promise<readonly ExistingCgroup[]> {
    const changed = wanted.join('\n') !== this.wanted.join('\n');
    if (changed) this.wanted = [...wanted];
    if (wanted.length === 0) {
      this.known = [];
      this.arm(false);
      return this.known;
    }
    this.arm(true);
    if (changed || this.view.mount !== undefined) this.known = await this.lookup(this.wanted);
    return this.known;
  }

  close(): void {
    this.closed = true;
    this.arm(false);
  }

  private arm(on: boolean): void {
    if (!on || this.closed) {
      if (this.poll) clearInterval(this.poll);
      this.poll = undefined;
      return;
    }
    if (this.poll) return;
    this.poll = setInterval(() => void this.recheck(), this.opts.intervalMs ?? 5000);
    this.poll.unref();
  }

  private async recheck(): Promise<void> {
    const wanted = this.wanted;
    const found = await this.lookup(wanted);
    // the wanted set may have changed meanwhile: then that lookup is the newer one
    if (this.closed || wanted !== this.wanted || keyOf(found) === keyOf(this.known)) return;
    this.known = found;
    this.opts.onChange();
  }

  private async lookup(wanted: readonly string[]): Promise<ExistingCgroup[]> {
    try {
      const ids = await cgroupIds(wanted, this.view);
      return wanted.flatMap((path) => {
        const id = ids.get(path);
        return id === undefined ? [] : [{ path, id }];
      });
    } catch (e) {
      if (!this.warned) this.opts.warn(`cgroup policies cannot be routed: ${(e as Error).message}`);
      this.warned = true;
      return [];
    }
  }
}
