// The first applications after a start pay for V8 compiling the code they run: a fresh daemon
// answered a burst of 100 CreateSession from 100 connections in 61 ms (median of 6 starts), one
// that had served a burst before in 31 ms; a profile of the fresh burst spent 21 ms in encoding
// its first Updates alone (2 ms warm). So once started, the daemon runs the paths of a
// CreateSession on throwaway inputs, a slice per event-loop turn: the D-Bus framer, decoder and
// encoder, the settings parser, a SessionHost of its own on the live engine state, the engine's
// assignment and demand, the session rules and the Update dictionaries. Pure: nothing of it
// reaches the kernel, the bus, or the daemon's own sessions.
import dbus from 'dbus-next';
import { MessageFramer, decodeMessage } from '../api/bus/wire-decoder.ts';
import { METHOD_CALL, METHOD_RETURN } from '../api/bus/message-type.ts';
import { encodeMessage } from '../api/bus/wire-encoder.ts';
import { notification } from '../api/connman/session.ts';
import { parseCreateSettings, servicePart, sessionSettings } from '../api/connman/session-settings.ts';
import { type SessionLayout, indexSessionRules, sessionRules } from '../engine/session-routing.ts';
import { reassign, sessionDemand } from '../engine/sessions.ts';
import type { EngineState } from '../engine/types.ts';
import { SessionHost } from './session-host.ts';

const { Variant } = dbus;

export interface WarmUpInputs {
  engine(): EngineState;
  now(): number;
  layout: SessionLayout;
}

/** Settings as applications send them: ConnMan clients' (none, bearers, a type) and ours (an interface, extended keys). */
function settingsSample(i: number, ifnames: readonly string[]): Record<string, InstanceType<typeof Variant>> {
  switch (i % 5) {
    case 0:
      return {};
    case 1:
      return { AllowedBearers: new Variant('as', ['ethernet', 'wifi', '*']) };
    case 2:
      return { ConnectionType: new Variant('s', 'internet') };
    case 3:
      return { AllowedInterface: new Variant('s', ifnames[i % Math.max(ifnames.length, 1)] ?? '*'), SourceIPRule: new Variant('b', true) };
    default:
      return { AvoidHandover: new Variant('b', false), ContextIdentifier: new Variant('s', 'warm-up') };
  }
}

/** What one slice did: a warm-up that stopped doing its work would show here. */
export interface WarmUpRound {
  created: number;
  /** sessions that got a service */
  assigned: number;
  /** rules for the sessions' own markers (sessions that report a SessionMarker have them) */
  rules: number;
  /** the States the decoded first Updates said */
  states: string[];
}

/**
 * `rounds` slices of warm-up, one per next(): each creates `perRound` sessions from encoded
 * CreateSession calls in a SessionHost of its own, assigns them, makes their rules and their
 * first Updates (encoded and decoded again), and ends them. (30 rounds of 10: 120 ms of CPU
 * here; 10 rounds left the burst at 49 ms, 30 brought it to 27.)
 */
export function* warmUp(inputs: WarmUpInputs, rounds = 30, perRound = 10): Generator<WarmUpRound, void, void> {
  let serial = 1;
  for (let r = 0; r < rounds; r++) {
    const engine = inputs.engine();
    const now = inputs.now();
    const ifnames = [...engine.services.values()].map((s) => s.ifname);
    const host = new SessionHost({ engine: () => engine, now: () => now, changed: () => undefined });
    // the calls arrive as one chunk of the socket, cut into messages by the framer
    const calls: Buffer[] = [];
    for (let i = 0; i < perRound; i++) {
      calls.push(
        encodeMessage({
          type: METHOD_CALL,
          serial: serial++,
          sender: `:1.${r}${i}`,
          destination: 'net.connman',
          path: '/',
          interface: 'net.connman.Manager',
          member: 'CreateSession',
          signature: 'a{sv}o',
          body: [settingsSample(i, ifnames), `/warm/up/s${i}`],
        }),
      );
    }
    new MessageFramer().push(Buffer.concat(calls), (bytes) => {
      const m = decodeMessage(bytes);
      if (!m?.sender) return;
      const s = host.create(m.sender, String(m.body[1]), parseCreateSettings(m.body[0]), undefined);
      if ('name' in s) return;
      encodeMessage({ type: METHOD_RETURN, serial: serial++, replySerial: m.serial ?? 0, destination: m.sender, signature: 'o', body: [s.path] });
    });
    host.assign(reassign(host.state, engine, host.takeDirty()));
    sessionDemand(host.askingState(), engine);
    const rules = sessionRules(host.state, engine, inputs.layout, indexSessionRules(host.state, engine, inputs.layout));
    const markers = new Set([...host.state.sessions.values()].map((s) => s.marker));
    const round: WarmUpRound = { created: host.state.sessions.size, assigned: 0, rules: rules.filter((x) => x.fwmark !== undefined && markers.has(x.fwmark)).length, states: [] };
    for (const s of host.state.sessions.values()) {
      const svc = s.serviceId ? engine.services.get(s.serviceId) : undefined;
      if (svc) round.assigned++;
      const dict = sessionSettings(s, svc, now, false, servicePart(svc, now));
      const update = encodeMessage({ ...notification(s, 'Update', dict), serial: serial++ });
      const told = decodeMessage(update)?.body[0] as Record<string, { value?: unknown }> | undefined;
      round.states.push(String(told?.State?.value));
    }
    for (const p of [...host.state.sessions.keys()]) host.destroy(p);
    yield round;
  }
}
