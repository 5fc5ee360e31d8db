// One session policy file (ConnMan's session_policy_local format, GLib key-file syntax) to
// PolicyGroups. Each [group] is one policy. Decisions that differ from ConnMan's code:
// a bad group is skipped and the file's other groups still count (ConnMan drops the whole
// file); unknown bearer names are dropped with a warning (seed 004), not fatal; uid/gid
// accept numbers as well as names; `cgroup` and `ContextIdentifier` are our additions;
// a group names at most one of uid/gid/selinux/cgroup (ConnMan's documented "exactly one";
// the engine's matchPolicy looks at one only, so a second would be silently ignored). Pure.
import { sanitizeBearers } from '../../engine/sessions.ts';
import type { ConnectionType, PolicyGroup, RoamingPolicy } from '../../engine/session-types.ts';
import { ROAMING_POLICIES } from '../../engine/session-types.ts';
import { parseKeyFile } from '../keyfile.ts';
import { type NameResolver, parseId } from './accounts.ts';

export interface PolicyFileResult {
  groups: PolicyGroup[];
  /** one line each, prefixed with the file name (and the group, where there is one) */
  warnings: string[];
}

export const POLICY_SUFFIX = '.policy';

/** ConnMan's selection: ends in .policy and is not hidden (editors' temporary files often are). */
export function isPolicyFileName(name: string): boolean {
  return name.endsWith(POLICY_SUFFIX) && !name.startsWith('.') && !name.includes('/');
}

const ID_KEYS = ['uid', 'gid', 'selinux', 'cgroup'] as const;
const KNOWN_KEYS = [...ID_KEYS, 'ContextIdentifier', 'AllowedBearers', 'ConnectionType', 'Priority', 'EmergencyCall', 'RoamingPolicy', 'AllowedInterface'];
const CONNECTION_TYPES: readonly ConnectionType[] = ['any', 'local', 'internet'];
/** IFNAMSIZ − 1 */
const MAX_IFNAME = 15;

/** GLib's escapes in string values (\s \n \t \r \\); undefined for an invalid one, as g_key_file_get_string fails. */
function unescapeGlib(v: string): string | undefined {
  let out = '';
  for (let i = 0; i < v.length; i++) {
    const c = v[i]!;
    if (c !== '\\') {
      out += c;
      continue;
    }
    const e = v[++i];
    const r = e === 's' ? ' ' : e === 'n' ? '\n' : e === 't' ? '\t' : e === 'r' ? '\r' : e === '\\' ? '\\' : undefined;
    if (r === undefined) return undefined;
    out += r;
  }
  return out;
}

/** g_key_file_get_boolean's spellings (case-sensitive, like GLib). */
function parseBool(v: string): boolean | undefined {
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  return undefined;
}

/** A cgroup v2 path as /proc/<pid>/cgroup prints it: absolute, no . or .. segments, no doubled or trailing slashes. */
export function normalizeCgroup(v: string): string | undefined {
  if (!v.startsWith('/')) return undefined;
  const parts = v.split('/').filter((p) => p !== '');
  if (parts.some((p) => p === '.' || p === '..' || /[\s\0]/.test(p))) return undefined;
  return `/${parts.join('/')}`;
}

/** What the kernel accepts as an interface name (dev_valid_name). */
function validIfname(v: string): boolean {
  return v.length > 0 && v.length <= MAX_IFNAME && v !== '.' && v !== '..' && !/[/:\s]/.test(v);
}

/** A uid or gid value: a number, or a name the resolver knows. */
function resolveId(key: 'uid' | 'gid', v: string, resolver: NameResolver): number | string {
  if (/^\d+$/.test(v)) return parseId(v) ?? `${key} ${v} is out of range`;
  const n = key === 'uid' ? resolver.resolveUser(v) : resolver.resolveGroup(v);
  return n ?? `unknown ${key === 'uid' ? 'user' : 'group'} '${v}'`;
}

