// The session policy directory, live: every *.policy file in it (not hidden), re-read when
// the directory changes (create, rewrite in place, editors' rename-into-place, delete,
// rename away) and reported through onChange. fs.watch (inotify) on the directory with a
// short debounce; when the directory is missing, a watch on its parent (if that exists)
// plus a cheap periodic stat notice it appearing. Each reload re-reads every file and
// /etc/passwd + /etc/group: measured, that costs well under a millisecond for a handful of
// small files, and unlike mtime/size comparisons it cannot miss a same-size rewrite within
// one timestamp tick. Only files whose text changed are parsed (and their warnings logged)
// again.
import { closeSync, constants, type FSWatcher, fstatSync, openSync, readdirSync, readFileSync, readSync, statSync, watch } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { PolicyGroup } from '../../engine/session-types.ts';
import { accountsFrom } from './accounts.ts';
import { isPolicyFileName, parsePolicyFile } from './policy-file.ts';

export const DEFAULT_POLICY_DIR = '/etc/netsession/session_policy';
/** a policy file is a few lines; anything this big is a mistake (or not text) */
const MAX_FILE_BYTES = 1 << 20;

export type PolicyLogLevel = 'warn' | 'info' | 'debug';

export interface PolicyDirectoryOptions {
  /** default /etc/netsession/session_policy */
  dir?: string;
  /** the groups of all files (by file name, then group order) after a change that altered them */
  onChange: (groups: PolicyGroup[]) => void;
  /** bad files and groups (warn), reloads (info/debug) */
  log?: (level: PolicyLogLevel, message: string) => void;
  /** quiet time after the last event before reloading; default 50 ms */
  debounceMs?: number;
  /** how often a missing directory (or a replaced one) is looked for; default 5000 ms */
  recheckMs?: number;
  /** default /etc/passwd, /etc/group (tests point elsewhere) */
  passwdFile?: string;
  groupFile?: string;
}

interface FileEntry {
  text: string;
  groups: PolicyGroup[];
}

export interface ReloadStats {
  /** files read */
  files: number;
  /** files parsed because their text (or the accounts) changed */
  parsed: number;
  /** wall time of the reload in ms */
  ms: number;
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    // no /etc/group in a minimal container: names do not resolve, numbers still work
    return '';
  }
}

type ReadResult = { text: string } | { skip: string } | { gone: true };

/**
 * Reads a policy file without blocking on a FIFO (O_NONBLOCK, then fstat on the open fd,
 * so a file swapped between stat and open cannot fool us) and refuses files anyone may
 * write: a policy can grant EmergencyCall, which cuts every other session off.
 */
function readPolicyFile(path: string): ReadResult {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { gone: true };
    return { skip: `cannot open: ${code ?? String(e)}` };
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return { skip: 'not a regular file' };
    const me = process.geteuid?.() ?? 0;
    if (st.uid !== 0 && st.uid !== me) return { skip: `owned by uid ${st.uid}, not by root` };
    if (st.mode & 0o002) return { skip: 'writable by everyone' };
    if (st.size > MAX_FILE_BYTES) return { skip: `too large (${st.size} bytes)` };
    const buf = Buffer.alloc(st.size);
    let n = 0;
    while (n < buf.length) {
      const r = readSync(fd, buf, n, buf.length - n, n);
      if (r === 0) break; // truncated while we read: the next event reloads it
      n += r;
    }
    return { text: buf.subarray(0, n).toString('utf8') };
  } catch (e) {
    return { skip: `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}` };
  } finally {
    closeSync(fd);
  }
}

export class PolicyDirectory {
  readonly dir: string;
  private readonly opts: PolicyDirectoryOptions;
  private readonly debounceMs: number;
  private readonly recheckMs: number;
  private readonly files = new Map<string, FileEntry>();
  /** files we could not use, with the reason already logged (logged again only when the reason changes) */
  private readonly refused = new Map<string, string>();
  private accountsText: string | undefined;
  private current: PolicyGroup[] = [];
  private dirWatcher: FSWatcher | undefined;
  /** dev:ino of the watched directory: a replaced directory needs a new watch */
  private watchedId: string | undefined;
  private parentWatcher: FSWatcher | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private firstEventAt: number | undefined;
  private interval: NodeJS.Timeout | undefined;
  private started = false;
  private closed = false;
  private dirPresent = false;
  private watchWarned = false;
  /** the last reload's numbers (for diagnostics and tests) */
  lastReload: ReloadStats | undefined;

