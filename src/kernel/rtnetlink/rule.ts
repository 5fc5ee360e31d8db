// RTM_NEWRULE / RTM_DELRULE codec and rule identity.
import { type MessageWriter, addressBytes, addressString, canonicalAddress, forEachAttr, readCString } from '../netlink/codec.ts';
import {
  AF_INET,
  AF_INET6,
  FR_ACT_TO_TBL,
  FRA_DPORT_RANGE,
  FRA_DST,
  FRA_FWMARK,
  FRA_FWMASK,
  FRA_GOTO,
  FRA_IIFNAME,
  FRA_IP_PROTO,
  FRA_L3MDEV,
  FRA_OIFNAME,
  FRA_PRIORITY,
  FRA_PROTOCOL,
  FRA_SPORT_RANGE,
  FRA_SRC,
  FRA_SUPPRESS_PREFIXLEN,
  FRA_TABLE,
  FRA_UID_RANGE,
  type Family,
} from '../netlink/constants.ts';
import type { Rule } from './types.ts';

const FIB_RULE_HDR_LEN = 12;

export function parseRule(buf: Buffer, off: number, end: number): Rule {
  const r: Rule = {
    family: buf[off] as Family,
    dstLen: buf[off + 1] ?? 0,
    srcLen: buf[off + 2] ?? 0,
    tos: buf[off + 3] ?? 0,
    table: buf[off + 4] ?? 0,
    action: buf[off + 7] ?? 0,
    flags: buf.readUInt32LE(off + 8),
    priority: 0,
    protocol: 0,
  };
  forEachAttr(buf, off + FIB_RULE_HDR_LEN, end, (t, at, len) => {
    switch (t) {
      case FRA_PRIORITY:
        r.priority = buf.readUInt32LE(at);
        break;
      case FRA_TABLE:
        r.table = buf.readUInt32LE(at);
        break;
      case FRA_SRC:
        r.src = addressString(buf, at, len);
        break;
      case FRA_DST:
        r.dst = addressString(buf, at, len);
        break;
      case FRA_FWMARK:
        r.fwmark = buf.readUInt32LE(at);
        break;
      case FRA_FWMASK:
        r.fwmask = buf.readUInt32LE(at);
        break;
      case FRA_IIFNAME:
        r.iifname = readCString(buf, at, len);
        break;
      case FRA_OIFNAME:
        r.oifname = readCString(buf, at, len);
        break;
      case FRA_UID_RANGE:
        r.uidRange = { start: buf.readUInt32LE(at), end: buf.readUInt32LE(at + 4) };
        break;
      case FRA_PROTOCOL:
        r.protocol = buf[at] ?? 0;
        break;
      case FRA_IP_PROTO:
        r.ipProto = buf[at] ?? 0;
        break;
      case FRA_SPORT_RANGE:
        r.sportRange = { start: buf.readUInt16LE(at), end: buf.readUInt16LE(at + 2) };
        break;
      case FRA_DPORT_RANGE:
        r.dportRange = { start: buf.readUInt16LE(at), end: buf.readUInt16LE(at + 2) };
        break;
      case FRA_SUPPRESS_PREFIXLEN:
        r.suppressPrefixLen = buf.readInt32LE(at);
        break;
      case FRA_GOTO:
        r.goto = buf.readUInt32LE(at);
        break;
      case FRA_L3MDEV:
        r.l3mdev = (buf[at] ?? 0) !== 0;
        break;
    }
  });
  // the kernel reports "no suppression" as -1
  if (r.suppressPrefixLen === -1) delete r.suppressPrefixLen;
  if (r.fwmark !== undefined && r.fwmark === 0 && (r.fwmask ?? 0) === 0) {
    delete r.fwmark;
    delete r.fwmask;
  }
  return r;
}

/** A rule as netsession asks for it. */
export interface RuleSpec {
  family: Family;
  priority: number;
  protocol: number;
  action?: number;
  table?: number;
  src?: string;
  srcLen?: number;
  dst?: string;
  dstLen?: number;
  fwmark?: number;
  fwmask?: number;
  iifname?: string;
  oifname?: string;
  uidRange?: { start: number; end: number };
  ipProto?: number;
  invert?: boolean;
  /** target priority of a FR_ACT_GOTO rule */
  goto?: number;
}

