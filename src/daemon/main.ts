// netsessiond entry point. For now (foundation issue) it starts, watches the kernel's
// routing state through the observed-state mirror, and stops cleanly on SIGTERM/SIGINT.
import { Command } from 'commander';
import { openKernelMirror } from '../kernel/kernel-mirror.ts';

const program = new Command('netsessiond')
  .description('netsession connection manager daemon')
  .option('--log-level <level>', 'error | warn | info | debug', 'info')
  .parse();

const opts = program.opts<{ logLevel: string }>();
const log = (msg: string): void => {
  process.stderr.write(`netsessiond: ${msg}\n`);
};

const mirror = await openKernelMirror();
await mirror.ready;
const s = mirror.state.counts();
log(`started: ${s.links} links, ${s.addresses} addresses, ${s.routes} routes, ${s.rules} rules observed (log level ${opts.logLevel})`);

const stop = (signal: string): void => {
  log(`${signal}: stopping`);
  mirror.close();
  process.exitCode = 0;
};
process.once('SIGTERM', () => stop('SIGTERM'));
process.once('SIGINT', () => stop('SIGINT'));
