// A typed description of netsession's own nftables table. Rules stay nft statement text
// (nft's grammar is the stable interface); everything around them is typed so that the
// structure can be compared and element sets diffed.

/** A set or map element, or a map value: numbers (marks, uids) or literal tokens (interface names). */
export type NftValue = number | string;

export interface NftSet {
  name: string;
  /** `type` (e.g. 'mark', 'ipv4_addr') or `typeof` expression (e.g. 'meta mark') */
  type: { type: string } | { typeof: string };
  flags?: readonly ('interval' | 'timeout' | 'constant' | 'dynamic')[];
  /** a counter on every element (per-session byte counts) */
  counter?: boolean;
  elements: readonly NftValue[];
}

export interface NftMap {
  name: string;
  /** e.g. { type: 'uid : mark' } or { typeof: 'socket cgroupv2 level 1 : meta mark' } */
  type: { type: string } | { typeof: string };
  flags?: readonly ('interval' | 'timeout' | 'constant' | 'dynamic')[];
  counter?: boolean;
  elements: readonly (readonly [NftValue, NftValue])[];
}

export interface NftBaseChain {
  type: 'filter' | 'nat' | 'route';
  hook: 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting';
  priority: number | 'raw' | 'mangle' | 'dstnat' | 'filter' | 'security' | 'srcnat';
  policy?: 'accept' | 'drop';
}

export interface NftChain {
  name: string;
  base?: NftBaseChain;
  /** nft rule statements, in order */
  rules: readonly string[];
}

export interface NftTableModel {
  family: 'inet' | 'ip' | 'ip6';
  name: string;
  sets: readonly NftSet[];
  maps: readonly NftMap[];
  counters: readonly string[];
  chains: readonly NftChain[];
}

export const emptyTable = (family: NftTableModel['family'], name: string): NftTableModel => ({
  family,
  name,
  sets: [],
  maps: [],
  counters: [],
  chains: [],
});
