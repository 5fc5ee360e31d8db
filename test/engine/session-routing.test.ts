// The session nft table for cgroup policies (pure): which cgroups get a rule, in which order,
// and how they rank against gid and uid policies.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_REQUEST } from '../../src/engine/sessions.ts';
import { cgroupPolicyPaths, sessionNft, type SessionNftInput, routedByOwnRules } from '../../src/engine/session-routing.ts';
import type { PolicyGroup, Session, SessionsState } from '../../src/engine/session-types.ts';
import { renderReplace, structureDigest } from '../../src/kernel/nft/render.ts';

let n = 0;
function session(match: PolicyGroup['match'] | undefined, marker: number, createdAt: number): Session {
  n++;
  return {
    path: `/sessions/_1_${n}/s`,
    owner: `:1.${n}`,
    notifier: '/s',
    identity: { uid: 1000, gids: [1000] },
    // (an IdleTimeout: its traffic is counted)
    request: { ...DEFAULT_REQUEST, idleTimeout: 60 },
    policy: match ? { file: 'p.policy', name: `g${n}`, match } : undefined,
    marker,
    active: true,
    detached: false,
    idle: false,
    woken: false,
    demandSince: createdAt,
    serviceId: undefined,
    createdAt,
  } as Session;
}
const state = (...ss: Session[]): SessionsState => ({ sessions: new Map(ss.map((s) => [s.path, s])), policies: [], nextMarker: 0 });
const input = (extra: Partial<SessionNftInput> = {}): SessionNftInput => ({ family: 'inet', name: 'netsession', uplinks: ['eth0'], sources: [{ ifname: 'eth0', ipv4: '192.0.2.10' }], ...extra });
const routeChain = (st: SessionsState, extra: Partial<SessionNftInput> = {}): readonly string[] => sessionNft(st, input(extra))!.chains.find((c) => c.name === 'session_route')!.rules;

test('cgroupPolicyPaths: the cgroup of each cgroup policy with a session, not the root, only names nft can take', () => {
  const st = state(
    session({ cgroup: '/app.slice/b.service' }, 0x40000001, 1),
    session({ cgroup: '/app.slice/b.service' }, 0x40000002, 2),
    session({ cgroup: '/a' }, 0x40000003, 3),
    session({ cgroup: '/' }, 0x40000004, 4),
    session({ cgroup: '/we"ird' }, 0x40000005, 5),
    session({ cgroup: '/dev-disk-by\\x2duuid' }, 0x40000006, 6),
    session({ gid: 100 }, 0x40000007, 7),
    session(undefined, 0x40000008, 8),
  );
  assert.deepEqual(cgroupPolicyPaths(st), ['/a', '/app.slice/b.service']);
  assert.deepEqual(cgroupPolicyPaths(state()), []);
});

test('sessionNft: a rule per existing cgroup, level = depth, path relative to the cgroup2 root, the newest session\'s marker, the id in a comment', () => {
  const st = state(session({ cgroup: '/app.slice/b.service' }, 0x40000001, 1), session({ cgroup: '/app.slice/b.service' }, 0x40000002, 2), session({ cgroup: '/gone' }, 0x40000003, 3));
  // /gone does not exist (not in the list the shell found): no rule, or nft would fail the whole transaction
  const rules = routeChain(st, { cgroups: [{ path: '/app.slice/b.service', id: '310' }] });
  assert.deepEqual(
    rules.filter((r) => r.includes('cgroupv2')),
    ['meta mark 0 meta skuid != @policy_uids socket cgroupv2 level 2 "app.slice/b.service" meta mark set 0x40000002 comment "cgroup 310"'],
  );
  // marked traffic is still counted and its connection remembers the session
  assert.ok(rules.indexOf(rules.find((r) => r.includes('cgroupv2'))!) < rules.indexOf('meta mark & 0x40000000 == 0x40000000 update @session_tx { meta mark counter }'));
  // and it is source-NATed like gid-marked traffic
  const m = sessionNft(st, input({ cgroups: [{ path: '/app.slice/b.service', id: '310' }] }))!;
  assert.match(renderReplace(m), /add element inet netsession snat4 \{ "eth0" : "192\.0\.2\.10" \}/);
  // no cgroup exists (or the shell knows none): no cgroup rule at all
  assert.equal(routeChain(st).some((r) => r.includes('cgroupv2')), false);
  assert.equal(routeChain(st, { cgroups: [] }).some((r) => r.includes('cgroupv2')), false);
});

