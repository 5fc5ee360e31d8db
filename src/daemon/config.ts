// netsessiond's configuration: ConnMan's main.conf keys where they apply ([General]), our
// own in [netsession]. Unknown keys and bad values are reported and the default kept.
import { DEFAULT_OWNERSHIP, type Ownership } from '../kernel/reconciler/ownership.ts';
import type { EngineConfig, TechnologyType } from '../engine/types.ts';
import { TECHNOLOGY_ORDER } from '../engine/types.ts';
import { DEFAULT_LAYOUT, type RoutingLayout } from '../engine/routing.ts';
import { bool, int, list, parseKeyFile } from './keyfile.ts';

export interface DaemonConfig {
  engine: EngineConfig;
  ownership: Ownership;
  layout: RoutingLayout;
  /** where the default service's DNS goes; never /etc/resolv.conf unless configured */
  resolvConf: string;
  /** ConnMan-format provisioning files (*.config) */
  provisioningDir: string | undefined;
  /** session policy files (*.policy, ConnMan's session_policy_local format), reloaded live */
  sessionPolicyDir: string;
  /** online check timeout per request, ms */
  onlineCheckTimeoutMs: number;
  warnings: string[];
}

const GENERAL_KNOWN = new Set([
  'PreferredTechnologies',
  'NetworkInterfaceBlacklist',
  'EnableOnlineCheck',
  'OnlineCheckIPv4URL',
  'OnlineCheckIPv6URL',
  'OnlineCheckInitialInterval',
  'OnlineCheckMaxInterval',
  'AllowHostnameUpdates',
  'AllowDomainnameUpdates',
  'SingleConnectedTechnology',
  'DefaultAutoConnectTechnologies',
  'AlwaysConnectedTechnologies',
  'TimeUpdates',
  'TimezoneUpdates',
  'FallbackTimeservers',
  'FallbackNameservers',
  'AutoConnectRoamingServices',
  'PersistentTetheringMode',
  'Enable6to4',
  'EnableOnlineToReadyTransition',
  'OnlineCheckIntervalStyle',
]);

// ConnMan's list, plus container plumbing (docker's vethXXXX and bridges) that is never an uplink
export const DEFAULT_BLACKLIST = ['vmnet', 'vboxnet', 'virbr', 'ifb', 've-', 'vb-', 'veth', 'docker', 'br-'];

export function defaultConfig(): DaemonConfig {
  return {
    engine: {
      preferredTechnologies: [],
      interfaceBlacklist: [...DEFAULT_BLACKLIST],
      interfaceAllowlist: [],
      onlineCheck: {
        enabled: true,
        ipv4Url: 'http://ipv4.connman.net/online/status.html',
        ipv6Url: 'http://ipv6.connman.net/online/status.html',
        initialInterval: 1,
        maxInterval: 12,
        recheckInterval: 300,
      },
      dhcpFailureTimeout: 30,
      tables: { min: DEFAULT_OWNERSHIP.tables.min, max: DEFAULT_OWNERSHIP.tables.min + 0xfff },
      provisioning: [],
    },
    ownership: { ...DEFAULT_OWNERSHIP },
    layout: { ...DEFAULT_LAYOUT },
    resolvConf: '/run/netsession/resolv.conf',
    provisioningDir: undefined,
    sessionPolicyDir: '/etc/netsession/session_policy',
    onlineCheckTimeoutMs: 5000,
    warnings: [],
  };
}

function technologies(v: string | undefined, warn: (m: string) => void): TechnologyType[] {
  return list(v).filter((t): t is TechnologyType => {
    const ok = (TECHNOLOGY_ORDER as readonly string[]).includes(t);
    if (!ok) warn(`PreferredTechnologies: unknown technology ${t}`);
    return ok;
  });
}

export function parseConfig(text: string): DaemonConfig {
  const c = defaultConfig();
  const warn = (m: string): void => {
    c.warnings.push(m);
  };
  const kf = parseKeyFile(text);
  for (const e of kf.errors) warn(e);
  const g = kf.groups.get('General') ?? new Map<string, string>();
  for (const k of g.keys()) if (!GENERAL_KNOWN.has(k)) warn(`[General] ${k}: unknown key, ignored`);
  if (g.has('PreferredTechnologies')) c.engine.preferredTechnologies = technologies(g.get('PreferredTechnologies'), warn);
  if (g.has('NetworkInterfaceBlacklist')) c.engine.interfaceBlacklist = list(g.get('NetworkInterfaceBlacklist'));
  c.engine.onlineCheck.enabled = bool(g.get('EnableOnlineCheck'), true);
  c.engine.onlineCheck.ipv4Url = g.get('OnlineCheckIPv4URL') ?? c.engine.onlineCheck.ipv4Url;
  c.engine.onlineCheck.ipv6Url = g.get('OnlineCheckIPv6URL') ?? c.engine.onlineCheck.ipv6Url;
  for (const key of ['ipv4Url', 'ipv6Url'] as const) {
    const u = c.engine.onlineCheck[key];
    if (!/^http:\/\/[^/]+/.test(u)) {
      warn(`online check URL must be http://…: ${u}`);
      c.engine.onlineCheck[key] = defaultConfig().engine.onlineCheck[key];
    }
  }
  c.engine.onlineCheck.initialInterval = int(g.get('OnlineCheckInitialInterval'), 1, 1, 3600);
  c.engine.onlineCheck.maxInterval = Math.max(c.engine.onlineCheck.initialInterval, int(g.get('OnlineCheckMaxInterval'), 12, 1, 3600));
  if (bool(g.get('AllowHostnameUpdates'), false) || bool(g.get('AllowDomainnameUpdates'), false)) warn('AllowHostnameUpdates/AllowDomainnameUpdates: netsession never changes the host name');

  const n = kf.groups.get('netsession') ?? new Map<string, string>();
  if (n.has('ResolvConf')) c.resolvConf = n.get('ResolvConf')!;
  if (n.has('ProvisioningDir')) c.provisioningDir = n.get('ProvisioningDir');
  if (n.has('SessionPolicyDir')) c.sessionPolicyDir = n.get('SessionPolicyDir')!;
  if (n.has('InterfaceAllowlist')) c.engine.interfaceAllowlist = list(n.get('InterfaceAllowlist'));
  c.engine.onlineCheck.recheckInterval = int(n.get('OnlineRecheckInterval'), 300, 1, 86400);
  c.onlineCheckTimeoutMs = int(n.get('OnlineCheckTimeout'), 5, 1, 120) * 1000;
  c.engine.dhcpFailureTimeout = int(n.get('DhcpFailureTimeout'), 30, 1, 3600);
  c.ownership.protocol = int(n.get('RouteProtocol'), c.ownership.protocol, 5, 255);
  c.layout.protocol = c.ownership.protocol;
  const band = int(n.get('RulePriorityBase'), c.ownership.rulePriorities.min, 1, 31000);
  c.ownership.rulePriorities = { min: band, max: band + 999 };
  // after the session rules (see src/engine/session-routing.ts)
  c.layout.sourceRulePriority = band + 950;
  const tbase = int(n.get('TableBase'), c.ownership.tables.min, 256, 0x7fff0000);
  c.ownership.tables = { min: tbase, max: tbase + 0xffff };
  c.engine.tables = { min: tbase, max: tbase + 0xfff };
  if (n.has('NftTable')) c.ownership.nftTable = { family: 'inet', name: n.get('NftTable')! };
  c.layout.mainMetric4 = int(n.get('DefaultRouteMetric'), 0, 0, 0xffffffff);
  return c;
}
