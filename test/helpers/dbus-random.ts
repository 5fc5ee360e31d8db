// Random D-Bus signatures and values (dbus-next's conventions), from a seed: the wire encoder
// and decoder are checked against dbus-next's own marshalling with them.
import dbus from 'dbus-next';

const V = dbus.Variant;

/** Random D-Bus types and values of them, from a seed (the same seed, the same values). */
export function randomValues() {
  let seed = 0x5eed;
  const reseed = (n: number): void => {
    seed = n;
  };
  // mulberry32: small, and well spread over every range asked of it
  const rnd = (n: number): number => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
  const basic = ['y', 'b', 'n', 'q', 'i', 'u', 'x', 't', 'd', 's', 'o', 'g'];
  const sigOf = (depth: number): string => {
    const r = rnd(depth > 2 ? 12 : 16);
    if (r < 12) return basic[r] as string;
    if (r === 12) return `a${sigOf(depth + 1)}`;
    if (r === 13) return `a{${basic[rnd(basic.length)]}${sigOf(depth + 1)}}`;
    if (r === 14) return 'v';
    return `(${sigOf(depth + 1)}${sigOf(depth + 1)})`;
  };
  const valueFor = (sig: string, depth: number): unknown => {
    const c = sig[0];
    switch (c) {
      case 'y':
        return rnd(256);
      case 'b':
        return rnd(2) === 1;
      case 'n':
        return rnd(65536) - 32768;
      case 'q':
        return rnd(65536);
      case 'i':
        return rnd(2 ** 31) - 2 ** 30;
      case 'u':
        return rnd(2 ** 31) * 2 + rnd(2);
      case 'x':
        return BigInt(rnd(2 ** 31)) * BigInt(rnd(2 ** 31)) - 2n ** 40n;
      case 't':
        return BigInt(rnd(2 ** 31)) * BigInt(rnd(2 ** 31));
      case 'd':
        return rnd(1e6) / 7;
      case 's':
        return ['', 'eth1', 'wlan0 ✓', 'ä'.repeat(rnd(40))][rnd(4)];
      case 'o':
        return ['/', '/net/connman/service/ethernet_eth1', '/a/b_9'][rnd(3)];
      case 'g':
        return ['', 'a{sv}', 's', '(ii)'][rnd(4)];
      case 'v': {
        const inner = depth > 3 ? 's' : sigOf(depth + 1);
        return new V(inner, valueFor(inner, depth + 1));
      }
      case 'a': {
        const rest = sig.slice(1);
        const n = rnd(4);
        if (rest[0] === '{') {
          const kt = rest[1] as string;
          const vt = rest.slice(2, -1);
          const o: Record<string, unknown> = {};
          // dbus-next's dicts are objects: string keys only
          for (let k = 0; k < n; k++) o[kt === 's' ? `k${k}` : String(k)] = valueFor(vt, depth + 1);
          return kt === 's' ? o : {};
        }
        return Array.from({ length: n }, () => valueFor(rest, depth + 1));
      }
      case '(': {
        // the two members, split at the first complete type
        const inner = sig.slice(1, -1);
        const first = completeType(inner);
        return [valueFor(first, depth + 1), valueFor(inner.slice(first.length), depth + 1)];
      }
      default:
        throw new Error(`no value for ${sig}`);
    }
  };
  /**
   * From seed n: a body of two random complete types and values for them (a dict with keys that
   * are not strings becomes a{sv}: dbus-next's dicts have string keys only).
   */
  const twoValues = (n: number): { signature: string; body: unknown[] } => {
    reseed(n);
    const types = Array.from({ length: 2 }, () => sigOf(0)).map((x) => (x.startsWith('a{') && x[2] !== 's' ? 'a{sv}' : x));
    return { signature: types.join(''), body: types.map((t) => valueFor(t, 0)) };
  };
  return { rnd, sigOf, valueFor, reseed, twoValues };
}

/** A signature's complete types. */
export function splitTypes(sig: string): string[] {
  const out: string[] = [];
  for (let rest = sig; rest.length > 0; ) {
    const t = completeType(rest);
    out.push(t);
    rest = rest.slice(t.length);
  }
  return out;
}

/** The first complete type of a signature. */
export function completeType(sig: string): string {
  let depth = 0;
  for (let i = 0; i < sig.length; i++) {
    const c = sig[i];
    if (c === '(' || c === '{') depth++;
    else if (c === ')' || c === '}') depth--;
    else if (c === 'a') continue;
    if (depth === 0) return sig.slice(0, i + 1);
  }
  return sig;
}
