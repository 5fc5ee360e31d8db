// Our D-Bus objects: which paths exist, their interfaces, methods and signals, and the
// introspection XML that describes them. dbus-next's own Interface classes are not used:
// the API needs the caller of every call (owner checks), ConnMan's exact error names for
// every bad input, and cheap objects by the thousand (sessions).
import type { Message } from 'dbus-next';

export interface Call {
  sender: string;
  msg: Message;
  // biome-ignore lint/suspicious/noExplicitAny: D-Bus bodies are checked against the signature before a handler sees them
  args: any[];
}

export interface MethodSpec {
  in: string;
  out: string;
  /** returns the reply body (matching `out`), or throws ApiError */
  handler: (call: Call) => unknown[] | Promise<unknown[]>;
  argNames?: string[];
}

export interface InterfaceSpec {
  name: string;
  methods: Record<string, MethodSpec>;
  signals: Record<string, string>;
}

export class ObjectTree {
  private readonly objects = new Map<string, Map<string, InterfaceSpec>>();

  add(path: string, iface: InterfaceSpec): void {
    let o = this.objects.get(path);
    if (!o) {
      o = new Map();
      this.objects.set(path, o);
    }
    o.set(iface.name, iface);
  }

  remove(path: string): void {
    this.objects.delete(path);
  }

  has(path: string): boolean {
    return this.objects.has(path);
  }

  get(path: string): Map<string, InterfaceSpec> | undefined {
    return this.objects.get(path);
  }

  /** Finds the method; with no interface named, the first interface that has it (as the D-Bus spec allows). */
  method(path: string, iface: string | undefined, member: string): MethodSpec | undefined {
    const o = this.objects.get(path);
    if (!o) return undefined;
    if (iface) return o.get(iface)?.methods[member];
    for (const i of o.values()) if (i.methods[member]) return i.methods[member];
    return undefined;
  }

  /** Child node names directly below `path` (for introspection of intermediate paths). */
  children(path: string): string[] {
    const prefix = path === '/' ? '/' : `${path}/`;
    const out = new Set<string>();
    for (const p of this.objects.keys()) {
      if (p !== path && p.startsWith(prefix)) out.add(p.slice(prefix.length).split('/')[0]!);
    }
    return [...out].sort();
  }

  introspect(path: string): string {
    const parts: string[] = [
      '<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">',
      '<node>',
      '<interface name="org.freedesktop.DBus.Introspectable"><method name="Introspect"><arg name="xml" type="s" direction="out"/></method></interface>',
    ];
    for (const i of this.objects.get(path)?.values() ?? []) {
      parts.push(`<interface name="${i.name}">`);
      for (const [name, m] of Object.entries(i.methods)) {
        parts.push(`<method name="${name}">`);
        for (const [k, t] of splitSignature(m.in).entries()) parts.push(`<arg name="${m.argNames?.[k] ?? `arg${k}`}" type="${t}" direction="in"/>`);
        for (const [k, t] of splitSignature(m.out).entries()) parts.push(`<arg name="out${k}" type="${t}" direction="out"/>`);
        parts.push('</method>');
      }
      for (const [name, sig] of Object.entries(i.signals)) {
        parts.push(`<signal name="${name}">`);
        for (const [k, t] of splitSignature(sig).entries()) parts.push(`<arg name="arg${k}" type="${t}"/>`);
        parts.push('</signal>');
      }
      parts.push('</interface>');
    }
    for (const c of this.children(path)) parts.push(`<node name="${c}"/>`);
    parts.push('</node>');
    return parts.join('\n');
  }
}

/** Splits a D-Bus signature into its complete types: 'sa{sv}o' → ['s', 'a{sv}', 'o']. */
export function splitSignature(sig: string): string[] {
  const out: string[] = [];
  let i = 0;
  const one = (): void => {
    const c = sig[i++];
    if (c === 'a') one();
    else if (c === '(' || c === '{') {
      const close = c === '(' ? ')' : '}';
      while (i < sig.length && sig[i] !== close) one();
      i++;
    }
  };
  while (i < sig.length) {
    const start = i;
    one();
    out.push(sig.slice(start, i));
  }
  return out;
}
