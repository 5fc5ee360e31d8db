// The one owner of netsession's kernel state (in the spirit of netd's RouteController):
// given the desired routes, rules and nft table, and the mirror's observed state, it
// applies the smallest change. Idempotent, restart-safe (on start the desired state is
// compared with what is there, so stale objects of ours are removed), and blind to
// everything outside its Ownership.
import type { KernelMirror } from '../kernel-mirror.ts';
import { ENOENT, ESRCH, type NetlinkError } from '../netlink/errors.ts';
import type { NftTableModel } from '../nft/model.ts';
import type { Nft } from '../nft/nft.ts';
import { planNft } from '../nft/plan.ts';
import { renderReplace } from '../nft/render.ts';
import type { RtOp } from '../rtnetlink/client.ts';
import type { AddressSpec } from '../rtnetlink/address.ts';
import type { Route, Rule } from '../rtnetlink/types.ts';
import { type Ownership, validateOwnership } from './ownership.ts';
import { planRouting, validateDesired } from './plan.ts';

export interface DesiredKernelState {
  /** addresses netsession configures itself (DHCP, manual), tagged with our protocol (IFA_PROTO) */
  addresses?: readonly AddressSpec[];
  routes: readonly Route[];
  rules: readonly Rule[];
  /** our nft table; undefined removes it; 'keep' leaves it for a later reconcileNft() */
  nft?: NftTableModel | 'keep';
}

export interface ReconcileReport {
  addresses: { added: number; deleted: number };
  routes: { added: number; replaced: number; deleted: number };
  rules: { added: number; deleted: number };
  nft: 'none' | 'replace' | 'delete' | 'elements';
  conflicts: { desired: Route; foreign: Route }[];
  errors: NetlinkError[];
  /** true when nothing had to change */
  unchanged: boolean;
}

export class Reconciler {
  private queue: Promise<unknown> = Promise.resolve();
  /** rendering of the nft table last applied or verified ('' = no table) */
  private nftApplied: string | undefined;

  constructor(
    private readonly mirror: KernelMirror,
    private readonly nft: Nft,
    readonly ownership: Ownership,
  ) {
    validateOwnership(ownership);
  }

  /** Reconciles once; calls are serialised. */
  reconcile(desired: DesiredKernelState): Promise<ReconcileReport> {
    const run = this.queue.then(() => this.run(desired));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async run(desired: DesiredKernelState): Promise<ReconcileReport> {
    if (desired.nft && desired.nft !== 'keep' && (desired.nft.family !== this.ownership.nftTable.family || desired.nft.name !== this.ownership.nftTable.name)) {
      throw new RangeError(`desired nft table ${desired.nft.family} ${desired.nft.name} is not ours`);
    }
    await this.mirror.settle();
    const st = this.mirror.state;
    const plan = planRouting(this.ownership, desired, { routes: st.routes.values(), rules: st.rules.values(), addresses: st.addresses.values() });
    const report: ReconcileReport = {
      addresses: { added: 0, deleted: 0 },
      routes: { added: 0, replaced: 0, deleted: 0 },
      rules: { added: 0, deleted: 0 },
      nft: 'none',
      conflicts: plan.conflicts,
      errors: [],
      unchanged: false,
    };
    // nft marks traffic towards rules: it changes after new rules exist and before old ones go
    // addresses first (routes name them as preferred source), and last out
    const phases: (RtOp[] | 'nft')[] = [plan.addressAdds, plan.routeAdds, plan.ruleAdds, 'nft', plan.ruleDels, plan.routeDels, plan.addressDels];
    for (const phase of phases) {
      if (phase === 'nft') {
        if (desired.nft !== 'keep') report.nft = await this.applyNft(desired.nft);
        continue;
      }
      if (phase.length === 0) continue;
      await this.applyOps(phase, report);
    }
    await this.mirror.settle();
    const changes = plan.addressAdds.length + plan.addressDels.length + plan.routeAdds.length + plan.ruleAdds.length + plan.ruleDels.length + plan.routeDels.length;
    report.unchanged = changes === 0 && report.nft === 'none';
    return report;
  }

  /**
   * Only these rules (serialised with reconcile): deletions first, then additions. For a few
   * rules whose place in the whole is known (a session's own marker rules, while nothing else
   * changes): no plan over every object. A later reconcile() puts right whatever failed here.
   */
  applyRules(adds: readonly Rule[], dels: readonly Rule[]): Promise<Pick<ReconcileReport, 'rules' | 'errors'>> {
    const run = this.queue.then(async () => {
      // ours only, either way (the same check as a whole plan's)
      validateDesired(this.ownership, { routes: [], rules: [...adds, ...dels] });
      const ops: RtOp[] = [...dels.map((rule) => ({ op: 'delete' as const, rule })), ...adds.map((rule) => ({ op: 'add' as const, rule }))];
      const report = { addresses: { added: 0, deleted: 0 }, routes: { added: 0, replaced: 0, deleted: 0 }, rules: { added: 0, deleted: 0 }, errors: [] };
      if (ops.length === 0) return report;
      await this.mirror.ready;
      await this.applyOps(ops, report);
      return report;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Sends the ops and counts what they did into `report`. */
  private async applyOps(ops: readonly RtOp[], report: Pick<ReconcileReport, 'addresses' | 'routes' | 'rules' | 'errors'>): Promise<void> {
    const results = await this.mirror.rtnl.apply(ops);
    results.forEach((r, i) => {
      const op = ops[i]!;
      if (!r.ok) {
        // already gone is what a delete wanted
        if (op.op === 'delete' && (r.error.errno === ESRCH || r.error.errno === ENOENT)) return;
        report.errors.push(r.error);
        return;
      }
      if ('route' in op) report.routes[op.op === 'add' ? 'added' : op.op === 'replace' ? 'replaced' : 'deleted']++;
      else if ('rule' in op) report.rules[op.op === 'delete' ? 'deleted' : 'added']++;
      else if ('address' in op) report.addresses[op.op === 'delete' ? 'deleted' : 'added']++;
    });
  }

  /** Only the nft table (serialised with reconcile): for changes nothing waits for. */
  reconcileNft(desired: NftTableModel | undefined): Promise<ReconcileReport['nft']> {
    if (desired && (desired.family !== this.ownership.nftTable.family || desired.name !== this.ownership.nftTable.name)) {
      return Promise.reject(new RangeError(`desired nft table ${desired.family} ${desired.name} is not ours`));
    }
    const run = this.queue.then(() => this.applyNft(desired));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async applyNft(desired: NftTableModel | undefined): Promise<ReconcileReport['nft']> {
    const { family, name } = this.ownership.nftTable;
    // nft has no change notifications; we are its only writer, so once the table is known to
    // match what we asked for, asking again costs a process spawn for nothing
    const key = desired ? renderReplace(desired) : '';
    if (this.nftApplied === key) return 'none';
    this.nftApplied = undefined;
    const observed = await this.nft.observe(family, name);
    const plan = planNft(family, name, desired, observed);
    if (plan.kind !== 'none') await this.nft.apply(plan.script);
    this.nftApplied = key;
    return plan.kind;
  }

  /** Forget what nft holds: the next reconcile reads it back (after someone else touched it). */
  invalidateNft(): void {
    this.nftApplied = undefined;
  }
}