export function normalizeRule(s: RuleSpec): Rule {
  const r: Rule = {
    family: s.family,
    priority: s.priority,
    action: s.action ?? FR_ACT_TO_TBL,
    table: s.table ?? 0,
    srcLen: s.src !== undefined ? (s.srcLen ?? (s.family === AF_INET ? 32 : 128)) : 0,
    dstLen: s.dst !== undefined ? (s.dstLen ?? (s.family === AF_INET ? 32 : 128)) : 0,
    tos: 0,
    protocol: s.protocol,
    flags: s.invert ? 2 : 0,
  };
  if (s.src !== undefined) r.src = canonicalAddress(s.src);
  if (s.dst !== undefined) r.dst = canonicalAddress(s.dst);
  if (s.fwmark !== undefined) {
    r.fwmark = s.fwmark >>> 0;
    r.fwmask = (s.fwmask ?? 0xffffffff) >>> 0;
  }
  if (s.iifname !== undefined) r.iifname = s.iifname;
  if (s.oifname !== undefined) r.oifname = s.oifname;
  if (s.uidRange !== undefined) r.uidRange = { ...s.uidRange };
  if (s.ipProto !== undefined) r.ipProto = s.ipProto;
  if (s.goto !== undefined) r.goto = s.goto;
  return r;
}

/** keys of rule objects already seen (rules are not mutated once made): the mirror's and the desired ones are compared on every reconcile */
const keys = new WeakMap<Rule, string>();

/** Everything a rule matches on and does: two rules with equal keys are the same rule. */
export function ruleKey(r: Rule): string {
  let k = keys.get(r);
  if (k === undefined) {
    k = computeRuleKey(r);
    keys.set(r, k);
  }
  return k;
}

function computeRuleKey(r: Rule): string {
  return [
    r.family === AF_INET6 ? 6 : 4,
    r.priority,
    r.action,
    r.table,
    `${r.src ?? ''}/${r.srcLen}`,
    `${r.dst ?? ''}/${r.dstLen}`,
    r.tos,
    r.fwmark ?? '',
    r.fwmask ?? '',
    r.iifname ?? '',
    r.oifname ?? '',
    r.uidRange ? `${r.uidRange.start}-${r.uidRange.end}` : '',
    r.ipProto ?? '',
    r.sportRange ? `${r.sportRange.start}-${r.sportRange.end}` : '',
    r.dportRange ? `${r.dportRange.start}-${r.dportRange.end}` : '',
    r.suppressPrefixLen ?? '',
    r.goto ?? '',
    r.l3mdev ? 'l3' : '',
    r.protocol,
    r.flags & 0x2,
  ].join('|');
}

export function writeRule(w: MessageWriter, r: Rule): void {
  const h = w.struct(FIB_RULE_HDR_LEN);
  h[0] = r.family;
  h[1] = r.dstLen;
  h[2] = r.srcLen;
  h[3] = r.tos;
  h[4] = r.table < 256 ? r.table : 0;
  h[7] = r.action;
  h.writeUInt32LE(r.flags & 0x2, 8);
  w.u32(FRA_PRIORITY, r.priority);
  if (r.table) w.u32(FRA_TABLE, r.table);
  if (r.src !== undefined && r.srcLen > 0) w.bytes(FRA_SRC, addressBytes(r.src));
  if (r.dst !== undefined && r.dstLen > 0) w.bytes(FRA_DST, addressBytes(r.dst));
  if (r.fwmark !== undefined) w.u32(FRA_FWMARK, r.fwmark);
  if (r.fwmask !== undefined) w.u32(FRA_FWMASK, r.fwmask);
  if (r.iifname !== undefined) w.string(FRA_IIFNAME, r.iifname);
  if (r.oifname !== undefined) w.string(FRA_OIFNAME, r.oifname);
  if (r.uidRange !== undefined) {
    const b = Buffer.alloc(8);
    b.writeUInt32LE(r.uidRange.start, 0);
    b.writeUInt32LE(r.uidRange.end, 4);
    w.bytes(FRA_UID_RANGE, b);
  }
  if (r.ipProto !== undefined) w.u8(FRA_IP_PROTO, r.ipProto);
  for (const [type, range] of [
    [FRA_SPORT_RANGE, r.sportRange],
    [FRA_DPORT_RANGE, r.dportRange],
  ] as const) {
    if (range === undefined) continue;
    const b = Buffer.alloc(4);
    b.writeUInt16LE(range.start, 0);
    b.writeUInt16LE(range.end, 2);
    w.bytes(type, b);
  }
  if (r.suppressPrefixLen !== undefined) w.u32(FRA_SUPPRESS_PREFIXLEN, r.suppressPrefixLen >>> 0);
  if (r.goto !== undefined) w.u32(FRA_GOTO, r.goto);
  if (r.l3mdev) w.u8(FRA_L3MDEV, 1);
  w.u8(FRA_PROTOCOL, r.protocol);
}

export function ruleDumpHeader(w: MessageWriter, family: number): void {
  w.struct(FIB_RULE_HDR_LEN)[0] = family;
}