  constructor(opts: PolicyDirectoryOptions) {
    this.opts = opts;
    this.dir = opts.dir ?? DEFAULT_POLICY_DIR;
    this.debounceMs = opts.debounceMs ?? 50;
    this.recheckMs = opts.recheckMs ?? 5000;
  }

  /** The groups now in force. */
  get groups(): PolicyGroup[] {
    return this.current;
  }

  /**
   * Loads the directory and starts watching it. Returns the initial groups (onChange is
   * called for later changes only). Never throws for a missing or unreadable directory.
   */
  start(): PolicyGroup[] {
    if (this.closed) throw new Error('PolicyDirectory is closed');
    if (this.started) return this.current;
    this.started = true;
    this.reloadNow(false);
    this.interval = setInterval(() => this.recheck(), this.recheckMs);
    return this.current;
  }

  /** Stops every watcher and timer; onChange is not called afterwards. */
  close(): void {
    this.closed = true;
    clearTimeout(this.debounce);
    this.debounce = undefined;
    clearInterval(this.interval);
    this.interval = undefined;
    this.unwatchDir();
    this.unwatchParent();
  }

  /** Re-reads everything now (e.g. on SIGHUP); calls onChange if the groups changed. */
  reload(): void {
    if (this.started && !this.closed) this.reloadNow(true);
  }

  private log(level: PolicyLogLevel, msg: string): void {
    this.opts.log?.(level, msg);
  }

