// An application for daemon tests: its own bus connection, a notifier per session, the
// Updates it got (a raw dbus-next client, independent of src/client).
import dbus, { type MessageBus } from 'dbus-next';
import { unwrap } from './connman.ts';

const V = dbus.Variant;
export type Settings = Record<string, unknown>;

/** An application: its own bus connection, a notifier per session, the Updates it got. */
export class App {
  readonly bus: MessageBus;
  readonly updates = new Map<string, Settings[]>();
  readonly released = new Set<string>();
  /** called with every Update, as it arrives */
  onUpdate: ((notifier: string, update: Settings) => void) | undefined;
  constructor(address: string) {
    this.bus = dbus.sessionBus({ busAddress: address });
    this.bus.addMethodHandler((m: dbus.Message) => {
      if (m.interface !== 'net.connman.Notification') return false;
      if (m.member === 'Update') {
        const list = this.updates.get(m.path) ?? [];
        const u = unwrap(m.body[0]) as Settings;
        list.push(u);
        this.updates.set(m.path, list);
        this.onUpdate?.(m.path, u);
      } else if (m.member === 'Release') this.released.add(m.path);
      if (!(m.flags & 1)) this.bus.send(dbus.Message.newMethodReturn(m, '', []));
      return true;
    });
  }
  async call(path: string, iface: string, member: string, signature = '', body: unknown[] = []): Promise<unknown[]> {
    const r = await this.bus.call(new dbus.Message({ destination: 'net.connman', path, interface: iface, member, signature, body }));
    return r?.body ?? [];
  }
  async create(notifier: string, settings: Record<string, InstanceType<typeof V>>): Promise<string> {
    const [path] = (await this.call('/', 'net.connman.Manager', 'CreateSession', 'a{sv}o', [settings, notifier])) as [string];
    return path;
  }
  /** the session's settings as the application knows them: all Updates merged */
  view(notifier: string): Settings {
    return Object.assign({}, ...(this.updates.get(notifier) ?? []));
  }
  close(): void {
    this.bus.disconnect();
  }
}

