// The smallest nft transaction from observed to desired. Pure.
import type { NftMap, NftSet, NftTableModel } from './model.ts';
import type { ObservedNftTable } from './observed.ts';
import { elementKey, renderDelete, renderReplace, renderValue, structureDigest } from './render.ts';

export type NftPlan = { kind: 'none' } | { kind: 'replace' | 'delete' | 'elements'; script: string };

export function planNft(family: string, name: string, desired: NftTableModel | undefined, observed: ObservedNftTable | undefined): NftPlan {
  if (!desired) return observed ? { kind: 'delete', script: renderDelete(family, name) } : { kind: 'none' };
  if (!observed || observed.digest !== structureDigest(desired)) return { kind: 'replace', script: renderReplace(desired) };
  const t = `${desired.family} ${desired.name}`;
  const lines: string[] = [];
  const diff = (x: NftSet | NftMap, isMap: boolean): void => {
    const have = observed.elements.get(x.name) ?? new Map();
    const want = new Map<string, string>();
    for (const e of x.elements) {
      if (isMap) {
        const [k, v] = e as readonly [number | string, number | string];
        want.set(elementKey(k), `${renderValue(k)} : ${renderValue(v)}`);
      } else {
        const k = e as number | string;
        want.set(elementKey(k), renderValue(k));
      }
    }
    const dels: string[] = [];
    const adds: string[] = [];
    for (const [k, o] of have) {
      const w = want.get(k);
      // a map element whose value changed is removed and added again in the same transaction
      if (w === undefined || (isMap && w !== `${renderValue(o.key)} : ${renderValue(o.value ?? '')}`)) dels.push(renderValue(o.key));
    }
    for (const [k, w] of want) {
      const o = have.get(k);
      if (!o || (isMap && w !== `${renderValue(o.key)} : ${renderValue(o.value ?? '')}`)) adds.push(w);
    }
    if (dels.length) lines.push(`delete element ${t} ${x.name} { ${dels.join(', ')} }`);
    if (adds.length) lines.push(`add element ${t} ${x.name} { ${adds.join(', ')} }`);
  };
  // a dynamic set's elements come from the packet path: not ours to add or remove here
  for (const s of desired.sets) if (!s.flags?.includes('dynamic')) diff(s, false);
  for (const m of desired.maps) diff(m, true);
  return lines.length ? { kind: 'elements', script: `${lines.join('\n')}\n` } : { kind: 'none' };
}
