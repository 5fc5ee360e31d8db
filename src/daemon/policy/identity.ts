// Who a bus caller is, from what the bus daemon and the kernel say (never from the caller's
// own words): uid, all gids, pid and security label from GetConnectionCredentials (the bus
// took them from SO_PEERCRED/SO_PEERGROUPS/SO_PEERSEC when the caller connected), the
// cgroup v2 path from /proc/<pid>/cgroup. Older buses without GetConnectionCredentials get
// GetConnectionUnixUser (+ ProcessID, SELinux context) and the groups /etc/group gives
// that user, which is what ConnMan does (getgrouplist).
//
// Known limit: the cgroup is read by pid after the fact; if the caller's process died and
// its pid was reused in between, the cgroup is another process's. A pidfd (the bus's
// ProcessFD, dbus ≥ 1.15.6, with fd passing) would close that window.
import { readFileSync } from 'node:fs';
import dbus from 'dbus-next';
import type { Identity } from '../../engine/session-types.ts';
import { type Accounts, accountsFrom } from './accounts.ts';

/**
 * What identification needs of a bus connection: calls to the bus, and (to tell a busy bus
 * from a dead one) its messages. The daemon's BusConnection and dbus-next's MessageBus both are one.
 */
export interface CredentialsBus {
  call(msg: dbus.Message): Promise<dbus.Message | null>;
  on?(event: 'message', f: (m: dbus.Message) => void): unknown;
}