test('sessionNft: uid > gid > deepest cgroup, as matchPolicy ranks them: a packet is marked only while unmarked, and uid-policy users never', () => {
  const st = state(
    session({ cgroup: '/a' }, 0x40000001, 1),
    session({ cgroup: '/a/b' }, 0x40000002, 2),
    session({ cgroup: '/c' }, 0x40000003, 3),
    session({ gid: 100 }, 0x40000004, 4),
    session({ uid: 1001 }, 0x40000005, 5),
  );
  const m = sessionNft(st, input({ cgroups: [{ path: '/c', id: '40' }, { path: '/a', id: '20' }, { path: '/a/b', id: '30' }] }))!;
  const rules = m.chains.find((c) => c.name === 'session_route')!.rules;
  const marking = rules.filter((r) => r.includes('meta mark set') && !r.includes('ct mark'));
  assert.deepEqual(marking, [
    'meta mark 0 meta skuid != @policy_uids meta mark set meta skgid map @gid_marker',
    'meta mark 0 meta skuid != @policy_uids socket cgroupv2 level 2 "a/b" meta mark set 0x40000002 comment "cgroup 30"',
    'meta mark 0 meta skuid != @policy_uids socket cgroupv2 level 1 "a" meta mark set 0x40000001 comment "cgroup 20"',
    'meta mark 0 meta skuid != @policy_uids socket cgroupv2 level 1 "c" meta mark set 0x40000003 comment "cgroup 40"',
  ]);
  // every marking rule comes before the connection takes the mark
  assert.equal(rules.at(-3), 'meta mark & 0x40000000 == 0x40000000 ct mark set meta mark');
  // uid policies route by uidrange rules (after the marker rules): their users are left unmarked
  assert.deepEqual(m.sets.find((s) => s.name === 'policy_uids')?.elements, [1001]);
  // but their connections carry their session's marker, and their traffic is counted for it
  assert.deepEqual(rules.slice(-1), ['meta mark 0 meta skuid @policy_uids ct mark set meta skuid map @uid_marker update @session_tx { ct mark counter }']);
  assert.deepEqual(m.maps.find((x) => x.name === 'uid_marker')?.elements, [[1001, 0x40000005]]);
  // two sessions of one user: the newest routes its traffic (its uidrange rule) and is credited with it
  const two = sessionNft(state(session({ uid: 1001 }, 0x40000005, 5), session({ uid: 1001 }, 0x40000006, 6)), input())!;
  assert.deepEqual(two.maps.find((x) => x.name === 'uid_marker')?.elements, [[1001, 0x40000006]]);
  assert.match(renderReplace(m), /set policy_uids \{ type uid; \}/);
});

test('sessionNft: a cgroup that holds the daemon itself is not marked (its DHCP and online checks keep their ways)', () => {
  const st = state(session({ cgroup: '/system.slice' }, 0x40000001, 1), session({ cgroup: '/app' }, 0x40000002, 2));
  const cgroups = [{ path: '/system.slice', id: '5' }, { path: '/app', id: '6' }];
  const rules = routeChain(st, { cgroups, ownCgroup: '/system.slice/netsessiond.service' }).filter((r) => r.includes('cgroupv2'));
  assert.deepEqual(rules.map((r) => /level \d+ "([^"]+)"/.exec(r)?.[1]), ['app']);
  assert.equal(routeChain(st, { cgroups, ownCgroup: '/system.slice' }).filter((r) => r.includes('cgroupv2')).length, 1);
  // a sibling with a common prefix is not "inside"
  assert.equal(routeChain(st, { cgroups, ownCgroup: '/system.slicer' }).filter((r) => r.includes('cgroupv2')).length, 2);
});

test('sessionNft: a cgroup made again (a new id) changes the structure, so the table is rebuilt with the new id; unsafe input never reaches nft', () => {
  const st = state(session({ cgroup: '/app' }, 0x40000001, 1));
  const a = sessionNft(st, input({ cgroups: [{ path: '/app', id: '6' }] }))!;
  const b = sessionNft(st, input({ cgroups: [{ path: '/app', id: '7' }] }))!;
  assert.notEqual(structureDigest(a), structureDigest(b));
  // a path that no session's policy names, a bad id, a path nft cannot take: ignored
  const odd = routeChain(state(session({ cgroup: '/x"y' }, 0x40000001, 1)), { cgroups: [{ path: '/other', id: '1' }, { path: '/x"y', id: '2' }] });
  assert.equal(odd.some((r) => r.includes('cgroupv2')), false);
  assert.equal(routeChain(st, { cgroups: [{ path: '/app', id: '6; drop' }] }).some((r) => r.includes('cgroupv2')), false);
});

