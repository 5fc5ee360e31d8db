// `netsessionctl session create | list`: sessions from the command line. `create` stays
// attached (a session lives as long as its owner's bus connection): it prints every Update
// (connmanctl's block, or one JSON object per line with --json), reads connect, disconnect,
// change KEY VALUE… and quit on stdin, and on SIGINT/SIGTERM/quit destroys the session and
// exits 0. Exit codes: 2 bad input (nothing sent), 1 the daemon said no (or released the
// session), 3 the daemon or the bus cannot be reached (or went away).
import { createInterface } from 'node:readline';
import { type Command, CommanderError, Option } from 'commander';
import type { Session, SessionConfig, SessionEndReason, SessionSettings } from '../client/index.ts';
import { UsageError } from './connman-args.ts';
import { Failure } from './failure.ts';

const EXIT_DAEMON = 1;
const EXIT_USAGE = 2;
const EXIT_UNREACHABLE = 3;

interface CommonOpts {
  json?: boolean;
  bus?: string;
}

interface CreateOpts extends CommonOpts {
  bearers?: string[] | true;
  type?: string;
  ifname?: string;
  srciprule?: string | true;
  ctxid?: string;
  connect?: boolean;
  plain?: boolean;
}


// the client library (dbus-next, koffi) and the argument helpers load only when a session command runs
type ClientModule = typeof import('../client/index.ts');
type ArgsModule = typeof import('./session-args.ts');
let clientModule: ClientModule | undefined;
let argsModule: ArgsModule | undefined;
async function lib(): Promise<ClientModule> {
  clientModule ??= await import('../client/index.ts');
  return clientModule;
}
async function argsLib(): Promise<ArgsModule> {
  argsModule ??= await import('./session-args.ts');
  return argsModule;
}

const out = (text: string): void => {
  process.stdout.write(`${text}\n`);
};

function jsonLine(v: unknown): void {
  process.stdout.write(`${JSON.stringify(v, clientModule?.jsonReplacer)}\n`);
}

async function toFailure(err: unknown): Promise<Failure> {
  if (err instanceof Failure) return err;
  const m = await lib();
  if (err instanceof UsageError || err instanceof m.ClientUsageError) return new Failure(EXIT_USAGE, err.message);
  if (err instanceof m.DaemonUnavailableError) {
    const prefix = err.reason === 'no-daemon' || err.reason === 'no-bus' ? 'netsessiond is not reachable' : 'lost netsessiond';
    return new Failure(EXIT_UNREACHABLE, `${prefix}: ${err.message}`, err.dbusName);
  }
  if (err instanceof m.DaemonError) {
    const words = m.errorWords(err.dbusName);
    const redundant = err.detail === '' || err.detail.toLowerCase().includes(words);
    return new Failure(EXIT_DAEMON, redundant ? `${words} (${err.dbusName})` : `${words}: ${err.detail} (${err.dbusName})`, err.dbusName);
  }
  if (err instanceof m.SessionListUnsupportedError) return new Failure(EXIT_DAEMON, `not supported by this daemon yet: ${err.message}`);
  return new Failure(EXIT_DAEMON, err instanceof Error ? err.message : String(err));
}

/** Prints a failure (stderr; and a JSON line with --json) and hands its exit code to main. */
async function fail(what: string, opts: CommonOpts, err: unknown): Promise<never> {
  const f = await toFailure(err);
  process.stderr.write(`netsessionctl: ${what}: ${f.message}\n`);
  if (opts.json) jsonLine({ event: 'error', error: { message: f.message, ...(f.dbusName ? { dbusName: f.dbusName } : {}), exitCode: f.exitCode } });
  throw new CommanderError(f.exitCode, 'netsession.session', f.message);
}

function usageExit(err: CommanderError): never {
  if (err.exitCode !== 0 && !err.code.startsWith('netsession.')) throw new CommanderError(EXIT_USAGE, err.code, err.message);
  throw err;
}

