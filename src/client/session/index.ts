// Sessions for applications (ConnMan's Session API, netsessiond's SessionMarker): create one,
// follow its Updates, and send traffic through it.
//
//   const s = await Session.create({ AllowedBearers: ['wifi', 'ethernet'], ConnectionType: 'internet' });
//   s.on('update', (changed, settings) => …);        // every Update: what changed, the merged view
//   s.on('released', () => …);                        // the daemon ended it (e.g. it stops)
//   await s.waitForState('online');
//   const sock = await s.connectTcp({ host: '198.18.0.1', port: 7 });   // a net.Socket
//   const res = await s.fetch('http://198.18.0.1/whoami');              // a Response
//   await s.change('ConnectionType', 'any'); await s.connect(); await s.destroy();
//
// What to know:
// - Each session exports its own net.connman.Notification object (a unique notifier path),
//   answers only the daemon's calls, and replies only when a reply is expected (netsessiond
//   sends Update with NO_REPLY_EXPECTED, ConnMan expects replies).
// - To learn its SessionMarker the library sets one of seed 001's keys at creation:
//   `AvoidHandover: false` (the default value, so nothing changes) unless the settings set one
//   of them already. netsessiond then reports seed 001's keys and SessionMarker in the Updates.
//   `extended: false` leaves it out (ConnMan refuses those keys; no marker then).
// - connectTcp/request/fetch set SO_MARK = SessionMarker on the socket before connect():
//   the kernel routes it through the session's service, with that service's source address.
//   This needs CAP_NET_ADMIN (or CAP_NET_RAW on Linux ≥ 5.17). A session without a usable
//   service is not refused by the library: its traffic fails closed in the kernel
//   (ENETUNREACH). An ended session is refused (its marker is given to another session later).
//   Host names are resolved by the system resolver, not through the session.
// - bindAddress() gives the service's address for the bind-before-connect style (SourceIPRule).
// - `netns` (a name under /run/netns) creates the sockets in another network namespace (labs, tests).
export { listSessions, type ListSessionsOptions, parseSessionPath, SessionListUnsupportedError, type SessionListEntry } from './list.ts';
export type { SessionFetchInit, SessionRequestOptions, TcpTarget } from './net.ts';
export { NOTIFICATION_IFACE, Session, type SessionEndReason, type SessionEvents, type SessionOptions } from './session.ts';
export {
  CONNMAN_CONFIG_KEYS,
  EXTENDED_CONFIG_KEYS,
  orderedKeys,
  parseSessionUpdate,
  SESSION_BEARERS,
  SESSION_CONFIG_SIGNATURES,
  SESSION_CONNECTION_TYPES,
  SESSION_KEY_ORDER,
  SESSION_ROAMING_POLICIES,
  SESSION_STATES,
  type SessionBearer,
  type SessionConfig,
  type SessionConfigKey,
  sessionConfigDict,
  sessionConfigVariant,
  type SessionConnectionType,
  type SessionRoamingPolicy,
  type SessionSettings,
  type SessionState,
} from './types.ts';
