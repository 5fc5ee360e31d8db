// The daemon's sessions keep indexes so that a create does not visit every session: the
// sessions that ask for something (a connection, a PeriodicConnect) for the demand and the
// clocks, those that ask for EmergencyCall for emergency(), those with kernel state of their own
// for the session nft table; sessions made before their owner's identity was known, and told it
// later (or ended when the bus will not say). 3,000 random steps: after each,
// what the indexes give is what a scan of every session gives.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SessionHost } from '../../src/daemon/session-host.ts';
import { DEFAULT_REQUEST, demanding, emergencySession, reassign } from '../../src/engine/sessions.ts';
import { routedByOwnRules } from '../../src/engine/session-routing.ts';
import type { Identity, PolicyGroup, Session } from '../../src/engine/session-types.ts';
import { engine } from '../helpers/engine-state.ts';
import { Random } from '../helpers/random.ts';

const GRANTS: PolicyGroup[] = [{ file: 't.policy', name: 'all', match: { gid: 100 }, emergencyCall: true, priority: true }];

test('SessionHost: the sessions asking for something, and the emergency session, are what a scan of every session finds', () => {
  const random = new Random(4242);
  const rnd = (): number => random.next();
  const pick = <T>(xs: readonly T[]): T => random.pick(xs);
  let now = 0;
  const st = engine(2, [1]);
  const host: SessionHost = new SessionHost({
    engine: () => st,
    now: () => now,
    // the daemon assigns services after every change; so does this test
    changed: () => host.assign(reassign(host.state, st)),
  });
  host.setPolicies(GRANTS);
  const owners = [':1.1', ':1.2', ':1.3'];
  const identity = (granted: boolean): Identity => ({ uid: 1000, gids: granted ? [1000, 100] : [1000] });
  let created = 0;
  let emergencies = 0;
  for (let step = 0; step < 3000; step++) {
    now += 1000;
    const paths = [...host.state.sessions.keys()];
    const r = rnd();
    if (r < 0.3 || paths.length === 0) {
      const emergency = rnd() < 0.1;
      const res = host.create(pick(owners), `/app/s${created++}`, { ...DEFAULT_REQUEST, emergencyCall: emergency, periodicConnect: rnd() < 0.2 ? 5 : 0, extended: emergency || rnd() < 0.3 }, rnd() < 0.2 ? undefined : identity(rnd() < 0.8));
      if (!('name' in res) && emergency) emergencies++;
    } else if (r < 0.45) host.connect(pick(paths));
    else if (r < 0.55) host.disconnect(pick(paths));
    else if (r < 0.65) {
      const p = pick(paths);
      const s = host.state.sessions.get(p) as Session;
      host.change(p, { ...s.request, emergencyCall: rnd() < 0.2, periodicConnect: rnd() < 0.3 ? 10 : 0 });
    } else if (r < 0.72) host.goIdle(paths.filter(() => rnd() < 0.3));
    else if (r < 0.78) host.wake(paths.filter(() => rnd() < 0.3));
    else if (r < 0.9) host.destroy(pick(paths), rnd() < 0.5);
    else if (r < 0.93) host.ownerGone(pick(owners));
    else if (r < 0.945) host.identified(pick(owners), identity(rnd() < 0.8));
    else if (r < 0.95) host.unidentifiable(pick(owners));
    else if (r < 0.99) host.setPolicies(rnd() < 0.5 ? GRANTS : []);
    else host.releaseAll();
    const all = [...host.state.sessions.values()];
    const asking = all.filter((s) => demanding(s) || s.request.periodicConnect > 0);
    const indexed = host.askingState().sessions;
    assert.deepEqual([...indexed.keys()].sort(), asking.map((s) => s.path).sort(), `step ${step}: the sessions that ask`);
    for (const s of asking) assert.equal(indexed.get(s.path), s, `step ${step}: ${s.path} as it is now`);
    assert.equal(host.emergency(), emergencySession(all, st), `step ${step}: the emergency session`);
    for (const s of all) assert.ok(host.markerInUse(s.marker), `step ${step}: ${s.path}'s marker in use`);
    assert.equal(host.anyWithOwnRules(), all.some(routedByOwnRules), `step ${step}: a session with kernel state of its own`);
  }
  assert.ok(emergencies > 5, 'emergency sessions were among them');
});

