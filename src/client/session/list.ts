// Which sessions exist, as far as anyone but their owners can tell: the daemon has no method
// that lists sessions, but its object tree does (introspection of /sessions, as ConnMan's),
// and the session path names the owner's bus connection, which the bus identifies (pid, uid).
// Settings and state are told only to the owner.
import { readFileSync } from 'node:fs';
import { systemBusAddress } from '../bus.ts';
import { CONNMAN_BUS_NAME } from '../connman/client.ts';
import { DaemonError, DaemonUnavailableError } from '../errors.ts';
import { SessionBus } from './session-bus.ts';

const SESSION_IFACE = 'net.connman.Session';
const MAX_IN_FLIGHT = 32;
const MAX_SESSIONS = 100_000;

export interface SessionListEntry {
  /** the session's object path */
  path: string;
  /** the owner's unique bus name (:1.42) */
  owner: string;
  /** the owner's notifier object path */
  notifier: string;
  /** from the bus, while the owner is connected */
  pid?: number;
  uid?: number;
  /** /proc/PID/cmdline, when this process may read it */
  command?: string;
}

export interface ListSessionsOptions {
  bus?: string;
  busName?: string;
  callTimeoutMs?: number;
}

/** The daemon cannot tell (no introspection): the CLI says "not supported by this daemon yet". */
export class SessionListUnsupportedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SessionListUnsupportedError';
  }
}

/** /sessions/_1_25/a/b → owner :1.25, notifier /a/b (ConnMan: ':' and '.' of the owner became '_'). */
export function parseSessionPath(path: string): { owner: string; notifier: string } | undefined {
  const m = /^\/sessions\/_([0-9]+)_([0-9]+)(\/.+)$/.exec(path);
  if (!m) return undefined;
  return { owner: `:${m[1]}.${m[2]}`, notifier: m[3]! };
}

/** Child node names and interfaces of an introspection document. */
export function parseIntrospection(xml: string): { nodes: string[]; interfaces: string[] } {
  const nodes = [...xml.matchAll(/<node\s+name="([^"]+)"\s*\/?>/g)].map((m) => m[1]!);
  const interfaces = [...xml.matchAll(/<interface\s+name="([^"]+)"/g)].map((m) => m[1]!);
  return { nodes, interfaces };
}

function commandOf(pid: number): string | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    const s = raw.split('\0').filter(Boolean).join(' ');
    return s === '' ? undefined : s;
  } catch {
    return undefined;
  }
}

export async function listSessions(opts: ListSessionsOptions = {}): Promise<SessionListEntry[]> {
  const link = await SessionBus.open(systemBusAddress(opts.bus));
  const busName = opts.busName ?? CONNMAN_BUS_NAME;
  const t = opts.callTimeoutMs ? { timeoutMs: opts.callTimeoutMs } : {};
  try {
    const daemon = await link.nameOwner(busName);
    if (daemon === undefined) throw new DaemonUnavailableError('no-daemon', link.address, `${busName} is not on the bus at ${link.address} (is netsessiond running?)`);
    const introspect = async (path: string): Promise<{ nodes: string[]; interfaces: string[] }> => {
      const [xml] = await link.call({ destination: busName, path, interface: 'org.freedesktop.DBus.Introspectable', member: 'Introspect', ...t });
      return parseIntrospection(String(xml));
    };
    let root: { nodes: string[] };
    try {
      root = await introspect('/');
    } catch (err) {
      if (err instanceof DaemonError) throw new SessionListUnsupportedError(`${busName} does not tell its objects (${err.dbusName}); listing sessions needs a method the daemon does not have yet`);
      throw err;
    }
    if (!root.nodes.includes('sessions')) return [];
    // breadth first, a bounded number of calls in flight
    const found: string[] = [];
    let queue = ['/sessions'];
    while (queue.length > 0 && found.length < MAX_SESSIONS) {
      const next: string[] = [];
      for (let i = 0; i < queue.length; i += MAX_IN_FLIGHT) {
        const batch = queue.slice(i, i + MAX_IN_FLIGHT);
        const results = await Promise.all(
          batch.map((p) =>
            introspect(p).catch((err: unknown): { nodes: string[]; interfaces: string[] } => {
              // a session that ended meanwhile
              if (err instanceof DaemonError) return { nodes: [], interfaces: [] };
              throw err;
            }),
          ),
        );
        results.forEach((r, k) => {
          const p = batch[k]!;
          if (r.interfaces.includes(SESSION_IFACE)) found.push(p);
          for (const n of r.nodes) next.push(`${p}/${n}`);
        });
      }
      queue = next;
    }
    const out: SessionListEntry[] = [];
    const owners = new Map<string, { pid?: number; uid?: number }>();
    for (const path of found.sort()) {
      const parsed = parseSessionPath(path);
      if (!parsed) continue;
      let who = owners.get(parsed.owner);
      if (!who) {
        who = {};
        const ask = async (member: string): Promise<number | undefined> => {
          try {
            const [v] = await link.call({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member, signature: 's', body: [parsed.owner], ...t });
            return typeof v === 'number' ? v : undefined;
          } catch {
            return undefined;
          }
        };
        const [pid, uid] = await Promise.all([ask('GetConnectionUnixProcessID'), ask('GetConnectionUnixUser')]);
        if (pid !== undefined) who.pid = pid;
        if (uid !== undefined) who.uid = uid;
        owners.set(parsed.owner, who);
      }
      const command = who.pid !== undefined ? commandOf(who.pid) : undefined;
      out.push({ path, ...parsed, ...who, ...(command ? { command } : {}) });
    }
    return out;
  } finally {
    link.close();
  }
}
