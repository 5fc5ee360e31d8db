// Compiles src/ to dist/ (tsconfig.build.json) and stamps the build: bin/netsessiond.js runs
// dist/ only while the stamp is newer than every source file.
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';

// the stamp carries the time the sources were read: a file saved during the build makes it stale
const started = new Date();
rmSync('dist', { recursive: true, force: true });
const r = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);
mkdirSync('dist', { recursive: true });
writeFileSync('dist/.built', `${started.toISOString()}\n`);
utimesSync('dist/.built', started, started);
