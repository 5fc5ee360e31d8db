// A minimal net.connman client for tests: GetServices with variants unwrapped, and waiting
// for a condition. (The product's client library is src/client; tests of the daemon keep
// their own small one so a bug in either cannot hide one in the other.)
import dbus, { type MessageBus } from 'dbus-next';

export type Props = Record<string, unknown>;

export function unwrap(v: unknown): unknown {
  if (v instanceof dbus.Variant) return unwrap(v.value);
  if (Array.isArray(v)) return v.map(unwrap);
  if (v && typeof v === 'object' && !Buffer.isBuffer(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unwrap(x)]));
  return v;
}

export class TestBus {
  readonly bus: MessageBus;
  constructor(address: string) {
    this.bus = dbus.sessionBus({ busAddress: address });
  }
  async call(path: string, iface: string, member: string, signature = '', body: unknown[] = []): Promise<unknown[]> {
    const r = await this.bus.call(new dbus.Message({ destination: 'net.connman', path, interface: iface, member, signature, body }));
    return r?.body ?? [];
  }
  async services(): Promise<{ path: string; id: string; props: Props }[]> {
    const [list] = (await this.call('/', 'net.connman.Manager', 'GetServices')) as [[string, Props][]];
    return list.map(([path, props]) => ({ path, id: path.split('/').pop() ?? '', props: unwrap(props) as Props }));
  }
  async byIfname(ifname: string): Promise<{ path: string; id: string; props: Props }> {
    const s = (await this.services()).find((x) => (x.props.Ethernet as Props | undefined)?.Interface === ifname);
    if (!s) throw new Error(`no service on ${ifname}`);
    return s;
  }
  close(): void {
    this.bus.disconnect();
  }
}

export async function waitFor<T>(what: string, f: () => Promise<T | undefined | false>, timeoutMs = 10_000, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await f();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
