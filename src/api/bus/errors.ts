// D-Bus errors the API returns: ConnMan's names (net.connman.Error.*).
export type ConnmanErrorName =
  | 'InvalidArguments'
  | 'InvalidProperty'
  | 'InvalidService'
  | 'NoCarrier'
  | 'NotSupported'
  | 'NotConnected'
  | 'AlreadyConnected'
  | 'InProgress'
  | 'NotFound'
  | 'PermissionDenied'
  | 'AlreadyDisabled'
  | 'AlreadyEnabled'
  | 'AlreadyExists'
  | 'NotRegistered'
  | 'NotUnique'
  | 'OperationAborted'
  | 'OperationTimeout'
  | 'Failed';

export class ApiError extends Error {
  readonly dbusName: string;
  constructor(name: ConnmanErrorName, message: string) {
    super(message);
    this.name = 'ApiError';
    this.dbusName = `net.connman.Error.${name}`;
  }
}