test('SessionHost: a session made while no policy asks who its owner is waits for nothing, and is matched when a policy comes and the identity with it', () => {
  const st = engine(2, [1]);
  const removed: string[] = [];
  const host: SessionHost = new SessionHost({
    engine: () => st,
    now: () => 0,
    changed: (r) => {
      removed.push(...r.filter((x) => x.byDaemon).map((x) => x.session.path));
      host.assign(reassign(host.state, st));
    },
  });
  // a group on the ContextIdentifier alone needs nobody's identity
  const tabs: PolicyGroup = { file: 't.policy', name: 'tabs', match: { contextIdentifier: 'tab' }, allowedBearers: ['ethernet'] };
  host.setPolicies([tabs]);
  assert.equal(host.needsIdentity(), false);
  const a = host.create(':1.7', '/a', { ...DEFAULT_REQUEST, contextIdentifier: 'tab' }, undefined) as Session;
  const b = host.create(':1.7', '/b', { ...DEFAULT_REQUEST, emergencyCall: true }, undefined);
  assert.equal('name' in b && b.name, 'PermissionDenied', 'nothing grants it without a policy that does');
  const c = host.create(':1.7', '/c', { ...DEFAULT_REQUEST }, undefined) as Session;
  assert.equal(a.policy, tabs);
  assert.equal(c.policy, undefined);
  assert.deepEqual(host.unidentifiedOwners(), [':1.7']);
  // a uid policy comes: it needs identities, the sessions made before do not have one yet
  const user: PolicyGroup = { file: 'u.policy', name: 'user', match: { uid: 1000 }, allowedBearers: ['wifi'] };
  host.setPolicies([tabs, user]);
  assert.equal(host.needsIdentity(), true);
  assert.equal(host.state.sessions.get(c.path)?.policy, undefined, 'not before the bus says who the owner is');
  host.takeDirty();
  host.identified(':1.7', { uid: 1000, gids: [1000] });
  assert.equal(host.state.sessions.get(c.path)?.policy, user);
  assert.equal(host.state.sessions.get(a.path)?.policy, user, 'a uid group ranks above one on the ContextIdentifier alone');
  assert.deepEqual([...host.takeDirty()].sort(), [a.path, c.path], 'the sessions whose policy changed are assigned again');
  assert.deepEqual(host.unidentifiedOwners(), []);
  // told twice (a late answer): nothing changes
  host.identified(':1.7', { uid: 2000, gids: [] });
  assert.equal(host.state.sessions.get(c.path)?.identity?.uid, 1000);
  assert.deepEqual(removed, []);
});

test('SessionHost: an identity that comes late and whose policy does not permit what the session asked ends it, as a policy change would', () => {
  const st = engine(2, [1]);
  const removed: string[] = [];
  const host: SessionHost = new SessionHost({ engine: () => st, now: () => 0, changed: (r) => removed.push(...r.filter((x) => x.byDaemon).map((x) => x.session.path)) });
  // the ContextIdentifier group grants emergency calls; the uid group (ranked higher) does not
  host.setPolicies([{ file: 'e.policy', name: 'ecall', match: { contextIdentifier: 'ecall' }, emergencyCall: true }]);
  const e = host.create(':1.9', '/e', { ...DEFAULT_REQUEST, contextIdentifier: 'ecall', emergencyCall: true }, undefined) as Session;
  assert.ok(!('name' in e));
  host.setPolicies([...host.state.policies, { file: 'u.policy', name: 'user', match: { uid: 1000 } }]);
  host.identified(':1.9', { uid: 1000, gids: [] });
  assert.deepEqual(removed, [e.path]);
  assert.equal(host.state.sessions.size, 0);
  // an owner the bus will not identify: its sessions without identity end, the identified stay
  removed.length = 0;
  host.setPolicies([]);
  const u = host.create(':1.10', '/u', { ...DEFAULT_REQUEST }, undefined) as Session;
  const k = host.create(':1.10', '/k', { ...DEFAULT_REQUEST }, { uid: 1000, gids: [] }) as Session;
  host.unidentifiable(':1.10');
  assert.deepEqual(removed, [u.path]);
  assert.deepEqual([...host.state.sessions.keys()], [k.path]);
});
