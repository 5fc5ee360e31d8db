#!/usr/bin/env -S UV_THREADPOOL_SIZE=16 node
// netlink sockets wait in blocking recv() on libuv's thread pool: give it room (see src/kernel/netlink/socket.ts).
import { register } from 'tsx/esm/api';

register();
await import('../src/daemon/main.ts');
