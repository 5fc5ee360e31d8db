// The net.connman D-Bus API: owns the bus name, the objects (Manager, one Technology per
// type, one Service per service) and the signals. After every state transition the
// daemon hands over (before, after); this publishes exactly what changed, as ConnMan does:
// PropertyChanged per changed property, TechnologyAdded/Removed, and a coalesced
// ServicesChanged when the list or its order changes.
import type { BusConnection } from '../bus/bus-connection.ts';
import { orderServices } from '../../engine/order.ts';
import type { EngineState } from '../../engine/types.ts';
import { attachDispatcher } from '../bus/dispatcher.ts';
import { type InterfaceSpec, ObjectTree } from '../bus/object-tree.ts';
import type { Controller } from './controller.ts';
import { type AgentRegistry, MANAGER_IFACE, managerInterface } from './manager.ts';
import { type Dict, managerProperties, sameVariant, serviceProperties, servicePath, technologyPath, technologyProperties } from './properties.ts';
import { SERVICE_IFACE, serviceInterface } from './service.ts';
import { TECHNOLOGY_IFACE, technologyInterface } from './technology.ts';

const SERVICES_CHANGED_DELAY_MS = 10;

export interface ConnmanApiOptions {
  busName: string;
  onInternalError?: (err: unknown) => void;
  /** after a method's reply is written (see DispatcherOptions) */
  afterReply?: () => void;
  /** more Manager methods (sessions) */
  managerMethods?: Partial<InterfaceSpec['methods']>;
}

export class ConnmanApi {
  readonly tree = new ObjectTree();
  readonly agents: AgentRegistry = { agent: undefined };
  private readonly detach: () => void;
  private managerProps: Dict;
  private readonly techProps = new Map<string, Dict>();
  private readonly serviceProps = new Map<string, Dict>();
  private lastOrder: string[] = [];
  /** services added since the last ServicesChanged (their full properties go in it) */
  private readonly addedSince = new Set<string>();
  private readonly removedSince = new Set<string>();
  private servicesTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly bus: BusConnection,
    private readonly ctl: Controller,
    private readonly opts: ConnmanApiOptions,
  ) {
    this.tree.add('/', managerInterface(ctl, this.agents, opts.managerMethods ?? {}));
    this.detach = attachDispatcher(bus, this.tree, { onInternalError: (e) => opts.onInternalError?.(e), ...(opts.afterReply ? { afterReply: opts.afterReply } : {}) });
    this.managerProps = managerProperties(ctl.state());
    this.publish(undefined, ctl.state());
  }

  /** A bus connection ended (the daemon watches NameOwnerChanged): an agent ends with its client's connection, as ConnMan's. */
  ownerGone(name: string): void {
    if (this.agents.agent?.owner === name) this.agents.agent = undefined;
  }

  /** More Manager methods (sessions), added after construction. */
  addManagerMethods(methods: InterfaceSpec['methods']): void {
    const m = this.tree.get('/')?.get(MANAGER_IFACE);
    if (m) Object.assign(m.methods, methods);
  }

  async claimName(): Promise<void> {
    // DO_NOT_QUEUE: a second daemon must fail loudly, not wait in line
    const r = await this.bus.requestName(this.opts.busName, 0x4);
    if (r !== 1 && r !== 4) throw new Error(`cannot own ${this.opts.busName} on the bus (another daemon has it)`);
  }

  private signal(path: string, iface: string, name: string, sig: string, body: unknown[]): void {
    this.bus.signal(path, iface, name, sig, body);
  }

  private changed(path: string, iface: string, before: Dict | undefined, after: Dict): void {
    for (const [k, v] of Object.entries(after)) {
      if (!before || !sameVariant(before[k], v)) this.signal(path, iface, 'PropertyChanged', 'sv', [k, v]);
    }
  }

  /** Publishes what changed between two states (`before` undefined: everything is new). */
  publish(before: EngineState | undefined, after: EngineState): void {
    const now = this.ctl.now();
    // technologies
    for (const [type, t] of after.technologies) {
      const path = technologyPath(type);
      const props = technologyProperties(after, t);
      const old = this.techProps.get(type);
      if (!old) {
        this.tree.add(path, technologyInterface(this.ctl, type));
        this.techProps.set(type, props);
        this.signal('/', MANAGER_IFACE, 'TechnologyAdded', 'oa{sv}', [path, props]);
      } else {
        this.changed(path, TECHNOLOGY_IFACE, old, props);
        this.techProps.set(type, props);
      }
    }
    for (const type of [...this.techProps.keys()]) {
      if (after.technologies.has(type as never)) continue;
      this.techProps.delete(type);
      this.tree.remove(technologyPath(type));
      this.signal('/', MANAGER_IFACE, 'TechnologyRemoved', 'o', [technologyPath(type)]);
    }
    // services
    for (const [id, s] of after.services) {
      const old = this.serviceProps.get(id);
      if (old && before?.services.get(id) === s) continue;
      const props = serviceProperties(s, now);
      if (!old) {
        this.tree.add(servicePath(id), serviceInterface(this.ctl, id));
        this.addedSince.add(id);
        this.removedSince.delete(id);
      } else this.changed(servicePath(id), SERVICE_IFACE, old, props);
      this.serviceProps.set(id, props);
    }
    for (const id of [...this.serviceProps.keys()]) {
      if (after.services.has(id)) continue;
      this.serviceProps.delete(id);
      this.tree.remove(servicePath(id));
      this.addedSince.delete(id);
      this.removedSince.add(id);
    }
    const order = orderServices(after.services.values(), after.config.preferredTechnologies).map((s) => s.id);
    if (order.join('\n') !== this.lastOrder.join('\n') || this.removedSince.size > 0) {
      this.lastOrder = order;
      this.scheduleServicesChanged();
    }
    // manager
    const mp = managerProperties(after);
    this.changed('/', MANAGER_IFACE, this.managerProps, mp);
    this.managerProps = mp;
  }

  private scheduleServicesChanged(): void {
    if (this.servicesTimer) return;
    this.servicesTimer = setTimeout(() => {
      this.servicesTimer = undefined;
      const changed = this.lastOrder.map((id) => [servicePath(id), this.addedSince.has(id) ? (this.serviceProps.get(id) ?? {}) : {}]);
      const removed = [...this.removedSince].map(servicePath);
      this.addedSince.clear();
      this.removedSince.clear();
      this.signal('/', MANAGER_IFACE, 'ServicesChanged', 'a(oa{sv})ao', [changed, removed]);
    }, SERVICES_CHANGED_DELAY_MS);
  }

  close(): void {
    if (this.servicesTimer) clearTimeout(this.servicesTimer);
    this.detach();
  }
}