function parseGroup(file: string, name: string, kv: ReadonlyMap<string, string>, resolver: NameResolver, warnings: string[]): PolicyGroup | undefined {
  const where = `${file} [${name}]`;
  const problems: string[] = [];
  const g: PolicyGroup = { file, name, match: {} };

  for (const key of kv.keys()) {
    if (KNOWN_KEYS.includes(key)) continue;
    // GLib keys are case-sensitive: `UID = navi` is not `uid`; say so, because the group may then lack its identity
    const near = KNOWN_KEYS.find((k) => k.toLowerCase() === key.toLowerCase());
    warnings.push(`${where}: unknown key '${key}' ignored${near ? ` (did you mean '${near}'?)` : ''}`);
  }
  const str = (key: string): string | undefined => {
    const raw = kv.get(key);
    if (raw === undefined) return undefined;
    const v = unescapeGlib(raw);
    if (v === undefined) problems.push(`${key}: invalid escape sequence in '${raw}'`);
    return v;
  };

  const ids = ID_KEYS.filter((k) => kv.has(k));
  if (ids.length > 1) problems.push(`more than one of uid, gid, selinux, cgroup (${ids.join(', ')}); a policy group identifies by one`);

  for (const key of ['uid', 'gid'] as const) {
    const v = str(key);
    if (v === undefined) continue;
    const r = resolveId(key, v, resolver);
    if (typeof r === 'string') problems.push(r);
    else g.match[key] = r;
  }
  const selinux = str('selinux');
  if (selinux !== undefined) {
    const fields = selinux.split(':');
    if (selinux === '' || /\s/.test(selinux)) problems.push(`selinux: '${selinux}' is not an SELinux type`);
    else if (fields.length === 1) g.match.selinux = selinux;
    else if (fields.length >= 3 && fields[2]) {
      // a full context (user:role:type:level): ConnMan matches on the type only, say so
      g.match.selinux = fields[2];
      warnings.push(`${where}: selinux '${selinux}' is a full context; only its type '${fields[2]}' is matched`);
    } else problems.push(`selinux: '${selinux}' is not an SELinux type`);
  }
  const cgroup = str('cgroup');
  if (cgroup !== undefined) {
    const c = normalizeCgroup(cgroup);
    if (c === undefined) problems.push(`cgroup: '${cgroup}' is not an absolute cgroup path without . or .. segments`);
    else g.match.cgroup = c;
  }
  const ctx = str('ContextIdentifier');
  if (ctx !== undefined) {
    // an empty one would equal every session that set none: too easy to write by accident
    if (ctx === '') problems.push('ContextIdentifier is empty');
    else g.match.contextIdentifier = ctx;
  }
  if (ids.length === 0 && ctx === undefined) problems.push('no uid, gid, selinux, cgroup or ContextIdentifier');

  const bearers = kv.get('AllowedBearers');
  if (bearers !== undefined) {
    const names = bearers.split(/[\s,;]+/).filter((b) => b !== '');
    const list = sanitizeBearers(names);
    const unknown = names.filter((n) => !(list as string[]).includes(n));
    const dropped = [...new Set(unknown)];
    if (dropped.length > 0) warnings.push(`${where}: AllowedBearers: unknown bearer${dropped.length > 1 ? 's' : ''} ${dropped.map((d) => `'${d}'`).join(', ')} ignored`);
    // fail closed: a list of nothing allows nothing (a typo must not widen a policy)
    if (list.length === 0) warnings.push(`${where}: AllowedBearers allows no bearer: sessions of this policy never connect`);
    g.allowedBearers = list;
  }
  const type = kv.get('ConnectionType');
  if (type !== undefined) {
    if ((CONNECTION_TYPES as readonly string[]).includes(type)) g.connectionType = type as ConnectionType;
    else problems.push(`ConnectionType: '${type}' is not any, local or internet`);
  }
  for (const key of ['Priority', 'EmergencyCall'] as const) {
    const v = kv.get(key);
    if (v === undefined) continue;
    const b = parseBool(v);
    if (b === undefined) problems.push(`${key}: '${v}' is not true, false, 1 or 0`);
    else if (key === 'Priority') g.priority = b;
    else g.emergencyCall = b;
  }
  const roaming = kv.get('RoamingPolicy');
  if (roaming !== undefined) {
    if ((ROAMING_POLICIES as readonly string[]).includes(roaming)) g.roamingPolicy = roaming as RoamingPolicy;
    else problems.push(`RoamingPolicy: '${roaming}' is not one of ${ROAMING_POLICIES.join(', ')}`);
  }
  const iface = str('AllowedInterface');
  // `*` is how the D-Bus API reports "any interface": accept it as "no restriction"
  if (iface !== undefined && iface !== '*') {
    if (validIfname(iface)) g.allowedInterface = iface;
    else problems.push(`AllowedInterface: '${iface}' is not an interface name (1–${MAX_IFNAME} characters, no '/', ':' or spaces)`);
  }

  if (problems.length > 0) {
    warnings.push(`${where}: group skipped: ${problems.join('; ')}`);
    return undefined;
  }
  return g;
}

/**
 * Parses one policy file. `file` is the name the groups carry (the file's base name).
 * A file that is not a key file at all yields no groups and one warning.
 */
export function parsePolicyFile(file: string, text: string, resolver: NameResolver): PolicyFileResult {
  if (text.includes('\0')) return { groups: [], warnings: [`${file}: not a key file (binary content); ignored`] };
  const kf = parseKeyFile(text);
  // GLib refuses a file with any syntax error, so ConnMan never saw half of one: neither do we
  if (kf.errors.length > 0) {
    const more = kf.errors.length > 1 ? ` (and ${kf.errors.length - 1} more)` : '';
    return { groups: [], warnings: [`${file}: not a key file: ${kf.errors[0]}${more}; ignored`] };
  }
  const groups: PolicyGroup[] = [];
  const warnings: string[] = [];
  for (const [name, kv] of kf.groups) {
    const g = parseGroup(file, name, kv, resolver, warnings);
    if (g) groups.push(g);
  }
  return { groups, warnings };
}