const DBUS = { destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus' } as const;
const NAME_HAS_NO_OWNER = 'org.freedesktop.DBus.Error.NameHasNoOwner';
const UNKNOWN_METHOD = 'org.freedesktop.DBus.Error.UnknownMethod';
const DEFAULT_TIMEOUT_MS = 5000;

/** The caller left the bus before we could identify it. */
export class CallerGoneError extends Error {
  override readonly name = 'CallerGoneError';
  constructor(readonly sender: string) {
    super(`caller ${sender} is no longer on the bus`);
  }
}

/** The bus would not or could not tell us who the caller is. */
export class IdentityError extends Error {
  override readonly name = 'IdentityError';
  constructor(
    readonly sender: string,
    message: string,
    /** the bus's error name, when the bus refused */
    readonly dbusName?: string,
  ) {
    super(`cannot identify ${sender}: ${message}`);
  }
}

export interface IdentityOptions {
  /** default /proc */
  procRoot?: string;
  /** per bus call; default 5000 ms */
  timeoutMs?: number;
  /** for the old-bus fallback only (groups of a uid); default: /etc/passwd and /etc/group, read when needed */
  accounts?: () => Accounts;
}

/** The cgroup v2 path in /proc/<pid>/cgroup text (the `0::/path` line); undefined on a v1-only system. */
export function parseProcCgroup(text: string): string | undefined {
  for (const line of text.split('\n')) if (line.startsWith('0::')) return line.slice(3).trim() || undefined;
  return undefined;
}

export function cgroupOfPid(pid: number, procRoot = '/proc'): string | undefined {
  try {
    return parseProcCgroup(readFileSync(`${procRoot}/${pid}/cgroup`, 'utf8'));
  } catch {
    // the process is gone: the caller will be gone from the bus too in a moment
    return undefined;
  }
}

/**
 * An SELinux context from a LinuxSecurityLabel (NUL-terminated bytes). AppArmor labels
 * (`unconfined`, `/usr/bin/x (enforce)`) come the same way and are not SELinux contexts:
 * only `user:role:type[:level]` counts, so an AppArmor profile can never match a `selinux` policy.
 */
export function selinuxFromLabel(label: Uint8Array | string): string | undefined {
  const s = (typeof label === 'string' ? label : Buffer.from(label).toString('utf8')).replace(/\0.*$/s, '');
  return /^[^:\s]+:[^:\s]+:[^:\s]+(:\S+)?$/.test(s) ? s : undefined;
}

const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;

/** dbus-next gives a{sv} as an object of Variants; anything else is treated as absent. */
function variantValue(dict: unknown, key: string): unknown {
  if (!dict || typeof dict !== 'object') return undefined;
  const v = (dict as Record<string, unknown>)[key];
  return v instanceof dbus.Variant ? v.value : undefined;
}

/** When each bus connection last delivered a message (performance.now()). */
const lastHeard = new WeakMap<CredentialsBus, { at: number }>();

function heardFrom(bus: CredentialsBus): { at: number } {
  let h = lastHeard.get(bus);
  if (!h) {
    const rec = { at: performance.now() };
    h = rec;
    lastHeard.set(bus, rec);
    // (test doubles of a bus may have no events: the plain timeout applies then)
    if (typeof bus.on === 'function') bus.on('message', () => {
      rec.at = performance.now();
    });
  }
  return h;
}

/** how many timeouts a lookup may wait in all while the bus keeps talking */
const BUSY_BUS_PATIENCE = 6;

function busCall(bus: CredentialsBus, sender: string, member: string, timeoutMs: number): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    // The bus daemon answers its own methods at once; a silent bus means a dead connection.
    // But our own event loop may have been busy (thousands of calls at once): when the timer
    // fires, the answer may be waiting unread in the socket. So the timer gives up only after
    // the socket has been read (setImmediate runs after the poll phase) and only if the bus
    // has said nothing since the last check; a busy bus gets a few more rounds.
    const heard = heardFrom(bus);
    const started = performance.now();
    let checked = started;
    let settled = false;
    let timer: NodeJS.Timeout;
    const expire = (): void => {
      setImmediate(() => {
        if (settled) return;
        const now = performance.now();
        if (heard.at > checked && now - started < timeoutMs * BUSY_BUS_PATIENCE) {
          checked = now;
          timer = setTimeout(expire, timeoutMs);
          return;
        }
        settled = true;
        reject(new IdentityError(sender, `no answer from the bus to ${member} within ${Math.round(now - started)} ms`));
      });
    };
    timer = setTimeout(expire, timeoutMs);
    const done = (f: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      f();
    };
    let p: Promise<dbus.Message | null>;
    try {
      p = bus.call(new dbus.Message({ ...DBUS, member, signature: 's', body: [sender] }));
    } catch (e) {
      done(() => reject(new IdentityError(sender, `${member}: ${e instanceof Error ? e.message : String(e)}`)));
      return;
    }
    p.then(
      (reply) => done(() => resolve(reply?.body ?? [])),
      (e: unknown) =>
        done(() => {
          if (e instanceof dbus.DBusError && e.type === NAME_HAS_NO_OWNER) reject(new CallerGoneError(sender));
          else if (e instanceof dbus.DBusError) reject(new IdentityError(sender, `${member}: ${e.type}: ${e.text}`, e.type));
          else reject(new IdentityError(sender, `${member}: ${e instanceof Error ? e.message : String(e)}`));
        }),
    );
  });
}

function defaultAccounts(): Accounts {
  const read = (p: string): string => {
    try {
      return readFileSync(p, 'utf8');
    } catch {
      return '';
    }
  };
  return accountsFrom(read('/etc/passwd'), read('/etc/group'));
}

/** Completes an identity with the cgroup of its pid. */
function withCgroup(id: Identity, procRoot: string): Identity {
  if (id.pid !== undefined) {
    const cg = cgroupOfPid(id.pid, procRoot);
    if (cg !== undefined) id.cgroup = cg;
  }
  return id;
}

/** For buses without GetConnectionCredentials (dbus < 1.7.2): one call per fact. */
async function legacyIdentity(bus: CredentialsBus, sender: string, opts: IdentityOptions, timeoutMs: number): Promise<Identity> {
  const [uid] = await busCall(bus, sender, 'GetConnectionUnixUser', timeoutMs);
  if (!isUint(uid)) throw new IdentityError(sender, 'GetConnectionUnixUser gave no uid');
  const gids = (opts.accounts ?? defaultAccounts)().groupsOf(uid);
  const id: Identity = { uid, gids };
  try {
    const [pid] = await busCall(bus, sender, 'GetConnectionUnixProcessID', timeoutMs);
    if (isUint(pid) && pid > 0) id.pid = pid;
  } catch (e) {
    if (e instanceof CallerGoneError) throw e;
    // no pid (a bus on another host, say): no cgroup then
  }
  try {
    const [ctx] = await busCall(bus, sender, 'GetConnectionSELinuxSecurityContext', timeoutMs);
    const label = ctx instanceof Uint8Array ? selinuxFromLabel(ctx) : undefined;
    if (label !== undefined) id.selinux = label;
  } catch (e) {
    if (e instanceof CallerGoneError) throw e;
    // SELinuxSecurityContextUnknown: no SELinux here, as ConnMan treats it
  }
  return id;
}

