// Sessions: what an application asked for, what the policy allows, and what it gets.
// Plain data, like ./types.ts.

export type Bearer = 'ethernet' | 'wifi' | 'bluetooth' | 'cellular' | 'gadget' | 'vpn';
export const BEARERS: readonly Bearer[] = ['ethernet', 'wifi', 'bluetooth', 'cellular', 'gadget', 'vpn'];
/** an AllowedBearers entry: a bearer, or `*` for any bearer (at that place in the preference order) */
export type BearerEntry = Bearer | '*';

export type ConnectionType = 'any' | 'local' | 'internet';
export type SessionState = 'disconnected' | 'connected' | 'online';
export type RoamingPolicy = 'default' | 'always' | 'forbidden' | 'national' | 'international';
export const ROAMING_POLICIES: readonly RoamingPolicy[] = ['default', 'always', 'forbidden', 'national', 'international'];

/** The settings an application chose (CreateSession, Change). */
export interface SessionRequest {
  /** in the application's order of preference; undefined = `["*"]` */
  allowedBearers: BearerEntry[] | undefined;
  connectionType: ConnectionType;
  /** undefined = any interface */
  allowedInterface: string | undefined;
  sourceIpRule: boolean;
  contextIdentifier: string;
  // seed 001 settings
  priority: boolean;
  avoidHandover: boolean;
  stayConnected: boolean;
  /** minutes; 0 = off */
  periodicConnect: number;
  /** seconds; 0 = off */
  idleTimeout: number;
  emergencyCall: boolean;
  roamingPolicy: RoamingPolicy;
  /** the application set one of seed 001's keys: they are reported to it */
  extended: boolean;
}

/** Who the application is, from the bus's credentials (never from its words). */
export interface Identity {
  uid: number;
  /** primary and supplementary groups */
  gids: number[];
  pid?: number;
  /** cgroup v2 path of the process, e.g. /system.slice/app.service */
  cgroup?: string;
  /** SELinux label (full context) when the bus reports one */
  selinux?: string;
}

/** One group of a policy file (ConnMan's session_policy_local format, plus ours). */
export interface PolicyGroup {
  file: string;
  name: string;
  match: {
    uid?: number;
    gid?: number;
    /** SELinux type (the third field of the context) */
    selinux?: string;
    /** cgroup v2 path: matches that cgroup and everything below it */
    cgroup?: string;
    contextIdentifier?: string;
  };
  /** the bearers this identity may use; narrows the application's list */
  allowedBearers?: BearerEntry[];
  connectionType?: ConnectionType;
  priority?: boolean;
  emergencyCall?: boolean;
  roamingPolicy?: RoamingPolicy;
  allowedInterface?: string;
}

export interface Session {
  /** D-Bus object path, ConnMan's scheme: /sessions/<owner with : and . as _><notifier> */
  path: string;
  /** unique bus name of the owner */
  owner: string;
  notifier: string;
  /**
   * who the owner is, from the bus; undefined until the bus has answered, which a session
   * waits for only while some policy group matches on identity (SessionHost.needsIdentity)
   */
  identity: Identity | undefined;
  request: SessionRequest;
  policy: PolicyGroup | undefined;
  /** SessionMarker: the mark a socket sets (SO_MARK) to use this session; also keys its rules */
  marker: number;
  /** Connect() was called (and not Disconnect()) */
  active: boolean;
  /** Disconnect() was called: no service until the next Connect() (ConnMan) */
  detached: boolean;
  /** IdleTimeout passed without traffic: it asks for no connection until Connect() or a periodic attempt */
  idle: boolean;
  /** a PeriodicConnect attempt asks for a connection for it (it did not call Connect()) */
  woken: boolean;
  /** when it last began to ask for a connection (creation, Connect(), a periodic attempt): idle time counts from here at the earliest */
  demandSince: number;
  /** the service it uses, if any */
  serviceId: string | undefined;
  /**
   * the service whose rules route its marker: its service, or while it has none, the last one
   * it had as long as that one still fits its settings (that service's rules fail closed while
   * it is unusable), so a lost uplink changes that service's rules rather than every session's
   */
  routeVia: string | undefined;
  /** ms since epoch of creation; the newest session of an identity routes that identity */
  createdAt: number;
}

export interface SessionsState {
  sessions: Map<string, Session>;
  policies: PolicyGroup[];
  /** next SessionMarker to hand out (never reused while the daemon runs) */
  nextMarker: number;
}
