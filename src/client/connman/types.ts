// The property dictionaries of net.connman.Manager, Technology and Service as a client sees
// them: variants unwrapped, the fields ConnMan documents typed (doc/*-api.txt), and any key
// a daemon adds kept as an unwrapped value (a newer daemon must not break an older client).

export type ManagerState = 'offline' | 'idle' | 'ready' | 'online';

export type ServiceState = 'idle' | 'failure' | 'association' | 'configuration' | 'ready' | 'disconnect' | 'online';

export const SERVICE_STATES: readonly ServiceState[] = ['idle', 'failure', 'association', 'configuration', 'ready', 'disconnect', 'online'];

/** Unknown keys of a dictionary: kept, unwrapped. */
export type Extra = { [key: string]: unknown };

export interface ManagerProperties extends Extra {
  State: ManagerState;
  OfflineMode: boolean;
  SessionMode: boolean;
}

export interface TechnologyProperties extends Extra {
  Name: string;
  Type: string;
  Powered: boolean;
  Connected: boolean;
  Tethering: boolean;
  TetheringIdentifier?: string;
  TetheringPassphrase?: string;
  TetheringFreq?: number;
}

export interface EthernetInfo extends Extra {
  Method?: string;
  Interface?: string;
  Address?: string;
  MTU?: number;
}

export type IPv4Method = 'dhcp' | 'manual' | 'off' | 'fixed' | 'auto';
export type IPv6Method = 'auto' | 'manual' | 'off' | '6to4' | 'fixed';
export type IPv6Privacy = 'disabled' | 'enabled' | 'preferred';

/** IPv4 and IPv4.Configuration: the same keys; the first is what is in use. */
export interface IPv4Info extends Extra {
  Method?: IPv4Method;
  Address?: string;
  Netmask?: string;
  Gateway?: string;
}

export interface IPv6Info extends Extra {
  Method?: IPv6Method;
  Address?: string;
  PrefixLength?: number;
  Gateway?: string;
  Privacy?: IPv6Privacy;
}

export interface ProxyInfo extends Extra {
  Method?: 'direct' | 'auto' | 'manual';
  URL?: string;
  Servers?: string[];
  Excludes?: string[];
}

export interface ProviderInfo extends Extra {
  Host?: string;
  Domain?: string;
  Name?: string;
  Type?: string;
}

export interface ServiceProperties extends Extra {
  Type: string;
  Security: string[];
  State: ServiceState;
  Error?: string;
  Strength?: number;
  Favorite: boolean;
  Immutable: boolean;
  AutoConnect: boolean;
  Roaming?: boolean;
  /** ConnMan leaves it out for hidden wifi networks: '' then */
  Name: string;
  Ethernet: EthernetInfo;
  IPv4: IPv4Info;
  'IPv4.Configuration': IPv4Info;
  IPv6: IPv6Info;
  'IPv6.Configuration': IPv6Info;
  Nameservers: string[];
  'Nameservers.Configuration': string[];
  Timeservers: string[];
  'Timeservers.Configuration': string[];
  Domains: string[];
  'Domains.Configuration': string[];
  Proxy: ProxyInfo;
  'Proxy.Configuration': ProxyInfo;
  mDNS?: boolean;
  'mDNS.Configuration'?: boolean;
  Provider?: ProviderInfo;
  /** netsession: where a captive portal wants the user to log in */
  CaptivePortal?: string;
}

export interface ServiceEntry {
  /** the last element of the object path, e.g. ethernet_0123456789ab_cable */
  id: string;
  path: string;
  properties: ServiceProperties;
}

export interface TechnologyEntry {
  /** the technology type, the last element of the object path, e.g. ethernet */
  type: string;
  path: string;
  properties: TechnologyProperties;
}

// ---- writes ---------------------------------------------------------------------------

export type IPv4ConfigInput =
  | { Method: 'dhcp' | 'off' | 'auto' }
  | { Method: 'manual'; Address: string; Netmask: string; Gateway?: string };

export type IPv6ConfigInput =
  | { Method: 'auto'; Privacy?: IPv6Privacy }
  | { Method: 'off' }
  | { Method: 'manual'; Address: string; PrefixLength: number; Gateway?: string };

export type ProxyConfigInput =
  | { Method: 'direct' }
  | { Method: 'auto'; URL?: string }
  | { Method: 'manual'; Servers: string[]; Excludes?: string[] };

/** The writable service properties and the values they take. */
export interface ServiceSettings {
  AutoConnect: boolean;
  'IPv4.Configuration': IPv4ConfigInput;
  'IPv6.Configuration': IPv6ConfigInput;
  'Nameservers.Configuration': string[];
  'Timeservers.Configuration': string[];
  'Domains.Configuration': string[];
  'Proxy.Configuration': ProxyConfigInput;
  'mDNS.Configuration': boolean;
}

export interface ManagerSettings {
  OfflineMode: boolean;
  SessionMode: boolean;
}

export interface TechnologySettings {
  Powered: boolean;
  Tethering: boolean;
  TetheringIdentifier: string;
  TetheringPassphrase: string;
  TetheringFreq: number;
}

// ---- events ---------------------------------------------------------------------------

/** One signal of the daemon (or of the bus about it), decoded. */
export type ConnmanEvent =
  | { kind: 'property-changed'; object: 'manager'; path: '/'; name: string; value: unknown }
  | { kind: 'property-changed'; object: 'technology'; path: string; type: string; name: string; value: unknown }
  | { kind: 'property-changed'; object: 'service'; path: string; id: string; name: string; value: unknown }
  | {
      kind: 'services-changed';
      /** every service, in the new order; `properties` only for services that are new (or changed a lot) */
      changed: { id: string; path: string; properties?: Partial<ServiceProperties> }[];
      removed: { id: string; path: string }[];
    }
  | { kind: 'technology-added'; path: string; type: string; properties: TechnologyProperties }
  | { kind: 'technology-removed'; path: string; type: string }
  /** net.connman got an owner (the daemon started) or lost it (it stopped or crashed) */
  | { kind: 'daemon'; present: boolean; owner: string }
  /** the connection to the bus itself is gone: no more events */
  | { kind: 'bus-lost'; message: string };