/**
 * The identity of a bus connection, uncached. Rejects with CallerGoneError when `sender`
 * has left the bus, with IdentityError when the bus gives no uid.
 */
export async function callerIdentity(bus: CredentialsBus, sender: string, opts: IdentityOptions = {}): Promise<Identity> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const procRoot = opts.procRoot ?? '/proc';
  let creds: unknown;
  try {
    [creds] = await busCall(bus, sender, 'GetConnectionCredentials', timeoutMs);
  } catch (e) {
    if (e instanceof IdentityError && e.dbusName === UNKNOWN_METHOD) return withCgroup(await legacyIdentity(bus, sender, opts, timeoutMs), procRoot);
    throw e;
  }
  const uid = variantValue(creds, 'UnixUserID');
  // a connection that authenticated without a uid (ANONYMOUS, a TCP bus): we never guess one
  if (!isUint(uid)) throw new IdentityError(sender, 'the bus reports no UnixUserID');
  const groups = variantValue(creds, 'UnixGroupIDs');
  // UnixGroupIDs came with dbus 1.10 (SO_PEERGROUPS); before that, the user's configured groups
  const gids = Array.isArray(groups) && groups.every(isUint) ? [...new Set(groups)] : (opts.accounts ?? defaultAccounts)().groupsOf(uid);
  const id: Identity = { uid, gids };
  const pid = variantValue(creds, 'ProcessID');
  if (isUint(pid) && pid > 0) id.pid = pid;
  const label = variantValue(creds, 'LinuxSecurityLabel');
  if (label instanceof Uint8Array) {
    const ctx = selinuxFromLabel(label);
    if (ctx !== undefined) id.selinux = ctx;
  }
  return withCgroup(id, procRoot);
}

/**
 * callerIdentity with a cache per unique bus name: a connection's credentials never change
 * and unique names are never reused by a bus. Concurrent lookups share one bus call;
 * failures are not cached. Call forget() when the name leaves the bus (NameOwnerChanged
 * with an empty new owner).
 */
export class CallerIdentities {
  private readonly cache = new Map<string, Promise<Identity>>();
  /** the lookups of `cache` that have succeeded: a known caller is answered without a wait */
  private readonly settled = new Map<string, Identity>();

  constructor(
    private readonly bus: CredentialsBus,
    private readonly opts: IdentityOptions & {
      /** a bound on names whose departure we missed; oldest go first. Default 4096. */
      maxEntries?: number;
    } = {},
  ) {}

  get(sender: string): Promise<Identity> {
    // a well-known name's owner can change: only unique names (":1.42") are cached
    if (!sender.startsWith(':')) return callerIdentity(this.bus, sender, this.opts);
    const hit = this.cache.get(sender);
    if (hit) return hit;
    const p = callerIdentity(this.bus, sender, this.opts);
    this.cache.set(sender, p);
    p.then(
      (id) => {
        if (this.cache.get(sender) === p) this.settled.set(sender, id);
      },
      () => {
        // only if still ours: forget() may have run, and a later lookup replaced it
        if (this.cache.get(sender) === p) this.cache.delete(sender);
      },
    );
    const max = this.opts.maxEntries ?? 4096;
    while (this.cache.size > max) {
      const oldest = this.cache.keys().next().value;
      if (oldest === undefined) break;
      this.forget(oldest);
    }
    return p;
  }

  /** The identity of a caller already looked up, if its lookup has succeeded. */
  known(sender: string): Identity | undefined {
    return this.settled.get(sender);
  }

  forget(sender: string): void {
    this.cache.delete(sender);
    this.settled.delete(sender);
  }

  get size(): number {
    return this.cache.size;
  }
}
