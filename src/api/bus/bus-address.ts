// Where a D-Bus address says the bus listens. An address is a list of `transport:key=value,…`
// entries separated by `;`, tried in order; values escape bytes as %xx (D-Bus specification,
// "Server Addresses"). The daemon speaks to a system bus: unix sockets only.

/** The socket path of the first unix entry (an abstract name as "\0name", as node:net takes it). */
export function busSocketPath(address: string): string {
  for (const entry of address.split(';')) {
    const colon = entry.indexOf(':');
    if (colon < 0 || entry.slice(0, colon) !== 'unix') continue;
    const keys = new Map<string, string>();
    for (const pair of entry.slice(colon + 1).split(',')) {
      const eq = pair.indexOf('=');
      if (eq > 0) keys.set(pair.slice(0, eq), unescapeValue(pair.slice(eq + 1)));
    }
    const path = keys.get('path');
    if (path) return path;
    const abstract = keys.get('abstract');
    if (abstract) return `\0${abstract}`;
  }
  throw new Error(`no unix socket in D-Bus address "${address}" (unix:path=… or unix:abstract=…)`);
}

function unescapeValue(v: string): string {
  if (!v.includes('%')) return v;
  const bytes: number[] = [];
  for (let i = 0; i < v.length; i++) {
    const hex = v[i] === '%' ? v.slice(i + 1, i + 3) : '';
    if (/^[0-9a-fA-F]{2}$/.test(hex)) {
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else bytes.push(...Buffer.from(v[i] as string));
  }
  return Buffer.from(bytes).toString('utf8');
}
