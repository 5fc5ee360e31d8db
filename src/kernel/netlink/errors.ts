// Typed errors for netlink requests: they carry the errno number and its name, and the
// kernel's extended-ack message when it sent one.
import { constants } from 'node:os';

const errnoNames = new Map<number, string>();
for (const [name, num] of Object.entries(constants.errno)) {
  if (!errnoNames.has(num)) errnoNames.set(num, name);
}

export function errnoName(errno: number): string {
  return errnoNames.get(Math.abs(errno)) ?? `E${Math.abs(errno)}`;
}

export class NetlinkError extends Error {
  readonly errno: number;
  readonly code: string;
  readonly extack: string | undefined;

  constructor(errno: number, what: string, extack?: string) {
    const code = errnoName(errno);
    super(`${what}: ${code}${extack ? ` (${extack})` : ''}`);
    this.name = 'NetlinkError';
    this.errno = Math.abs(errno);
    this.code = code;
    this.extack = extack;
  }
}

export const ENOENT = constants.errno.ENOENT;
export const ESRCH = constants.errno.ESRCH;
export const EEXIST = constants.errno.EEXIST;
export const EAGAIN = constants.errno.EAGAIN;
export const EINTR = constants.errno.EINTR;
export const ENOBUFS = constants.errno.ENOBUFS;
export const EBUSY = constants.errno.EBUSY;
export const ENODEV = constants.errno.ENODEV;
