// User and group names from /etc/passwd and /etc/group, parsed here rather than through
// getpwnam/getent: node has no binding for them, and a policy reload must not fork. NSS
// sources other than files (LDAP, systemd-userdb) are not seen: policies name local
// accounts, or use numbers. Pure.

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
}

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/** A uid/gid: a decimal number in 0 … 2³²−2 (2³²−1 is (uid_t)-1, "no id"). */
export function parseId(s: string): number | undefined {
  if (!/^\d{1,10}$/.test(s)) return undefined;
  const n = Number(s);
  return n <= 0xfffffffe ? n : undefined;
}

/** Lines of a colon-separated database, without comments, blanks and NIS `+`/`-` entries. */
function records(text: string): string[][] {
  const out: string[][] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith('+') || line.startsWith('-')) continue;
    out.push(line.split(':'));
  }
  return out;
}

export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const f of records(text)) {
    const uid = parseId(f[2] ?? '');
    const gid = parseId(f[3] ?? '');
    if (f[0] && uid !== undefined && gid !== undefined) out.push({ name: f[0], uid, gid });
  }
  return out;
}

export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const f of records(text)) {
    const gid = parseId(f[2] ?? '');
    if (!f[0] || gid === undefined) continue;
    const members = (f[3] ?? '').split(',').map((m) => m.trim()).filter((m) => m !== '');
    out.push({ name: f[0], gid, members });
  }
  return out;
}

/** How a policy file's names become numbers (passed in so the policy parser stays pure). */
export interface NameResolver {
  resolveUser(name: string): number | undefined;
  resolveGroup(name: string): number | undefined;
}

export interface Accounts extends NameResolver {
  /** primary group and every group that lists the user as a member (getgrouplist's answer) */
  groupsOf(uid: number): number[];
}

export function accountsFrom(passwdText: string, groupText: string): Accounts {
  const users = parsePasswd(passwdText);
  const groups = parseGroup(groupText);
  // the first entry of a name wins, as with getpwnam scanning the file
  const uidByName = new Map<string, number>();
  for (const u of users) if (!uidByName.has(u.name)) uidByName.set(u.name, u.uid);
  const gidByName = new Map<string, number>();
  for (const g of groups) if (!gidByName.has(g.name)) gidByName.set(g.name, g.gid);
  return {
    resolveUser: (name) => uidByName.get(name),
    resolveGroup: (name) => gidByName.get(name),
    groupsOf: (uid) => {
      const u = users.find((x) => x.uid === uid);
      if (!u) return [];
      const out = [u.gid];
      for (const g of groups) if (g.members.includes(u.name) && !out.includes(g.gid)) out.push(g.gid);
      return out;
    },
  };
}
