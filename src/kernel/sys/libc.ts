// libc through koffi: the few system calls Node does not offer (netlink and raw sockets,
// socket options, setns, fcntl). One binding per function for the whole process.
import koffi from 'koffi';

const lib = koffi.load('libc.so.6');

export const libc = {
  socket: lib.func('int socket(int, int, int)'),
  bind: lib.func('int bind(int, const void *, uint32_t)'),
  connect: lib.func('int connect(int, const void *, uint32_t)'),
  getsockname: lib.func('int getsockname(int, _Out_ void *, _Inout_ uint32_t *)'),
  send: lib.func('intptr_t send(int, const void *, size_t, int)'),
  sendto: lib.func('intptr_t sendto(int, const void *, size_t, int, const void *, uint32_t)'),
  recv: lib.func('intptr_t recv(int, _Out_ void *, size_t, int)'),
  recvfrom: lib.func('intptr_t recvfrom(int, _Out_ void *, size_t, int, _Out_ void *, _Inout_ uint32_t *)'),
  setsockopt: lib.func('int setsockopt(int, int, int, const void *, uint32_t)'),
  getsockopt: lib.func('int getsockopt(int, int, int, _Out_ void *, _Inout_ uint32_t *)'),
  poll: lib.func('int poll(_Inout_ void *, uint64_t, int)'),
  eventfd: lib.func('int eventfd(uint32_t, int)'),
  fcntl: lib.func('int fcntl(int, int, int)'),
  write: lib.func('intptr_t write(int, const void *, size_t)'),
  close: lib.func('int close(int)'),
  setns: lib.func('int setns(int, int)'),
};

/** errno of the last libc call on this thread. */
export const errno = (): number => koffi.errno();

export const SOL_SOCKET = 1;
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_RAW = 3;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const MSG_DONTWAIT = 0x40;
export const SO_REUSEADDR = 2;
export const SO_BROADCAST = 6;
export const SO_SNDBUFFORCE = 32;
export const SO_RCVBUFFORCE = 33;
export const SO_BINDTODEVICE = 25;
export const SO_MARK = 36;

export const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};
