// Entering a network namespace for the creation of a socket.
import { closeSync, openSync } from 'node:fs';
import { errno, libc } from './libc.ts';

const CLONE_NEWNET = 0x40000000;

/**
 * Runs `fn` with the calling thread in network namespace `netns` (a name under
 * /run/netns), then returns to the original one. Sockets created inside stay bound to
 * that namespace for their whole life, which is how tests and the lab reach a namespace
 * without running in it. Synchronous on purpose: nothing else can run in between.
 */
export function inNetns<T>(netns: string | undefined, fn: () => T): T {
  if (!netns) return fn();
  const self = openSync('/proc/thread-self/ns/net', 'r');
  let target: number | undefined;
  try {
    target = openSync(`/run/netns/${netns}`, 'r');
    if (libc.setns(target, CLONE_NEWNET) !== 0) throw new Error(`setns(${netns}): errno ${errno()}`);
    try {
      return fn();
    } finally {
      if (libc.setns(self, CLONE_NEWNET) !== 0) {
        // staying in the wrong namespace would make every later socket lie about where it is
        process.stderr.write('netsession: FATAL: cannot return to the original network namespace\n');
        process.abort();
      }
    }
  } finally {
    if (target !== undefined) closeSync(target);
    closeSync(self);
  }
}
