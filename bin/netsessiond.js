#!/usr/bin/env -S UV_THREADPOOL_SIZE=16 node
// netlink sockets wait in blocking recv() on libuv's thread pool: give it room (see src/kernel/netlink/socket.ts).
// The daemon runs from the compiled build (`npm run build`, dist/) when that is newer than every
// source file: loading TypeScript through tsx costs most of a second at each start and tens of
// MB for good. A missing or stale build falls back to tsx, so a stale daemon never runs.
import { readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

function newestSource(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

function freshBuild() {
  try {
    return statSync(`${root}dist/.built`).mtimeMs >= newestSource(`${root}src`);
  } catch {
    return false;
  }
}

if (freshBuild()) await import('../dist/src/daemon/main.js');
else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/daemon/main.ts');
}
