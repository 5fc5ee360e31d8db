// Service order (ConnMan's service_compare, minus what has no meaning here yet): the
// first service is the default one. Pure.
import { TECHNOLOGY_ORDER, type Service, type TechnologyType } from './types.ts';

const connected = (s: Service): boolean => s.state === 'ready' || s.state === 'online';
const connecting = (s: Service): boolean => s.state === 'association' || s.state === 'configuration';

function typeRank(t: TechnologyType, preferred: readonly TechnologyType[]): number {
  const p = preferred.indexOf(t);
  return p >= 0 ? p : preferred.length + TECHNOLOGY_ORDER.indexOf(t);
}

/** Negative when `a` comes before `b`. */
export function compareServices(a: Service, b: Service, preferred: readonly TechnologyType[]): number {
  const ca = connected(a);
  const cb = connected(b);
  if (ca && cb) {
    // the user's MoveBefore/MoveAfter outrank everything else among connected services
    if (a.settings.order !== b.settings.order) return b.settings.order - a.settings.order;
    const pa = preferred.indexOf(a.type);
    const pb = preferred.indexOf(b.type);
    if (a.type !== b.type && (pa >= 0 || pb >= 0)) return (pa < 0 ? Infinity : pa) - (pb < 0 ? Infinity : pb);
    if (a.state !== b.state) return a.state === 'online' ? -1 : 1;
  } else if (ca !== cb) return ca ? -1 : 1;
  else if (connecting(a) !== connecting(b)) return connecting(a) ? -1 : 1;
  if (a.settings.favorite !== b.settings.favorite) return a.settings.favorite ? -1 : 1;
  if (a.type !== b.type) return typeRank(a.type, preferred) - typeRank(b.type, preferred);
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

export function orderServices(services: Iterable<Service>, preferred: readonly TechnologyType[]): Service[] {
  return [...services].sort((a, b) => compareServices(a, b, preferred));
}

/** The default service: the first in order, if it is connected. */
export function defaultService(services: Iterable<Service>, preferred: readonly TechnologyType[]): Service | undefined {
  const first = orderServices(services, preferred)[0];
  return first && connected(first) ? first : undefined;
}

export const isConnected = connected;
