// D-Bus values as dbus-next delivers them (Variant objects, plain objects for dicts, arrays,
// Buffers for byte arrays, BigInt for 64-bit integers) turned into plain data, and back.
import dbus from 'dbus-next';

const { Variant } = dbus;
export type DbusVariant = InstanceType<typeof Variant>;

export function isVariant(v: unknown): v is DbusVariant {
  return v instanceof Variant;
}

/** Unwraps variants recursively: Variant('a{sv}', {A: Variant('s','x')}) → {A: 'x'}. */
export function unwrap(v: unknown): unknown {
  if (isVariant(v)) return unwrap(v.value);
  if (Array.isArray(v)) return v.map(unwrap);
  if (v === null || typeof v !== 'object' || Buffer.isBuffer(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = unwrap(x);
  return out;
}

export function unwrapDict(v: unknown): Record<string, unknown> {
  const u = unwrap(v);
  return isRecord(u) ? u : {};
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v);
}

export const variant = {
  s: (v: string): DbusVariant => new Variant('s', v),
  b: (v: boolean): DbusVariant => new Variant('b', v),
  y: (v: number): DbusVariant => new Variant('y', v),
  i: (v: number): DbusVariant => new Variant('i', v),
  as: (v: readonly string[]): DbusVariant => new Variant('as', [...v]),
  dict: (d: Record<string, DbusVariant>): DbusVariant => new Variant('a{sv}', d),
  of: (signature: string, value: unknown): DbusVariant => new Variant(signature, value),
};

/** JSON.stringify replacer for unwrapped values: 64-bit integers and byte arrays have no JSON form of their own. */
export function jsonReplacer(_key: string, v: unknown): unknown {
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (isRecord(v) && (v as { type?: unknown }).type === 'Buffer' && Array.isArray((v as { data?: unknown }).data)) return (v as { data: number[] }).data;
  return v;
}
