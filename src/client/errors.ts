// Errors of the client library. Two kinds matter to a caller: the daemon answered with a
// D-Bus error (DaemonError: keeps the D-Bus name, e.g. net.connman.Error.NotConnected), or
// there is nobody to answer (DaemonUnavailableError: no bus, nobody owns the name, the
// daemon or the bus went away, no reply in time).

/** The daemon answered a call with a D-Bus error. */
export class DaemonError extends Error {
  /** the full D-Bus error name, e.g. net.connman.Error.NotConnected */
  readonly dbusName: string;
  /** the text the daemon sent with it (may be empty) */
  readonly detail: string;
  /** what was called: interface.member at path */
  readonly call: { path: string; interface: string; member: string };

  constructor(dbusName: string, detail: string, call: { path: string; interface: string; member: string }) {
    super(detail ? `${errorWords(dbusName)}: ${detail} (${dbusName})` : `${errorWords(dbusName)} (${dbusName})`);
    this.name = 'DaemonError';
    this.dbusName = dbusName;
    this.detail = detail;
    this.call = call;
  }

  /** The last part of the name: NotConnected, InvalidArguments, … */
  get shortName(): string {
    return this.dbusName.slice(this.dbusName.lastIndexOf('.') + 1);
  }
}

export type UnavailableReason =
  /** the bus address is unusable or the bus does not answer */
  | 'no-bus'
  /** the bus is there, the daemon's name has no owner */
  | 'no-daemon'
  /** the daemon left the bus while a call was pending */
  | 'daemon-lost'
  /** the connection to the bus broke */
  | 'bus-lost'
  /** no reply within the call's time limit */
  | 'timeout'
  /** close() was called */
  | 'closed';

/** Nobody to talk to: the CLI turns this into exit code 3. */
export class DaemonUnavailableError extends Error {
  readonly reason: UnavailableReason;
  readonly busAddress: string;
  /** the underlying D-Bus error name, when the bus sent one (ServiceUnknown, NoReply, …) */
  readonly dbusName: string | undefined;

  constructor(reason: UnavailableReason, busAddress: string, message: string, dbusName?: string) {
    super(message);
    this.name = 'DaemonUnavailableError';
    this.reason = reason;
    this.busAddress = busAddress;
    this.dbusName = dbusName;
  }
}

/** Bad input to a library call, found before anything was sent. */
export class ClientUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ClientUsageError';
  }
}

/**
 * A D-Bus error name in words: net.connman.Error.NotConnected → "not connected",
 * org.freedesktop.DBus.Error.UnknownObject → "unknown object".
 */
export function errorWords(dbusName: string): string {
  const last = dbusName.slice(dbusName.lastIndexOf('.') + 1);
  const words = last
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
    .toLowerCase()
    .trim();
  return words || dbusName;
}

/** D-Bus errors that mean "nobody answered", not "the daemon said no". */
const UNAVAILABLE_NAMES: Record<string, UnavailableReason> = {
  'org.freedesktop.DBus.Error.ServiceUnknown': 'no-daemon',
  'org.freedesktop.DBus.Error.NameHasNoOwner': 'no-daemon',
  'org.freedesktop.DBus.Error.NoReply': 'daemon-lost',
  'org.freedesktop.DBus.Error.Disconnected': 'bus-lost',
  'org.freedesktop.DBus.Error.Timeout': 'timeout',
  'org.freedesktop.DBus.Error.TimedOut': 'timeout',
};

export function unavailableReasonOf(dbusName: string): UnavailableReason | undefined {
  return UNAVAILABLE_NAMES[dbusName];
}
