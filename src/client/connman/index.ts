// The connection-manager side of the client library (net.connman Manager/Technology/Service).
export * from './client.ts';
export { isServiceState } from './properties.ts';
export * from './types.ts';