/** What an ended session means for the exit code. */
function endFailure(reason: SessionEndReason, path: string): Failure | undefined {
  switch (reason) {
    case 'released':
      return new Failure(EXIT_DAEMON, `the daemon ended session ${path} (Release)`);
    case 'daemon-lost':
      return new Failure(EXIT_UNREACHABLE, `lost netsessiond: it left the bus (session ${path})`);
    case 'bus-lost':
      return new Failure(EXIT_UNREACHABLE, `lost the bus (session ${path})`);
    default:
      return undefined;
  }
}

async function attached(program: Command, opts: CreateOpts): Promise<void> {
  const a = await argsLib();
  let config: SessionConfig;
  try {
    config = a.createConfig(opts);
  } catch (err) {
    return fail('session create', opts, err);
  }
  const m = await lib();
  const bus = opts.bus ?? (program.opts() as CommonOpts).bus;
  let session: Session;
  try {
    session = await m.Session.create(config, { ...(bus ? { bus } : {}), extended: opts.plain !== true });
  } catch (err) {
    return fail('session create', opts, err);
  }
  const s = session;
  const path = s.path;
  let connected = false;
  const show = (changed: Partial<SessionSettings>, settings: SessionSettings): void => {
    if (opts.json) {
      jsonLine({ time: new Date().toISOString(), event: 'update', path, changed, settings });
    } else {
      out(a.updateBlock(changed));
    }
    if (changed.State !== undefined) {
      const t = a.transitionLine(path, connected, changed.State);
      if (t) {
        connected = t.connected;
        if (!opts.json) out(t.line);
      }
    }
  };
  if (opts.json) jsonLine({ time: new Date().toISOString(), event: 'created', path, notifier: s.notifierPath, owner: s.owner });
  else out(`Session ${path} created`);
  // the first Update (complete) arrived before create() resolved; later ones are events
  show(s.settings, s.settings);
  s.on('update', show);

  let finish: ((how: { reason: 'signal' | 'quit' } | { reason: 'ended'; ended: SessionEndReason }) => void) | undefined;
  const done = new Promise<{ reason: 'signal' | 'quit' } | { reason: 'ended'; ended: SessionEndReason }>((r) => {
    finish = r;
  });
  s.on('closed', (reason) => finish?.({ reason: 'ended', ended: reason }));
  const onSignal = (): void => finish?.({ reason: 'signal' });
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  // a reader that went away (create | head) ends the session quietly
  process.stdout.on('error', onSignal);

  const reply = (command: string, err?: unknown): void => {
    if (err === undefined) {
      if (opts.json) jsonLine({ time: new Date().toISOString(), event: 'reply', command, ok: true });
      return;
    }
    void toFailure(err).then((f) => {
      process.stderr.write(`Error ${command}: ${f.message}\n`);
      if (opts.json) jsonLine({ time: new Date().toISOString(), event: 'reply', command, ok: false, error: { message: f.message, ...(f.dbusName ? { dbusName: f.dbusName } : {}) } });
    });
  };
  const run = async (command: string, f: () => Promise<void>): Promise<void> => {
    try {
      await f();
      reply(command);
    } catch (err) {
      reply(command, err);
    }
  };

  if (opts.connect) await run('connect', () => s.connect());

  // commands on stdin, one per line, run in order
  const rl = createInterface({ input: process.stdin, terminal: false });
  let queue = Promise.resolve();
  rl.on('line', (line) => {
    queue = queue.then(async () => {
      if (s.ended !== undefined) return;
      let cmd: ReturnType<ArgsModule['parseStdinCommand']>;
      try {
        cmd = a.parseStdinCommand(line);
      } catch (err) {
        reply(line.trim().split(/\s+/)[0] ?? '', err);
        return;
      }
      switch (cmd.kind) {
        case 'empty':
          return;
        case 'help':
          process.stderr.write(`${a.STDIN_HELP}\n`);
          return;
        case 'quit':
          finish?.({ reason: 'quit' });
          return;
        case 'connect':
          return run('connect', () => s.connect());
        case 'disconnect':
          return run('disconnect', () => s.disconnect());
        case 'change':
          return run(`change ${cmd.key}`, () => s.change(cmd.key, cmd.value));
      }
    });
  });
  process.stdin.on('error', () => {});

  const how = await done;
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  rl.close();
  process.stdin.destroy();
  await queue.catch(() => {});
  if (how.reason === 'ended') {
    if (how.ended === 'released') {
      if (opts.json) jsonLine({ time: new Date().toISOString(), event: 'released', path });
      else out(`Session ${path} released`);
    }
    const f = endFailure(how.ended, path);
    if (f) return fail('session', opts, f);
    return;
  }
  try {
    await s.destroy();
  } catch (err) {
    return fail('session destroy', opts, err);
  }
  if (opts.json) jsonLine({ time: new Date().toISOString(), event: 'ended', path });
  else out(`Session ${path} ended`);
}

