// Persisted settings in the state directory: one JSON file for the daemon (offline mode,
// technologies) and one per service; and one per DHCP lease in use, so that a daemon that
// restarts after a crash goes on with it instead of dropping the address. Writes are atomic
// (temporary file, fsync, rename), so a crash or a full disk leaves the previous version,
// never half a file; a failed write is reported and the daemon goes on with what it has in
// memory.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { checkIpv4, checkIpv6 } from '../engine/engine.ts';
import { leaseFromRecord, leaseToRecord } from '../bearers/dhcp/lease-record.ts';
import type { Lease } from '../bearers/dhcp/machine.ts';
import type { Ipv4Config, Ipv6Config, ServiceSettings, TechnologyType } from '../engine/types.ts';
import type { Logger } from './log.ts';

export interface GlobalSettings {
  offlineMode: boolean;
  powered: Partial<Record<TechnologyType, boolean>>;
}

const ID = /^[A-Za-z0-9_]{1,128}$/;
/** what writeAtomic writes before its rename */
const TMP = /\.json\.tmp-\d+$/;

export class StateStore {
  private readonly servicesDir: string;
  private readonly leasesDir: string;
  private readonly written = new Map<string, string>();
  /** files whose last write failed: said once, not on every change (a read-only or full disk) */
  private readonly failing = new Set<string>();

  constructor(
    private readonly dir: string,
    private readonly log: Logger,
  ) {
    this.servicesDir = join(dir, 'services');
    this.leasesDir = join(dir, 'leases');
    try {
      mkdirSync(this.servicesDir, { recursive: true, mode: 0o700 });
      mkdirSync(this.leasesDir, { recursive: true, mode: 0o700 });
    } catch (e) {
      log.error(`state directory ${dir} cannot be created (${(e as Error).message}): settings will not be kept`);
    }
    this.removeLeftovers();
  }

  /** Temporary files of a daemon killed while it wrote (the previous version is whole beside them). */
  private removeLeftovers(): void {
    for (const d of [this.dir, this.servicesDir, this.leasesDir]) {
      let names: string[];
      try {
        names = readdirSync(d);
      } catch {
        continue;
      }
      for (const n of names) {
        if (!TMP.test(n)) continue;
        try {
          rmSync(join(d, n), { force: true });
        } catch (e) {
          this.log.warn(`cannot remove ${join(d, n)}: ${(e as Error).message}`);
        }
      }
    }
  }

  /** `durable`: on disk before the rename (fsync), so that a power loss keeps the old version or the new one. */
  private writeAtomic(file: string, content: string, durable = true): boolean {
    if (this.written.get(file) === content) return true;
    const tmp = `${file}.tmp-${process.pid}`;
    try {
      const fd = openSync(tmp, 'w', 0o600);
      try {
        writeSync(fd, content);
        if (durable) fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, file);
      this.written.set(file, content);
      if (this.failing.delete(file)) this.log.info(`${file} saved again`);
      return true;
    } catch (e) {
      const why = `cannot save ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): keeping the previous version`;
      if (this.failing.has(file)) this.log.debug(why);
      else this.log.error(why);
      this.failing.add(file);
      try {
        rmSync(tmp, { force: true });
      } catch {
        /* the directory itself may be read-only */
      }
      return false;
    }
  }

  private readJson(file: string): unknown {
    try {
      const text = readFileSync(file, 'utf8');
      this.written.set(file, text);
      return JSON.parse(text);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn(`ignoring unreadable ${file}: ${(e as Error).message}`);
      return undefined;
    }
  }

  loadGlobal(): GlobalSettings {
    const j = this.readJson(join(this.dir, 'settings.json'));
    const out: GlobalSettings = { offlineMode: false, powered: {} };
    if (typeof j !== 'object' || j === null) return out;
    const o = j as Record<string, unknown>;
    if (typeof o.offlineMode === 'boolean') out.offlineMode = o.offlineMode;
    if (typeof o.powered === 'object' && o.powered !== null) {
      for (const [k, v] of Object.entries(o.powered)) if (typeof v === 'boolean') out.powered[k as TechnologyType] = v;
    }
    return out;
  }

