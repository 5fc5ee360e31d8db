// The daemon's warm-up runs the CreateSession paths on inputs of its own: every slice must
// really create, assign, route and tell its sessions (a warm-up that silently skipped its work
// would warm nothing), and leave the engine state it reads as it was.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { warmUp } from '../../src/daemon/warm-up.ts';
import { engine } from '../helpers/engine-state.ts';

test('warm-up: every slice creates, assigns, routes and tells its sessions, and changes nothing it reads', () => {
  const st = engine(3);
  const before = structuredClone(st);
  const rounds = [...warmUp({ engine: () => st, now: () => 1000, layout: { protocol: 0x4e, base: 20000 } }, 4, 10)];
  assert.equal(rounds.length, 4);
  for (const r of rounds) {
    assert.equal(r.created, 10);
    assert.equal(r.assigned, 10, 'three online uplinks: every session has one');
    // the sessions with AvoidHandover=false (extended) report a marker and have a rule per family
    assert.equal(r.rules, 2 * 2);
    assert.deepEqual(new Set(r.states), new Set(['online']));
  }
  assert.deepEqual(st, before);
});

test('warm-up: with no service at all, sessions are made, fail closed and are told they are disconnected', () => {
  const st = engine(0);
  const [r] = [...warmUp({ engine: () => st, now: () => 1000, layout: { protocol: 0x4e, base: 20000 } }, 1, 5)];
  // the one with a marker still has its rules (unreachable: fail closed)
  assert.deepEqual(r, { created: 5, assigned: 0, rules: 2, states: ['disconnected', 'disconnected', 'disconnected', 'disconnected', 'disconnected'] });
});