async function list(program: Command, opts: CommonOpts): Promise<void> {
  const m = await lib();
  const bus = opts.bus ?? (program.opts() as CommonOpts).bus;
  let entries: Awaited<ReturnType<ClientModule['listSessions']>>;
  try {
    entries = await m.listSessions(bus ? { bus } : {});
  } catch (err) {
    return fail('session list', opts, err);
  }
  if (opts.json) {
    jsonLine(entries);
    return;
  }
  for (const e of entries) {
    const who = [`owner ${e.owner}`, e.pid !== undefined ? `pid ${e.pid}` : undefined, e.uid !== undefined ? `uid ${e.uid}` : undefined, e.command].filter(Boolean).join('  ');
    out(`${e.path}  ${who}`);
  }
}

export function registerSessionCommands(program: Command): void {
  const session = program
    .command('session')
    .description('sessions (ConnMan Session API): create one and stay attached, or list them')
    .showHelpAfterError('(add --help for usage)')
    .exitOverride(usageExit);

  const sub = (name: string, description: string): Command =>
    session
      .command(name)
      .description(description)
      .addOption(new Option('--bus <address>', 'D-Bus address of the bus netsessiond is on').hideHelp())
      .option('--json', 'print JSON (one object per line)')
      .showHelpAfterError('(add --help for usage)')
      .exitOverride(usageExit);

  sub('create', 'create a session and stay attached: prints its Updates, reads connect | disconnect | change KEY VALUE… | quit on stdin; SIGINT/SIGTERM destroy it')
    .option('--bearers [bearers...]', 'AllowedBearers in order of preference (ethernet, wifi, bluetooth, cellular, gadget, vpn, *); none: an empty list')
    .option('--type <type>', 'ConnectionType: local | internet | any')
    .option('--ifname <ifname>', 'AllowedInterface: an interface name, or * for any')
    .option('--srciprule [yes|no]', 'SourceIPRule (default yes when given)')
    .option('--ctxid <id>', 'ContextIdentifier')
    .option('--connect', 'call Connect once created')
    .option('--plain', "send only ConnMan's settings (no SessionMarker is reported; for ConnMan itself)")
    .action(async (opts: CreateOpts) => attached(program, opts));

  sub('list', "the daemon's sessions: object path, owner, and the owner's pid, uid and command (from the bus)").action(async (opts: CommonOpts) => list(program, opts));

  for (const verb of ['connect', 'disconnect', 'change']) {
    session
      .command(verb, { hidden: true })
      .allowUnknownOption()
      .argument('[args...]')
      .exitOverride(usageExit)
      .action(() => {
        const msg = `a session lives as long as the process that created it: use \`session create${verb === 'connect' ? ' --connect' : ''}\` and type \`${verb}${verb === 'change' ? ' KEY VALUE…' : ''}\` on its stdin`;
        process.stderr.write(`netsessionctl: session ${verb}: ${msg}\n`);
        throw new CommanderError(EXIT_USAGE, 'netsession.session', msg);
      });
  }
}
