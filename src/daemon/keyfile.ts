// GLib key-file syntax (what ConnMan's main.conf and provisioning files use): [groups],
// key = value, # and ; comments, lists separated by commas or semicolons. Pure.

export interface KeyFile {
  groups: Map<string, Map<string, string>>;
  errors: string[];
}

export function parseKeyFile(text: string): KeyFile {
  const groups = new Map<string, Map<string, string>>();
  const errors: string[] = [];
  let current: Map<string, string> | undefined;
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    const g = /^\[([^\]]+)\]$/.exec(line);
    if (g) {
      const name = g[1]!.trim();
      current = groups.get(name) ?? new Map();
      groups.set(name, current);
      return;
    }
    const eq = line.indexOf('=');
    if (eq <= 0) {
      errors.push(`line ${i + 1}: expected key = value`);
      return;
    }
    if (!current) {
      errors.push(`line ${i + 1}: key outside of a [group]`);
      return;
    }
    current.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  });
  return { groups, errors };
}

export function list(v: string | undefined): string[] {
  if (v === undefined) return [];
  return v
    .split(/[,;]/)
    .map((x) => x.trim())
    .filter((x) => x !== '');
}

export function bool(v: string | undefined, fallback: boolean): boolean {
  if (v === undefined) return fallback;
  if (/^(true|yes|1)$/i.test(v)) return true;
  if (/^(false|no|0)$/i.test(v)) return false;
  return fallback;
}

export function int(v: string | undefined, fallback: number, min: number, max: number): number {
  if (v === undefined || !/^-?\d+$/.test(v)) return fallback;
  const n = Number(v);
  return n < min || n > max ? fallback : n;
}
