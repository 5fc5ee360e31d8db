// Our nft table as `nft -j list table` shows it: the structure digest, set and map
// elements, and counters. Parsing is pure.
import { DIGEST_SET, elementKey } from './render.ts';
import type { NftValue } from './model.ts';

export interface Counter {
  packets: number;
  bytes: number;
}

export interface ObservedElement {
  key: NftValue;
  value?: NftValue;
  counter?: Counter;
}

export interface ObservedNftTable {
  digest: string | undefined;
  /** set and map name → element key (elementKey) → element */
  elements: Map<string, Map<string, ObservedElement>>;
  counters: Map<string, Counter>;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
const isObj = (j: Json | undefined): j is { [k: string]: Json } => typeof j === 'object' && j !== null && !Array.isArray(j);

function value(j: Json | undefined): NftValue | undefined {
  if (typeof j === 'number' || typeof j === 'string') return j;
  return undefined;
}

function counterOf(j: Json | undefined): Counter | undefined {
  if (!isObj(j) || typeof j.packets !== 'number' || typeof j.bytes !== 'number') return undefined;
  return { packets: j.packets, bytes: j.bytes };
}

/** One element of a set (`4097` or `{elem:{val,counter}}`) or map (`[key, value]`). */
function parseElement(j: Json): ObservedElement | undefined {
  if (Array.isArray(j)) {
    const k = parseElement(j[0] ?? null);
    const v = value(j[1]);
    if (!k || v === undefined) return undefined;
    return { ...k, value: v };
  }
  if (isObj(j) && isObj(j.elem)) {
    const key = value(j.elem.val);
    if (key === undefined) return undefined;
    const counter = counterOf(j.elem.counter);
    return counter ? { key, counter } : { key };
  }
  const key = value(j);
  return key === undefined ? undefined : { key };
}

export function parseNftTable(text: string): ObservedNftTable {
  const doc = JSON.parse(text) as Json;
  const out: ObservedNftTable = { digest: undefined, elements: new Map(), counters: new Map() };
  const items = isObj(doc) && Array.isArray(doc.nftables) ? doc.nftables : [];
  for (const item of items) {
    if (!isObj(item)) continue;
    const setLike = isObj(item.set) ? item.set : isObj(item.map) ? item.map : undefined;
    if (setLike && typeof setLike.name === 'string') {
      if (setLike.name === DIGEST_SET) {
        const c = setLike.comment;
        if (typeof c === 'string' && c.startsWith('netsession:')) out.digest = c.slice('netsession:'.length);
        continue;
      }
      const els = new Map<string, ObservedElement>();
      for (const e of Array.isArray(setLike.elem) ? setLike.elem : []) {
        const el = parseElement(e);
        if (el) els.set(elementKey(el.key), el);
      }
      out.elements.set(setLike.name, els);
    } else if (isObj(item.counter) && typeof item.counter.name === 'string') {
      const c = counterOf(item.counter);
      if (c) out.counters.set(item.counter.name, c);
    }
  }
  return out;
}
