// Engine states for tests of session semantics: n ethernet uplinks, online, made by the
// engine's own reducer from link, lease and online-check events.
import { type EngineEvent, createState, reduce } from '../../src/engine/engine.ts';
import type { EngineState, Service } from '../../src/engine/types.ts';
import { defaultConfig } from '../../src/daemon/config.ts';
import { DEFAULT_REQUEST } from '../../src/engine/sessions.ts';
import type { Session } from '../../src/engine/session-types.ts';

const link = (i: number): EngineEvent => ({ kind: 'link', link: { ifindex: 10 + i, ifname: `eth${i}`, mac: `02:00:00:00:00:0${i}`, mtu: 1500, carrier: true } });
const lease = (i: number): EngineEvent => ({
  kind: 'dhcp-lease',
  ifindex: 10 + i,
  lease: { address: `192.0.${i}.50`, prefixLen: 24, router: `192.0.${i}.1`, dns: [], searchDomains: [], ntp: [], leaseSeconds: 3600, expiresAt: 3600_000 },
});
const online = (i: number): EngineEvent[] => [
  { kind: 'online-started', id: id(i), family: 'ipv4' },
  { kind: 'online-result', id: id(i), family: 'ipv4', status: 'online' },
];
export const id = (i: number): string => `ethernet_02000000000${i}_cable`;

/** n uplinks, all online; `sessionOnly` ones are up only because sessions asked (no AutoConnect). */
export function engine(n: number, sessionOnly: number[] = []): EngineState {
  let st = createState(defaultConfig().engine);
  for (let i = 0; i < n; i++) for (const e of [link(i), lease(i), ...online(i)]) st = reduce(st, e, 0);
  const services = new Map(st.services);
  for (const i of sessionOnly) {
    const s = services.get(id(i)) as Service;
    services.set(s.id, { ...s, sessionRequested: true, settings: { ...s.settings, autoConnect: false } });
  }
  return { ...st, services };
}


/** A session of :1.1 with this marker, on uplink `svc` of engine() (undefined: none); `extra` for the rest. */
export function sessionOn(path: string, marker: number, svc: number | undefined, extra: Partial<Session> = {}): Session {
  return {
    path,
    owner: ':1.1',
    notifier: '/n',
    identity: { uid: 1000, gids: [1000] },
    request: DEFAULT_REQUEST,
    policy: undefined,
    marker,
    active: true,
    detached: false,
    idle: false,
    woken: false,
    demandSince: 0,
    serviceId: svc === undefined ? undefined : id(svc),
    routeVia: svc === undefined ? undefined : id(svc),
    createdAt: 0,
    ...extra,
  };
}