  saveGlobal(g: GlobalSettings): boolean {
    return this.writeAtomic(join(this.dir, 'settings.json'), `${JSON.stringify(g, null, 2)}\n`);
  }

  loadServices(): Map<string, ServiceSettings> {
    return this.loadEach(this.servicesDir, validSettings, 'service settings');
  }

  /** Each valid file of a directory of `<id>.json`, by id; the others are said in the log and ignored. */
  private loadEach<T>(dir: string, valid: (j: unknown) => T | undefined, what: string): Map<string, T> {
    const out = new Map<string, T>();
    let files: string[] = [];
    try {
      files = readdirSync(dir);
    } catch {
      return out;
    }
    for (const f of files) {
      if (!f.endsWith('.json')) continue;
      const id = f.slice(0, -5);
      if (!ID.test(id)) continue;
      const j = this.readJson(join(dir, f));
      if (j === undefined) continue; // unreadable: said already
      const v = valid(j);
      if (v) out.set(id, v);
      else this.log.warn(`ignoring ${f}: not valid ${what}`);
    }
    return out;
  }

  /** The DHCP leases the last run was using, by service id (expired ones too: the caller knows the time). */
  loadLeases(): Map<string, Lease> {
    return this.loadEach(this.leasesDir, leaseFromRecord, 'lease');
  }

  saveLease(id: string, lease: Lease): boolean {
    if (!ID.test(id)) return false;
    // not fsynced (a write per acquisition and renewal, on slow flash too): a lease file is only
    // gone on with while its address is still on the link, which a power loss never leaves; a
    // file a crash of the whole machine left half-written is refused when read
    return this.writeAtomic(join(this.leasesDir, `${id}.json`), `${JSON.stringify(leaseToRecord(lease), null, 2)}\n`, false);
  }

  /** The lease is gone (lost, released): the next run must not go on with it. */
  forgetLease(id: string): void {
    if (!ID.test(id)) return;
    const file = join(this.leasesDir, `${id}.json`);
    this.written.delete(file);
    try {
      rmSync(file, { force: true });
    } catch (e) {
      this.log.warn(`cannot remove ${file}: ${(e as Error).message}`);
    }
  }

  saveService(id: string, s: ServiceSettings): boolean {
    if (!ID.test(id)) return false;
    const { immutable: _immutable, ...kept } = s;
    return this.writeAtomic(join(this.servicesDir, `${id}.json`), `${JSON.stringify(kept, null, 2)}\n`);
  }
}

const isStrings = (x: unknown): x is string[] => Array.isArray(x) && x.every((y) => typeof y === 'string');

function validSettings(j: unknown): ServiceSettings | undefined {
  if (typeof j !== 'object' || j === null) return undefined;
  const o = j as Record<string, unknown>;
  const v4 = o.ipv4 as Record<string, unknown> | undefined;
  const v6 = o.ipv6 as Record<string, unknown> | undefined;
  if (typeof o.autoConnect !== 'boolean' || typeof o.favorite !== 'boolean' || typeof o.table !== 'number' || typeof o.order !== 'number') return undefined;
  if (!v4 || !['dhcp', 'manual', 'off'].includes(String(v4.method)) || !v6 || !['auto', 'manual', 'off'].includes(String(v6.method))) return undefined;
  if (!isStrings(o.nameservers) || !isStrings(o.domains) || !isStrings(o.timeservers)) return undefined;
  if (checkIpv4(v4 as unknown as Ipv4Config) || checkIpv6(v6 as unknown as Ipv6Config)) return undefined;
  return {
    autoConnect: o.autoConnect,
    favorite: o.favorite,
    ipv4: v4 as unknown as ServiceSettings['ipv4'],
    ipv6: v6 as unknown as ServiceSettings['ipv6'],
    nameservers: o.nameservers,
    domains: o.domains,
    timeservers: o.timeservers,
    order: o.order,
    table: o.table,
    userDisconnected: o.userDisconnected === true,
    immutable: false,
  };
}
