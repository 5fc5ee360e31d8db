// What the kernel should hold for the connection manager: per-service tables with their
// connected and default routes, source rules that send traffic bound to a service's
// address into its table, the default service's default routes in main, and the IPv4
// addresses netsession configures itself (DHCP, manual). Pure.
import { normalizeRoute } from '../kernel/rtnetlink/route.ts';
import { normalizeRule } from '../kernel/rtnetlink/rule.ts';
import type { Route, Rule } from '../kernel/rtnetlink/types.ts';
import { AF_INET, AF_INET6, RT_TABLE_MAIN } from '../kernel/netlink/constants.ts';
import { addressBytes, addressString } from '../kernel/netlink/codec.ts';
import { ipv4Of, ipv6Of, wantsConnection } from './engine.ts';
import { defaultService } from './order.ts';
import type { EngineState, Service } from './types.ts';

export interface RoutingLayout {
  protocol: number;
  /** priority of the `from <service address> lookup <service table>` rules */
  sourceRulePriority: number;
  /** metric of the default service's default routes in main */
  mainMetric4: number;
  mainMetric6: number;
}

export const DEFAULT_LAYOUT: RoutingLayout = { protocol: 83, sourceRulePriority: 10950, mainMetric4: 0, mainMetric6: 1024 };

export interface DesiredAddress {
  ifindex: number;
  address: string;
  prefixLen: number;
  broadcast?: string;
}

export interface DesiredNetwork {
  addresses: DesiredAddress[];
  routes: Route[];
  rules: Rule[];
  /** nameservers and search domains for resolv.conf: the default service's */
  dns: { nameservers: string[]; search: string[] };
}

/** The network prefix of an address: 192.0.2.77/24 → 192.0.2.0. */
export function networkOf(address: string, prefixLen: number): string {
  const b = addressBytes(address);
  for (let i = 0; i < b.length; i++) {
    const bits = Math.max(0, Math.min(8, prefixLen - i * 8));
    b[i] = (b[i] ?? 0) & ((0xff << (8 - bits)) & 0xff);
  }
  return addressString(b, 0, b.length);
}

function broadcastOf(address: string, prefixLen: number): string {
  const b = addressBytes(address);
  for (let i = 0; i < 4; i++) {
    const bits = Math.max(0, Math.min(8, prefixLen - i * 8));
    b[i] = (b[i] ?? 0) | (~(0xff << (8 - bits)) & 0xff);
  }
  return addressString(b, 0, 4);
}

export function desiredNetwork(state: EngineState, layout: RoutingLayout, now: number, dnsOf: (s: Service) => { nameservers: string[]; search: string[] }): DesiredNetwork {
  const out: DesiredNetwork = { addresses: [], routes: [], rules: [], dns: { nameservers: [], search: [] } };
  const proto = layout.protocol;
  for (const s of state.services.values()) {
    if (!wantsConnection(state, s)) continue;
    const table = s.settings.table;
    const v4 = ipv4Of(s);
    if (v4) {
      out.addresses.push({ ifindex: s.ifindex, address: v4.address, prefixLen: v4.prefixLen, ...(v4.prefixLen < 31 ? { broadcast: broadcastOf(v4.address, v4.prefixLen) } : {}) });
      out.routes.push(normalizeRoute({ family: AF_INET, table, dst: networkOf(v4.address, v4.prefixLen), dstLen: v4.prefixLen, oif: s.ifindex, prefsrc: v4.address, protocol: proto }));
      if (v4.gateway) out.routes.push(normalizeRoute({ family: AF_INET, table, dst: 'default', gateway: v4.gateway, oif: s.ifindex, prefsrc: v4.address, protocol: proto }));
      out.rules.push(normalizeRule({ family: AF_INET, priority: layout.sourceRulePriority, protocol: proto, table, src: v4.address }));
    }
    const v6 = ipv6Of(s, now);
    if (v6) {
      // SLAAC addresses are the kernel's; a manual one is ours to put there
      if (v6.method === 'manual') for (const a of v6.addresses) out.addresses.push({ ifindex: s.ifindex, address: a.address, prefixLen: a.prefixLen });
      const prefixes = new Set<string>();
      for (const a of v6.addresses) {
        const net = `${networkOf(a.address, a.prefixLen)}/${a.prefixLen}`;
        if (!prefixes.has(net)) {
          prefixes.add(net);
          out.routes.push(normalizeRoute({ family: AF_INET6, table, dst: networkOf(a.address, a.prefixLen), dstLen: a.prefixLen, oif: s.ifindex, protocol: proto, priority: 256 }));
        }
        out.rules.push(normalizeRule({ family: AF_INET6, priority: layout.sourceRulePriority, protocol: proto, table, src: a.address }));
      }
      if (v6.router) out.routes.push(normalizeRoute({ family: AF_INET6, table, dst: 'default', gateway: v6.router, oif: s.ifindex, protocol: proto }));
    }
  }
  const def = defaultService(state.services.values(), state.config.preferredTechnologies);
  if (def) {
    const v4 = ipv4Of(def);
    if (v4?.gateway) {
      out.routes.push(normalizeRoute({ family: AF_INET, table: RT_TABLE_MAIN, dst: 'default', gateway: v4.gateway, oif: def.ifindex, prefsrc: v4.address, protocol: proto, priority: layout.mainMetric4 }));
    }
    const v6 = ipv6Of(def, now);
    if (v6?.router) {
      out.routes.push(normalizeRoute({ family: AF_INET6, table: RT_TABLE_MAIN, dst: 'default', gateway: v6.router, oif: def.ifindex, protocol: proto, priority: layout.mainMetric6 }));
    }
    out.dns = dnsOf(def);
  }
  return out;
}