test('sessionNft: without gid or cgroup sessions the route chain marks nothing; no table without a session that has kernel state', () => {
  const plain = session(undefined, 0x40000002, 1);
  const ext = { ...session(undefined, 0x40000001, 1), request: { ...DEFAULT_REQUEST, extended: true, idleTimeout: 60 } };
  // (the uid rules are there with an empty set: the first uid policy changes elements, not the table)
  assert.deepEqual(routeChain(state(ext, plain)), [
    'meta mark & 0x40000000 == 0x40000000 ct mark set meta mark',
    'meta mark & 0x40000000 == 0x40000000 update @session_tx { meta mark counter }',
    'meta mark 0 meta skuid @policy_uids ct mark set meta skuid map @uid_marker update @session_tx { ct mark counter }',
  ]);
  assert.equal(sessionNft(state(), input()), undefined, 'no sessions');
  assert.equal(sessionNft(state(plain, session({ contextIdentifier: 'tab' }, 0x40000003, 2)), input()), undefined, 'only ConnMan clients\' sessions: nothing is marked, nothing to count');
});

test('routedByOwnRules: a session has kernel state of its own only when its marker or identity can be on a packet', () => {
  assert.equal(routedByOwnRules(session(undefined, 1, 0)), false, 'a ConnMan client\'s session: nobody learns its marker');
  for (const match of [{ selinux: 'app_t' }, { contextIdentifier: 'tab1' }]) assert.equal(routedByOwnRules(session(match, 1, 0)), false, `policy ${JSON.stringify(match)}: nothing in the kernel`);
  for (const match of [{ uid: 1000 }, { gid: 1000 }, { cgroup: '/app.slice' }]) assert.equal(routedByOwnRules(session(match, 1, 0)), true, `policy ${JSON.stringify(match)}: its traffic is routed by its rules`);
  const ext = session(undefined, 1, 0);
  assert.equal(routedByOwnRules({ ...ext, request: { ...ext.request, extended: true } }), true, 'an extended session learns its SessionMarker from the Update');
  assert.equal(routedByOwnRules({ ...ext, request: { ...ext.request, emergencyCall: true } }), true, 'an emergency session');
});

test('sessionNft: a hook only for what is needed: counting only with an IdleTimeout, SNAT only for traffic marked by gid or cgroup', () => {
  const marked = (marker: number, idleTimeout: number, match?: PolicyGroup['match']): Session => ({ ...session(match, marker, marker), request: { ...DEFAULT_REQUEST, extended: true, idleTimeout } });
  const chains = (m: ReturnType<typeof sessionNft>): string[] => (m?.chains ?? []).map((c) => c.name);
  // sessions whose sockets carry their SessionMarker: routed at connect(), nothing to count, no hook at all
  const soMark = sessionNft(state(marked(0x40000001, 0), marked(0x40000002, 0)), input())!;
  assert.deepEqual(chains(soMark), []);
  assert.doesNotMatch(renderReplace(soMark), /ct mark|snat|counter/);
  // one with an IdleTimeout: its traffic (and every session's) counted, both ways; no NAT
  const idle = sessionNft(state(marked(0x40000001, 0), marked(0x40000002, 30)), input())!;
  assert.deepEqual(chains(idle), ['session_route', 'session_count_in']);
  assert.deepEqual(idle.maps.map((x) => x.name), ['uid_marker', 'gid_marker']);
  // a uid policy's users: routed by uidrange rules at connect(), no NAT either
  assert.deepEqual(chains(sessionNft(state(marked(0x40000001, 0, { uid: 1001 })), input())), []);
  // a gid policy: its packets are marked after the source was chosen: SNAT to the uplink's address
  const gid = sessionNft(state(marked(0x40000001, 0, { gid: 100 })), input())!;
  assert.deepEqual(chains(gid), ['session_route', 'session_snat']);
  assert.match(renderReplace(gid), /add element inet netsession snat4 \{ "eth0" : "192\.0\.2\.10" \}/);
  assert.doesNotMatch(renderReplace(gid), /counter/);
  // the first IdleTimeout changes the table's structure (it is replaced; counters start at 0)
  assert.notEqual(structureDigest(soMark), structureDigest(idle));
});
