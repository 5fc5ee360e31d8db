// netsession's client library: what applications import to talk to netsessiond (or ConnMan).
// The connection-manager API lives in connman/; sessions (and traffic through them) in session/.
export { BusConnection, busAddressProblem, DEFAULT_SYSTEM_BUS_ADDRESS, systemBusAddress } from './bus.ts';
export * from './connman/index.ts';
export { ClientUsageError, DaemonError, DaemonUnavailableError, errorWords, type UnavailableReason } from './errors.ts';
export { type DbusVariant, jsonReplacer, unwrap, variant } from './variant.ts';
export * from './session/index.ts';
