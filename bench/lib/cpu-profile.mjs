// Preload for a daemon under benchmark (NODE_OPTIONS="--import …/cpu-profile.mjs"): samples
// the process's CPU from start to exit and writes <BENCH_CPU_PROFILE_DIR>/<name>-<pid>.cpuprofile
// (open it in Chrome DevTools or speedscope). `node --cpu-prof` would do the same, but it is
// not allowed in NODE_OPTIONS, and the lab starts the daemon with a fixed node command line.
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

const dir = process.env.BENCH_CPU_PROFILE_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 200 });
  session.post('Profiler.start');
  // a same-thread inspector session answers synchronously: this works in an exit handler
  process.on('exit', () => {
    session.post('Profiler.stop', (err, res) => {
      if (err || !res) return;
      mkdirSync(dir, { recursive: true });
      writeFileSync(`${dir}/${process.env.BENCH_CPU_PROFILE_NAME ?? 'node'}-${process.pid}.cpuprofile`, JSON.stringify(res.profile));
    });
  });
}
