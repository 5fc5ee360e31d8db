// netsessiond: the connection manager daemon.
import { Command, InvalidArgumentError } from 'commander';
import { type LogLevel, createLogger, parseLevel } from './log.ts';
import { Netsessiond } from './netsessiond.ts';

const level = (v: string): LogLevel => {
  const l = parseLevel(v);
  if (!l) throw new InvalidArgumentError('one of error, warn, info, debug');
  return l;
};
const names = (v: string): string[] => v.split(',').map((x) => x.trim()).filter(Boolean);

const program = new Command('netsessiond')
  .description('netsession connection manager daemon (ConnMan-compatible D-Bus API)')
  .option('-c, --config <file>', 'configuration file (ConnMan main.conf keys, plus [netsession])')
  .option('--state-dir <dir>', 'where settings are kept', '/var/lib/netsession')
  .option('--bus <address>', 'D-Bus address (default: the system bus)')
  .option('--bus-name <name>', 'bus name to own', 'net.connman')
  .option('--allow <ifnames>', 'manage only these interfaces (comma-separated)', names)
  .option('--deny <prefixes>', 'never manage interfaces starting with these (comma-separated)', names)
  .option('--log-level <level>', 'error, warn, info or debug', level, 'info' as LogLevel)
  .option('--no-warm-up', 'do not run the CreateSession paths on throwaway inputs once started (the first calls are then slower)')
  .showHelpAfterError()
  .parse();

const o = program.opts<{ config?: string; stateDir: string; bus?: string; busName: string; allow?: string[]; deny?: string[]; logLevel: LogLevel; warmUp: boolean }>();
const log = createLogger(o.logLevel);

let daemon: Netsessiond;
try {
  daemon = await Netsessiond.start({
    ...(o.config ? { configPath: o.config } : {}),
    stateDir: o.stateDir,
    ...(o.bus ? { busAddress: o.bus } : {}),
    busName: o.busName,
    log,
    warmUp: o.warmUp,
    ...(o.allow ? { allow: o.allow } : {}),
    ...(o.deny ? { deny: o.deny } : {}),
    onBusLost: (e) => {
      // no clean stop: the addresses and routes stay for the next run (a supervisor starts it
      // again, on the new bus), as after a crash; the sessions ended with their owners' bus
      log.error(`lost the D-Bus connection (${e.message}): exiting; the next start goes on with this run's leases and routes`);
      process.exit(1);
    },
  });
} catch (e) {
  log.error(`cannot start: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
}

let stopping = false;
const stop = (signal: string): void => {
  if (stopping) return;
  stopping = true;
  log.info(`${signal}: stopping`);
  const force = setTimeout(() => {
    log.error('clean stop took over 5 s: exiting anyway');
    process.exit(1);
  }, 5000);
  force.unref();
  daemon.stop().then(
    () => process.exit(0),
    (e: unknown) => {
      log.error(`stop failed: ${e instanceof Error ? e.message : String(e)}`);
      process.exit(1);
    },
  );
};
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
process.on('uncaughtException', (e) => {
  // a bug, never input: log it loudly, clean up what we can, and exit for the supervisor to restart us
  log.error(`uncaught exception: ${e.stack ?? e.message}`);
  stop('uncaught exception');
});
