// Our nft table through the reconciler, in a throw-away namespace: atomic, minimal
// (element changes keep counters), foreign tables untouched, counters readable.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openKernelMirror } from '../../src/kernel/kernel-mirror.ts';
import type { NftTableModel } from '../../src/kernel/nft/model.ts';
import { Nft, NftError } from '../../src/kernel/nft/nft.ts';
import { DEFAULT_OWNERSHIP, type Ownership } from '../../src/kernel/reconciler/ownership.ts';
import { Reconciler } from '../../src/kernel/reconciler/reconciler.ts';
import { isRoot, makeNetns, sh } from '../helpers/netns.ts';

const skip = !isRoot() && 'needs root (network namespaces)';
const OWN: Ownership = { ...DEFAULT_OWNERSHIP, nftTable: { family: 'inet', name: 'nstest' } };

function model(marks: number[], uids: [number, number][], extraRule = false): NftTableModel {
  return {
    family: 'inet',
    name: 'nstest',
    sets: [{ name: 'tx', type: { type: 'mark' }, counter: true, elements: marks }],
    maps: [{ name: 'uid2mark', type: { type: 'uid : mark' }, elements: uids }],
    counters: ['dropped'],
    chains: [
      {
        name: 'output',
        base: { type: 'route', hook: 'output', priority: 'mangle' },
        rules: ['meta mark 0 meta mark set meta skuid map @uid2mark', 'meta mark @tx', ...(extraRule ? ['meta mark 0x666 counter name dropped'] : [])],
      },
    ],
  };
}

test('nft table: create, change elements in place (counters kept), rebuild on structure change, delete; foreign table untouched', { skip }, async (t) => {
  const ns = makeNetns(t, 'n');
  sh('ip', ['netns', 'exec', ns, 'nft', 'add table inet foreign; add chain inet foreign c { type filter hook output priority 0; }; add rule inet foreign c counter']);
  const foreign = (): string => sh('ip', ['netns', 'exec', ns, 'nft', '-j', 'list', 'table', 'inet', 'foreign']).replace(/"packets": \d+, "bytes": \d+/g, '');
  const foreignBefore = foreign();
  const mirror = await openKernelMirror({ netns: ns });
  t.after(() => mirror.close());
  const nft = new Nft({ netns: ns });
  const rec = new Reconciler(mirror, nft, OWN);

  assert.equal((await rec.reconcile({ routes: [], rules: [], nft: model([4097, 4098], [[1000, 4097]]) })).nft, 'replace');
  assert.equal((await rec.reconcile({ routes: [], rules: [], nft: model([4097, 4098], [[1000, 4097]]) })).nft, 'none');

  // marked traffic counts on its element
  sh('ip', ['netns', 'exec', ns, 'ping', '-q', '-c', '3', '-i', '0.01', '-m', '4097', '192.0.2.10']);
  let obs = await nft.observe('inet', 'nstest');
  assert.ok((obs?.elements.get('tx')?.get('n4097')?.counter?.packets ?? 0) >= 3, 'tx counter of mark 4097');

  // element changes only: counters of the elements that stay are kept
  const r = await rec.reconcile({ routes: [], rules: [], nft: model([4097, 4099], [[1000, 4099], [1001, 4097]]) });
  assert.equal(r.nft, 'elements');
  obs = await nft.observe('inet', 'nstest');
  assert.deepEqual([...(obs?.elements.get('tx')?.keys() ?? [])].sort(), ['n4097', 'n4099']);
  assert.ok((obs?.elements.get('tx')?.get('n4097')?.counter?.packets ?? 0) >= 3, 'counter survived the element change');
  assert.deepEqual(
    [...(obs?.elements.get('uid2mark')?.values() ?? [])].map((e) => [e.key, e.value]).sort(),
    [
      [1000, 4099],
      [1001, 4097],
    ],
  );

  // a structural change rebuilds the table in one transaction
  assert.equal((await rec.reconcile({ routes: [], rules: [], nft: model([4097], [], true) })).nft, 'replace');
  obs = await nft.observe('inet', 'nstest');
  assert.deepEqual(obs?.counters.get('dropped'), { packets: 0, bytes: 0 });

  // a bad rule is refused by nft and nothing changes
  const bad = model([1], []);
  const badModel: NftTableModel = { ...bad, chains: [{ name: 'output', rules: ['meta mark set nonsense'] }] };
  await assert.rejects(rec.reconcile({ routes: [], rules: [], nft: badModel }), NftError);
  obs = await nft.observe('inet', 'nstest');
  assert.deepEqual([...(obs?.elements.get('tx')?.keys() ?? [])], ['n4097']);
  assert.ok(obs?.counters.has('dropped'));

  // names that could inject are refused before nft runs
  assert.throws(() => new Reconciler(mirror, nft, { ...OWN, nftTable: { family: 'inet', name: 'x; flush ruleset' } }));

  assert.equal((await rec.reconcile({ routes: [], rules: [] })).nft, 'delete');
  assert.equal(await nft.observe('inet', 'nstest'), undefined);
  assert.equal(foreign(), foreignBefore);
});