  /** An event: reload after debounceMs of quiet, but at the latest 10× that after the first one (a steady stream of writes must not starve us). */
  private schedule(): void {
    if (this.closed) return;
    const now = Date.now();
    this.firstEventAt ??= now;
    clearTimeout(this.debounce);
    const wait = Math.max(0, Math.min(this.debounceMs, this.firstEventAt + this.debounceMs * 10 - now));
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      this.firstEventAt = undefined;
      if (!this.closed) this.reloadNow(true);
    }, wait);
  }

  /** The periodic check: cheap (one stat) unless the directory appeared, vanished or was replaced. */
  private recheck(): void {
    if (this.closed) return;
    const id = this.dirId();
    // without a working watch (none possible, or the directory was replaced) this polls
    const stale = id === undefined ? this.dirPresent : !this.dirPresent || id !== this.watchedId || !this.dirWatcher;
    if (stale) this.schedule();
  }

  private dirId(): string | undefined {
    try {
      const st = statSync(this.dir);
      return st.isDirectory() ? `${st.dev}:${st.ino}` : undefined;
    } catch {
      return undefined;
    }
  }

  private watchDir(id: string): void {
    if (this.dirWatcher && this.watchedId === id) return;
    this.unwatchDir();
    try {
      const w = watch(this.dir, { persistent: true }, () => this.schedule());
      // e.g. the directory vanished under the watch: drop it, the recheck finds out what happened
      w.on('error', () => {
        if (this.dirWatcher === w) this.unwatchDir();
        this.schedule();
      });
      this.dirWatcher = w;
      this.watchedId = id;
      this.watchWarned = false;
    } catch (e) {
      // no inotify instances left, say: the periodic recheck still notices changes (slowly); said once
      if (this.watchWarned) return;
      this.watchWarned = true;
      this.log('warn', `${this.dir}: cannot watch (${(e as NodeJS.ErrnoException).code ?? String(e)}); changes are noticed within ${this.recheckMs} ms only`);
    }
  }

  private unwatchDir(): void {
    this.dirWatcher?.close();
    this.dirWatcher = undefined;
    this.watchedId = undefined;
  }

  /** While the directory is missing: its parent's events tell us when it appears (if the parent exists). */
  private watchParent(): void {
    if (this.parentWatcher) return;
    const name = basename(this.dir);
    try {
      const w = watch(dirname(this.dir), { persistent: true }, (_ev, f) => {
        if (f === null || f === name) this.schedule();
      });
      w.on('error', () => {
        if (this.parentWatcher === w) this.unwatchParent();
      });
      this.parentWatcher = w;
    } catch {
      // the parent is missing too: the periodic recheck covers it
    }
  }

  private unwatchParent(): void {
    this.parentWatcher?.close();
    this.parentWatcher = undefined;
  }

  private reloadNow(notify: boolean): void {
    const t0 = performance.now();
    const accountsText = `${readText(this.opts.passwdFile ?? '/etc/passwd')}\0${readText(this.opts.groupFile ?? '/etc/group')}`;
    if (accountsText !== this.accountsText) {
      // names may resolve differently now: parse every file again
      if (this.accountsText !== undefined) this.log('debug', 'accounts changed: re-resolving policy names');
      this.accountsText = accountsText;
      this.files.clear();
    }
    const [passwd = '', group = ''] = accountsText.split('\0');
    let accounts: ReturnType<typeof accountsFrom> | undefined;

    const id = this.dirId();
    let names: string[] = [];
    if (id === undefined) {
      if (this.dirPresent) this.log('info', `${this.dir}: directory gone; no session policies`);
      else if (!notify) this.log('debug', `${this.dir}: no such directory (yet); no session policies`);
      this.dirPresent = false;
      this.unwatchDir();
      this.watchParent();
    } else {
      if (!this.dirPresent && this.started) this.log('info', `${this.dir}: directory present; loading session policies`);
      this.dirPresent = true;
      this.unwatchParent();
      this.watchDir(id);
      try {
        // code-point order, not locale order: the same on every machine
        names = readdirSync(this.dir)
          .filter(isPolicyFileName)
          .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      } catch (e) {
        this.log('warn', `${this.dir}: cannot list (${(e as NodeJS.ErrnoException).code ?? String(e)}); no session policies`);
      }
    }

    let parsed = 0;
    const seen = new Set<string>();
    for (const name of names) {
      const r = readPolicyFile(join(this.dir, name));
      if ('gone' in r) continue; // deleted between readdir and open: the delete's event reloads again
      seen.add(name);
      if ('skip' in r) {
        this.files.delete(name);
        if (this.refused.get(name) !== r.skip) this.log('warn', `${name}: ${r.skip}; ignored`);
        this.refused.set(name, r.skip);
        continue;
      }
      this.refused.delete(name);
      const old = this.files.get(name);
      if (old && old.text === r.text) continue;
      accounts ??= accountsFrom(passwd, group);
      const res = parsePolicyFile(name, r.text, accounts);
      parsed++;
      for (const w of res.warnings) this.log('warn', w);
      this.log('debug', `${name}: ${old ? 'reloaded' : 'loaded'}, ${res.groups.length} group${res.groups.length === 1 ? '' : 's'}`);
      this.files.set(name, { text: r.text, groups: res.groups });
    }
    for (const name of [...this.files.keys()]) {
      if (seen.has(name)) continue;
      this.files.delete(name);
      this.log('debug', `${name}: removed`);
    }
    for (const name of [...this.refused.keys()]) if (!seen.has(name)) this.refused.delete(name);

    const groups: PolicyGroup[] = [];
    for (const name of names) groups.push(...(this.files.get(name)?.groups ?? []));
    this.lastReload = { files: seen.size, parsed, ms: performance.now() - t0 };
    if (isDeepStrictEqual(groups, this.current)) return;
    this.current = groups;
    this.log('info', `session policies: ${groups.length} group${groups.length === 1 ? '' : 's'} from ${new Set(groups.map((g) => g.file)).size} file(s)`);
    if (!notify) return;
    try {
      this.opts.onChange(groups);
    } catch (e) {
      // a consumer's bug must not end the daemon from inside a timer
      this.log('warn', `session policies: onChange failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}
