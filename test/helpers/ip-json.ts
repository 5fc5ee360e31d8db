// The kernel's state as iproute2 reports it (`ip -d -j …`), reduced to canonical lines
// that our mirror's objects are reduced to as well, so the two can be compared exactly.
import { readFileSync, readdirSync } from 'node:fs';
import type { ObservedState } from '../../src/kernel/observed-state.ts';
import type { Route, Rule } from '../../src/kernel/rtnetlink/types.ts';
import { sh } from './netns.ts';

type J = Record<string, unknown>;

function nameTable(file: string, dir: string): Map<string, number> {
  const m = new Map<string, number>();
  const files = [file];
  try {
    for (const f of readdirSync(dir)) files.push(`${dir}/${f}`);
  } catch {
    /* no .d directory */
  }
  for (const f of files) {
    let text = '';
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const [num, name] = line.replace(/#.*/, '').trim().split(/\s+/);
      if (num && name) m.set(name, Number(num));
    }
  }
  return m;
}
const PROTOS = nameTable('/etc/iproute2/rt_protos', '/etc/iproute2/rt_protos.d');
const TABLES = nameTable('/etc/iproute2/rt_tables', '/etc/iproute2/rt_tables.d');
const TYPES: Record<string, number> = { unicast: 1, local: 2, broadcast: 3, anycast: 4, multicast: 5, blackhole: 6, unreachable: 7, prohibit: 8, throw: 9 };
const SCOPES: Record<string, number> = { global: 0, universe: 0, site: 200, link: 253, host: 254, nowhere: 255 };

const num = (v: unknown, names: Map<string, number>): number => {
  if (typeof v === 'number') return v;
  const s = String(v);
  return names.get(s) ?? (s.startsWith('0x') ? Number.parseInt(s, 16) : Number(s));
};

function ipJson(ns: string, args: string[]): J[] {
  return JSON.parse(sh('ip', ['-n', ns, '-d', '-j', ...args]) || '[]') as J[];
}

// ---- canonical lines ----

const linkLine = (index: number, name: string, up: boolean, lowerUp: boolean, mtu: number, mac: string): string =>
  `link ${index} ${name} up=${up} carrier=${lowerUp} mtu=${mtu} mac=${mac}`;
const addrLine = (fam: number, index: number, addr: string, len: number, scope: number): string => `addr ${fam} ${index} ${addr}/${len} scope=${scope}`;
const routeLine = (fam: number, table: number, dst: string, type: number, metric: number, proto: number, gw: string, oif: string, prefsrc: string): string =>
  `route ${fam} t=${table} ${dst} type=${type} metric=${metric} proto=${proto} gw=${gw} dev=${oif} src=${prefsrc}`;
const ruleLine = (fam: number, prio: number, table: number, src: string, dst: string, mark: string, iif: string, oif: string, uid: string, not: boolean, proto: number): string =>
  `rule ${fam} ${prio} t=${table} from=${src} to=${dst} mark=${mark} iif=${iif} oif=${oif} uid=${uid} not=${not} proto=${proto}`;

export interface Canon {
  links: string[];
  addresses: string[];
  routes: string[];
  rules: string[];
}

export function kernelCanon(ns: string): Canon {
  const links = ipJson(ns, ['link', 'show']);
  const names = new Map<string, number>();
  const out: Canon = { links: [], addresses: [], routes: [], rules: [] };
  for (const l of links) {
    const flags = (l.flags as string[]) ?? [];
    names.set(String(l.ifname), Number(l.ifindex));
    out.links.push(linkLine(Number(l.ifindex), String(l.ifname), flags.includes('UP'), flags.includes('LOWER_UP'), Number(l.mtu), String(l.address ?? '')));
  }
  for (const l of ipJson(ns, ['addr', 'show'])) {
    for (const a of (l.addr_info as J[]) ?? []) {
      out.addresses.push(addrLine(a.family === 'inet' ? 2 : 10, Number(l.ifindex), String(a.local), Number(a.prefixlen), SCOPES[String(a.scope)] ?? Number(a.scope)));
    }
  }
  for (const fam of [4, 6] as const) {
    for (const r of ipJson(ns, [`-${fam}`, 'route', 'show', 'table', 'all'])) {
      if (r.nexthops) continue; // multipath: not compared
      let dst = String(r.dst);
      if (dst === 'default') dst = fam === 4 ? '0.0.0.0/0' : '::/0';
      else if (!dst.includes('/')) dst += fam === 4 ? '/32' : '/128';
      const oif = r.dev === undefined ? '' : String(names.get(String(r.dev)) ?? r.dev);
      out.routes.push(
        routeLine(fam === 4 ? 2 : 10, num(r.table ?? 'main', TABLES), dst, TYPES[String(r.type ?? 'unicast')] ?? 0, Number(r.metric ?? 0), num(r.protocol ?? 'boot', PROTOS), String(r.gateway ?? ''), oif, String(r.prefsrc ?? '')),
      );
    }
    for (const r of ipJson(ns, [`-${fam}`, 'rule', 'show'])) {
      const pfx = (a: unknown, len: unknown): string => (a === undefined || a === 'all' ? '' : `${a}/${len ?? (fam === 4 ? 32 : 128)}`);
      const mark = r.fwmark === undefined ? '' : `${num(r.fwmark, new Map())}/${r.fwmask === undefined ? 0xffffffff : num(r.fwmask, new Map())}`;
      const uid = r.uid_start === undefined ? '' : `${r.uid_start}-${r.uid_end}`;
      out.rules.push(
        ruleLine(fam === 4 ? 2 : 10, Number(r.priority ?? 0), num(r.table ?? 0, TABLES), pfx(r.src, r.srclen), pfx(r.dst, r.dstlen), mark, String(r.iif ?? ''), String(r.oif ?? ''), uid, 'not' in r, num(r.protocol ?? 'unspec', PROTOS)),
      );
    }
  }
  for (const k of Object.keys(out) as (keyof Canon)[]) out[k].sort();
  return out;
}

export function routeCanon(r: Route): string {
  return routeLine(r.family, r.table, `${r.dst}/${r.dstLen}`, r.type, r.priority, r.protocol, r.gateway ?? '', r.oif === undefined ? '' : String(r.oif), r.prefsrc ?? '');
}

export function ruleCanon(r: Rule): string {
  const pfx = (a: string | undefined, len: number): string => (a === undefined || len === 0 ? '' : `${a}/${len}`);
  return ruleLine(
    r.family,
    r.priority,
    r.table,
    pfx(r.src, r.srcLen),
    pfx(r.dst, r.dstLen),
    r.fwmark === undefined ? '' : `${r.fwmark}/${r.fwmask ?? 0xffffffff}`,
    r.iifname ?? '',
    r.oifname ?? '',
    r.uidRange ? `${r.uidRange.start}-${r.uidRange.end}` : '',
    (r.flags & 2) !== 0,
    r.protocol,
  );
}

export function mirrorCanon(s: ObservedState): Canon {
  const out: Canon = {
    links: [...s.links.values()].map((l) => linkLine(l.index, l.name, l.up, l.lowerUp, l.mtu, l.mac ?? '')),
    addresses: [...s.addresses.values()].map((a) => addrLine(a.family, a.index, a.address, a.prefixLen, a.scope)),
    routes: [...s.routes.values()].filter((r) => !r.multipath).map(routeCanon),
    rules: [...s.rules.values()].map(ruleCanon),
  };
  for (const k of Object.keys(out) as (keyof Canon)[]) out[k].sort();
  return out;
}
