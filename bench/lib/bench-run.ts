// The harness the lab benchmarks (core.ts, sessions.ts, faults.ts) share: which daemons to
// compare, integer settings from the environment, and one run's bookkeeping: the labs in use
// (one, or two side by side for paired measurements) and their daemons, removed by teardown()
// after each scenario, after a failure and on Ctrl-C, with each daemon's log kept in the run's
// output dir (the lab dir goes with the lab).
import { copyFileSync, mkdirSync } from 'node:fs';
import { labDown } from '../../src/lab/lab.ts';
import { isRunning, tail } from '../../src/lab/processes.ts';
import { labDir } from '../../src/lab/topology.ts';
import { stopConnmanOfLab } from '../peers/connman.ts';

export type DaemonKind = 'netsession' | 'connman';

/** The daemons to compare, in this order: BENCH_DAEMONS (default netsession,connman). */
export function daemonKinds(): DaemonKind[] {
  return (process.env.BENCH_DAEMONS ?? 'netsession,connman').split(',').map((k): DaemonKind => {
    if (k !== 'netsession' && k !== 'connman') throw new Error(`BENCH_DAEMONS: unknown daemon ${k}`);
    return k;
  });
}

/** An integer setting from the environment: dflt when unset, an error when not in min..max. */
export function intEnv(name: string, dflt: number, min: number, max: number): number {
  const v = Number(process.env[name] ?? dflt);
  if (!Number.isInteger(v) || v < min || v > max) throw new Error(`${name} must be an integer ${min}..${max}`);
  return v;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The daemon under test in a lab, as teardown and checkAlive need it. */
export interface BenchDaemon {
  kind: DaemonKind;
  /** not readonly: a scenario that restarts the daemon updates it */
  pid: number;
  log: string;
  stop(): Promise<void>;
}

/** Throws, with the end of its log, if the daemon died: what is measured after that means nothing. */
export function checkAlive(d: BenchDaemon): void {
  if (!isRunning(d.pid)) throw new Error(`${d.kind} (pid ${d.pid}) died; ${d.log}:\n${tail(d.log, 15)}`);
}

/** Copies one file into the run's output dir under the given name. */
export type KeepFile = (path: string, name: string) => void;

/** The lab in use: what teardown closes, stops, keeps and removes. */
export class ActiveLab {
  /** set once the daemon runs; one whose start was interrupted is stopped by stopConnmanOfLab and labDown */
  daemon: BenchDaemon | undefined;
  /** files of the lab dir to keep besides the daemon's log (profiles), called after the daemon stopped */
  keepFiles: ((keep: KeepFile) => void) | undefined;
  private readonly closers: (() => void)[] = [];

  constructor(
    readonly name: string,
    /** names the kept daemon log */
    readonly label: string,
  ) {}

  /** Registers something the bench opened on the lab (a bus or netlink connection), closed before the daemon stops. */
  onTeardown(close: () => void): void {
    this.closers.push(close);
  }

  /** Last opened first. */
  closeOpened(): void {
    for (const close of this.closers.splice(0).reverse()) {
      try {
        close();
      } catch {
        // already closed by its scenario
      }
    }
  }
}

/**
 * One benchmark run: its output dir, the scenarios that failed, and the labs in use. It owns
 * SIGINT and SIGTERM (hence one per process): the labs are removed, then the process exits 130.
 */
export class BenchRun {
  private static created = false;
  /** daemon logs (and profiles) of this run, kept after the labs are gone */
  readonly outDir: string;
  /** `what: message` of each scenario that failed */
  readonly errors: string[] = [];
  /** by SIGINT/SIGTERM: no new lab, and a scenario's failure ends the run instead of being recorded */
  private interrupted = false;
  private readonly active = new Set<ActiveLab>();
  /** a lab or daemon being started: an interruption waits for it, or what it builds would leak */
  private starting: Promise<unknown> | undefined;
  private removing: Promise<void> | undefined;

  /** bench names the output dir: /tmp/netsession-bench/<bench>-<time> */
  constructor(bench: string) {
    if (BenchRun.created) throw new Error('one BenchRun per process: it owns the signal handlers');
    BenchRun.created = true;
    this.outDir = `/tmp/netsession-bench/${bench}-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      process.on(sig, () => {
        this.interrupted = true;
        process.stderr.write(`bench: ${sig}, cleaning up\n`);
        void Promise.resolve(this.starting)
          .catch(() => {})
          .then(() => this.teardown())
          .finally(() => process.exit(130));
      });
    }
  }

  /** Adds the lab about to be built to those in use, before it exists: an interruption during labUp still removes it. */
  beginLab(name: string, label: string): ActiveLab {
    if (this.interrupted) throw new Error('interrupted');
    const lab = new ActiveLab(name, label);
    this.active.add(lab);
    return lab;
  }

  /** A lab or daemon start that an interruption must wait for. */
  track<T>(p: Promise<T>): Promise<T> {
    this.starting = p;
    return p.finally(() => {
      if (this.starting === p) this.starting = undefined;
    });
  }

  /** Stops the daemons of the labs in use and removes the labs; safe to call twice at once. */
  teardown(): Promise<void> {
    if (this.removing) return this.removing;
    const labs = [...this.active];
    this.active.clear();
    if (labs.length === 0) return Promise.resolve();
    this.removing = (async () => {
      for (const lab of labs) await this.remove(lab);
    })().finally(() => {
      this.removing = undefined;
    });
    return this.removing;
  }

  /**
   * Runs one scenario. Its failure is recorded in errors, its lab removed, and the run goes
   * on (undefined); after an interruption the failure is thrown, which ends the run.
   */
  async attempt<T>(what: string, scenario: () => Promise<T>): Promise<T | undefined> {
    try {
      return await scenario();
    } catch (err) {
      if (this.interrupted) throw err;
      this.errors.push(`${what}: ${errorMessage(err)}`);
      await this.teardown();
      return undefined;
    }
  }

  private async remove(lab: ActiveLab): Promise<void> {
    lab.closeOpened();
    const d = lab.daemon;
    if (d !== undefined) {
      try {
        await d.stop();
      } catch (err) {
        process.stderr.write(`bench: stopping ${d.kind}: ${String(err)}\n`);
      }
      try {
        this.keep(d.log, `${d.kind}-${lab.label}.log`);
      } catch {
        // no log to keep
      }
    }
    try {
      lab.keepFiles?.((path, name) => this.keep(path, name));
    } catch {
      // no lab dir, or nothing more to keep
    }
    // a connmand whose handle was lost (interrupted between its start and our bookkeeping)
    await stopConnmanOfLab(labDir(lab.name)).catch(() => {});
    await labDown(lab.name);
  }

  private keep(path: string, name: string): void {
    mkdirSync(this.outDir, { recursive: true });
    copyFileSync(path, `${this.outDir}/${name}`);
  }
}
