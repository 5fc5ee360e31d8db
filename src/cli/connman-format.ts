// Human output of the connection-manager commands, in connmanctl's layout (Debian's 1.41,
// checked against it): scripts written for `connmanctl services` keep working on ours. Pure.
import type { ConnmanEvent, ServiceEntry, ServiceState, TechnologyEntry } from '../client/index.ts';

/** connmanctl's third flag column: O online, R ready, a association, c configuration, d disconnect, else blank (idle, failure). */
const STATE_FLAG: Partial<Record<ServiceState, string>> = { online: 'O', ready: 'R', association: 'a', configuration: 'c', disconnect: 'd' };

export function serviceFlags(p: { Favorite: boolean; AutoConnect: boolean; State: ServiceState }): string {
  return `${p.Favorite ? '*' : ' '}${p.AutoConnect ? 'A' : ' '}${STATE_FLAG[p.State] ?? ' '}`;
}

/** `*AO Wired                ethernet_…_cable` (connmanctl: "%c%c%c %-20s %s"). */
export function serviceLine(s: ServiceEntry): string {
  return `${serviceFlags(s.properties)} ${s.properties.Name.padEnd(20)} ${s.id}`;
}

/** A value as connmanctl prints it: True/False, [ a, b ], [ K=V, … ], doubles with %f. */
export function formatValue(v: unknown): string {
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toFixed(6);
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) return `[ ${v.map(formatValue).join(', ')} ]`;
  if (Buffer.isBuffer(v)) return `[ ${[...v].join(', ')} ]`;
  if (v !== null && typeof v === 'object') {
    return `[ ${Object.entries(v)
      .map(([k, x]) => `${k}=${formatValue(x)}`)
      .join(', ')} ]`;
  }
  return String(v);
}

/** `  Key = value` lines. */
export function propertyLines(props: Record<string, unknown>): string[] {
  return Object.entries(props).map(([k, v]) => `  ${k} = ${formatValue(v)}`);
}

export function serviceDetail(s: ServiceEntry): string {
  return [s.path, ...propertyLines(s.properties)].join('\n');
}

export function technologiesText(list: readonly TechnologyEntry[]): string {
  return list.map((t) => [t.path, ...propertyLines(t.properties)].join('\n')).join('\n');
}

/** HH:MM:SS.mmm, local time. */
export function clock(d: Date): string {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/**
 * One monitor line per event, after the time: connmanctl's "%-12s %-20s" columns (object
 * kind, last path element), then what changed. ServicesChanged fits on one line here.
 */
export function eventLine(ev: ConnmanEvent): string {
  const cols = (kind: string, name: string): string => `${kind.padEnd(12)} ${name.padEnd(20)}`;
  switch (ev.kind) {
    case 'property-changed': {
      const name = ev.object === 'manager' ? '' : ev.object === 'technology' ? ev.type : ev.id;
      const kind = ev.object === 'manager' ? 'Manager' : ev.object === 'technology' ? 'Technology' : 'Service';
      return `${cols(kind, name)} ${ev.name} = ${formatValue(ev.value)}`;
    }
    case 'services-changed': {
      const order = ev.changed.map((c) => (c.properties ? `+${c.id}` : c.id));
      const removed = ev.removed.map((r) => r.id);
      return `${cols('Manager', 'ServicesChanged')} [ ${order.join(', ')} ]${removed.length > 0 ? ` removed [ ${removed.join(', ')} ]` : ''}`;
    }
    case 'technology-added':
      return `${cols('Manager', 'TechnologyAdded')} ${ev.type} ${formatValue(ev.properties)}`;
    case 'technology-removed':
      return `${cols('Manager', 'TechnologyRemoved')} ${ev.type}`;
    case 'daemon':
      return ev.present ? `${cols('Bus', 'net.connman')} appeared (${ev.owner})` : `${cols('Bus', 'net.connman')} left the bus`;
    case 'bus-lost':
      return `${cols('Bus', '')} connection lost: ${ev.message}`;
  }
}
