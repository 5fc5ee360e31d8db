// The connection manager's model: technologies, devices, services. Plain data; the
// engine's functions turn (state, event, now) into a new state. No I/O, no clocks.

export type ServiceState = 'idle' | 'failure' | 'association' | 'configuration' | 'ready' | 'disconnect' | 'online';
export type TechnologyType = 'ethernet' | 'wifi' | 'cellular' | 'bluetooth' | 'vpn' | 'gadget';
/** ConnMan's default order of technologies when nothing else decides */
export const TECHNOLOGY_ORDER: readonly TechnologyType[] = ['ethernet', 'wifi', 'cellular', 'bluetooth', 'vpn', 'gadget'];

export type Ipv4Method = 'dhcp' | 'manual' | 'off';
export type Ipv6Method = 'auto' | 'manual' | 'off';

export interface Ipv4Config {
  method: Ipv4Method;
  address?: string;
  netmask?: string;
  gateway?: string;
}

export interface Ipv6Config {
  method: Ipv6Method;
  address?: string;
  prefixLength?: number;
  gateway?: string;
  privacy?: 'disabled' | 'enabled' | 'preferred';
}

/** What the user (D-Bus, provisioning files) asked for; persisted. */
export interface ServiceSettings {
  autoConnect: boolean;
  favorite: boolean;
  ipv4: Ipv4Config;
  ipv6: Ipv6Config;
  nameservers: string[];
  domains: string[];
  timeservers: string[];
  /** user ranking from MoveBefore/MoveAfter; higher comes first; 0 = never moved */
  order: number;
  /** routing table of this service, stable across restarts */
  table: number;
  /** set by Disconnect(): no auto-connect until Connect() */
  userDisconnected: boolean;
  /** settings come from a provisioning file: SetProperty refused, Remove refused */
  immutable: boolean;
}

export interface DhcpLease {
  address: string;
  prefixLen: number;
  router?: string;
  dns: string[];
  domain?: string;
  searchDomains: string[];
  ntp: string[];
  mtu?: number;
  leaseSeconds: number;
  /** ms since epoch */
  expiresAt: number;
  serverId?: string;
}

export interface Ipv6Router {
  address: string;
  /** ms since epoch */
  expiresAt: number;
  preference: number;
}

export interface Ipv6Addr {
  address: string;
  prefixLen: number;
}

export type OnlineStatus = 'unknown' | 'online' | 'portal' | 'failed';

export interface OnlineCheck {
  status: OnlineStatus;
  portalUrl?: string;
  /** consecutive failures, drives the backoff */
  failures: number;
  /** ms since epoch of the next check; undefined = none planned */
  nextAt?: number;
  /** a check is running; its result comes back as an event */
  running: boolean;
}

export interface Service {
  id: string;
  type: TechnologyType;
  name: string;
  ifindex: number;
  ifname: string;
  mac: string;
  mtu: number;
  carrier: boolean;
  state: ServiceState;
  error?: string;
  settings: ServiceSettings;
  /** Connect() was called: connect even without AutoConnect (cleared by Disconnect and carrier loss) */
  connectRequested: boolean;
  /** sessions want it connected (Session.Connect), even without AutoConnect */
  sessionRequested: boolean;
  /** when the current connection attempt began (ms), to give up on DHCP */
  configuringSince?: number;
  lease?: DhcpLease;
  /** global SLAAC/static IPv6 addresses on the interface, as the kernel reports them */
  ipv6Addresses: Ipv6Addr[];
  routers: Ipv6Router[];
  /** DNS servers and search domains learnt from router advertisements */
  rdnss: string[];
  dnssl: string[];
  online: { ipv4: OnlineCheck; ipv6: OnlineCheck };
}

export interface Technology {
  type: TechnologyType;
  powered: boolean;
}

export interface EngineConfig {
  preferredTechnologies: TechnologyType[];
  /** interface name prefixes never managed */
  interfaceBlacklist: string[];
  /** if non-empty, only these interface names are managed */
  interfaceAllowlist: string[];
  onlineCheck: {
    enabled: boolean;
    ipv4Url: string;
    ipv6Url: string;
    /** ConnMan's OnlineCheckInitialInterval / OnlineCheckMaxInterval: retry after n² s, n from initial to max */
    initialInterval: number;
    maxInterval: number;
    /** seconds between checks of a service that is online */
    recheckInterval: number;
  };
  /** seconds without a DHCP lease (and without IPv6) before the service reports failure */
  dhcpFailureTimeout: number;
  /** routing tables handed to services, inclusive */
  tables: { min: number; max: number };
  /** services provisioned by configuration files (ConnMan's config format) */
  provisioning: ProvisionedService[];
}

/** A service described in a provisioning file: its settings win and cannot be changed over D-Bus. */
export interface ProvisionedService {
  /** section name, for logs */
  name: string;
  type: TechnologyType;
  /** lower-case MAC; absent = any service of the type */
  mac?: string;
  ipv4?: Ipv4Config;
  ipv6?: Ipv6Config;
  nameservers?: string[];
  domains?: string[];
  timeservers?: string[];
}

export interface EngineState {
  config: EngineConfig;
  offlineMode: boolean;
  technologies: Map<TechnologyType, Technology>;
  /** persisted Powered of technologies, applied when each appears */
  poweredAtStart: Partial<Record<TechnologyType, boolean>>;
  /** by service id */
  services: Map<string, Service>;
  /** settings of services not present right now (cable unplugged, device gone), by id */
  saved: Map<string, ServiceSettings>;
}
