// `netsessionctl lab …`: the network lab (src/lab) from the command line.
// Bad input exits 2 with a readable message and changes nothing; "no such lab" exits 1.
import { type Command, CommanderError, InvalidArgumentError } from 'commander';
import {
  type LabStatus,
  labDaemon,
  labDown,
  labExec,
  labIsp,
  labLink,
  labStatus,
  labUp,
  listLabs,
} from '../lab/lab.ts';
import {
  DEFAULT_LAB_NAME,
  DEFAULT_LEASE_SECONDS,
  ISP_ACTIONS,
  type LabInfo,
  LabUsageError,
  MAX_UPLINKS,
  parseUplinkCount,
  validateLabName,
} from '../lab/topology.ts';

interface NameOpts {
  name: string;
}

const USAGE_EXIT = 2;

function parseDaemonAction(v: string): 'start' | 'stop' | 'kill' {
  if (v === 'start' || v === 'stop' || v === 'kill') return v;
  throw new LabUsageError('daemon action must be start, stop or kill');
}

/** commander option parser from one of our validators: their message becomes commander's. */
function parser<T>(validate: (v: string) => T): (v: string) => T {
  return (v) => {
    try {
      return validate(v);
    } catch (err) {
      throw new InvalidArgumentError(err instanceof Error ? err.message : String(err));
    }
  };
}

function parseLease(v: string): number {
  if (!/^[0-9]+$/.test(v)) throw new LabUsageError(`bad lease time ${JSON.stringify(v)}: seconds expected`);
  return Number(v);
}

/**
 * Runs an action; a LabUsageError becomes exit 2 (message printed here, main prints nothing
 * more). Anything else, LabNotFoundError included, goes to main: printed, exit 1.
 */
function guarded<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args) => {
    try {
      await fn(...args);
    } catch (err) {
      if (err instanceof LabUsageError) {
        process.stderr.write(`netsessionctl: ${err.message}\n`);
        throw new CommanderError(USAGE_EXIT, 'netsession.usage', err.message);
      }
      throw err;
    }
  };
}

/** Commander's own usage errors (unknown option, missing argument, bad value) exit 2 as well. */
function usageExit(err: CommanderError): never {
  if (err.exitCode !== 0 && err.code !== 'commander.executeSubCommandAsync') {
    throw new CommanderError(USAGE_EXIT, err.code, err.message);
  }
  throw err;
}

function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const r of rows) {
    for (const [i, c] of r.entries()) widths[i] = Math.max(widths[i] ?? 0, c.length);
  }
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ')).join('\n');
}

function summary(info: LabInfo): string {
  const rows = [['uplink', 'ifname', 'isp netns', 'gateway4', 'prefix4', 'gateway6', 'prefix6']];
  for (const u of info.uplinks) {
    rows.push([u.name, u.ifname, u.ispNetns, u.gateway4, u.prefix4, u.gateway6, u.prefix6]);
  }
  return [
    `lab ${info.name}: device netns ${info.device.netns}, state in ${info.dir}`,
    `bus       ${info.bus.address}`,
    `internet  ${info.internet.ipv4}, ${info.internet.ipv6} (http :${info.internet.httpPort}, echo :${info.internet.echoPort})`,
    '',
    table(rows),
    ...(info.daemon ? ['', `netsessiond pid ${info.daemon.pid}, log ${info.daemon.log}, state ${info.daemon.stateDir}`] : []),
  ].join('\n');
}

type LogLevel = 'error' | 'warn' | 'info' | 'debug';
function parseLogLevel(v: string): LogLevel {
  if (v === 'error' || v === 'warn' || v === 'info' || v === 'debug') return v;
  throw new LabUsageError('log level must be error, warn, info or debug');
}

function statusText(s: LabStatus): string {
  const yes = (b: boolean): string => (b ? 'yes' : 'NO');
  const rows = [['uplink', 'link', 'mode', 'upstream', 'dhcp', 'http', 'device', 'addresses']];
  for (const u of s.uplinks) {
    rows.push([
      u.name,
      u.link,
      u.mode,
      yes(u.upstream),
      u.dhcp ? 'running' : 'off',
      u.http ? 'running' : 'DEAD',
      `${u.ifname} ${u.device.carrier ? 'carrier' : 'no-carrier'}`,
      [...u.device.addresses4, ...u.device.addresses6].join(' ') || '-',
    ]);
  }
  const lines = [
    `lab ${s.name}: ${s.healthy ? 'healthy' : 'NOT healthy'}; device netns ${s.device.netns}`,
    `bus  ${s.bus.address} (${s.bus.alive ? 'running' : 'DEAD'})`,
  ];
  if (s.netns.missing.length > 0) lines.push(`missing namespaces: ${s.netns.missing.join(', ')}`);
  lines.push('', table(rows));
  return lines.join('\n');
}

const print = (text: string): void => {
  process.stdout.write(`${text}\n`);
};

export function registerLabCommands(program: Command): void {
  // `lab exec -- CMD -x`: commander keeps '--' and CMD's options away from our own parsing
  // only when every level stops reading options at its subcommand
  program.enablePositionalOptions();
  const lab = program
    .command('lab')
    .description('simulated uplinks in network namespaces (device, ISPs, internet, private bus)')
    .enablePositionalOptions()
    .showHelpAfterError('(add --help for usage)')
    .exitOverride(usageExit);

  const nameOption = (c: Command): Command =>
    c.option('--name <name>', 'lab name: letters and digits, at most 8', parser(validateLabName), DEFAULT_LAB_NAME);

  nameOption(lab.command('up').description('build a lab (an existing lab of that name is removed first)'))
    .option('--uplinks <n>', `number of uplinks, 1..${MAX_UPLINKS}`, parser(parseUplinkCount), 3)
    .option('--lease <seconds>', 'DHCPv4 lease time (≥ 120)', parser(parseLease), DEFAULT_LEASE_SECONDS)
    .option('--json', 'print the lab as one JSON object')
    .option('--daemon', 'also start netsessiond in the device namespace, configured for the lab')
    .option('--log-level <level>', 'log level of that netsessiond', parser(parseLogLevel), 'info' as const)
    .action(
      guarded(async (opts: NameOpts & { uplinks: number; lease: number; json?: boolean; daemon?: boolean; logLevel: LogLevel }) => {
        const r = await labUp({ name: opts.name, uplinks: opts.uplinks, leaseSeconds: opts.lease, ...(opts.daemon ? { daemon: { logLevel: opts.logLevel } } : {}) });
        const { upMs, ...info } = r;
        if (opts.json) print(JSON.stringify(info));
        else print(`${summary(info)}\n\nup in ${upMs} ms; run commands in it: netsessionctl lab exec --name ${info.name} -- CMD…`);
      }),
    );

  nameOption(
    lab
      .command('daemon')
      .description("start, stop (SIGTERM: clean) or kill (SIGKILL: a crash) the lab's netsessiond")
      .argument('<action>', 'start | stop | kill', parser(parseDaemonAction)),
  )
    .option('--log-level <level>', 'log level when starting', parser(parseLogLevel), 'info' as const)
    .option('--json', 'print the daemon JSON after start')
    .action(
      guarded(async (action: 'start' | 'stop' | 'kill', opts: NameOpts & { logLevel: LogLevel; json?: boolean }) => {
        const d = await labDaemon(opts.name, action, { logLevel: opts.logLevel });
        if (d) print(opts.json ? JSON.stringify(d) : `netsessiond pid ${d.pid}, log ${d.log}`);
        else print(`netsessiond of lab ${opts.name}: ${action === 'kill' ? 'killed' : 'stopped'}`);
      }),
    );

  nameOption(lab.command('down').description('remove a lab and everything it started (also after a crash)')).action(
    guarded(async (opts: NameOpts) => {
      const t0 = performance.now();
      const r = await labDown(opts.name);
      if (r.netns.length === 0 && r.stopped.length === 0 && !r.removedDir) print(`no lab ${r.name}: nothing to do`);
      else {
        const ms = Math.round(performance.now() - t0);
        print(`lab ${r.name} removed: ${r.netns.length} namespaces, ${r.stopped.length} processes (${ms} ms)`);
      }
    }),
  );

  nameOption(lab.command('status').description('the lab JSON and what is alive (exit 1 if there is no such lab)'))
    .option('--json', 'print one JSON object')
    .action(
      guarded(async (opts: NameOpts & { json?: boolean }) => {
        const s = await labStatus(opts.name);
        print(opts.json ? JSON.stringify(s) : statusText(s));
      }),
    );

  lab
    .command('list')
    .description('names of the labs that exist (state dir or namespaces)')
    .action(
      guarded(async () => {
        const names = listLabs();
        if (names.length > 0) print(names.join('\n'));
      }),
    );

  nameOption(
    lab
      .command('exec')
      .description('run CMD in the device namespace, with DBUS_SYSTEM_BUS_ADDRESS set to the lab bus')
      .argument('<command...>', 'command and its arguments (put -- before it)')
      .passThroughOptions(),
  ).action(
    guarded(async (argv: string[], opts: NameOpts) => {
      process.exitCode = await labExec(opts.name, argv);
    }),
  );

  nameOption(
    lab
      .command('link')
      .description('set the ISP side of an uplink up or down (down: the device side loses carrier)')
      .argument('<uplink>', 'isp<i> or eth<i>')
      .argument('<state>', 'up | down'),
  ).action(
    guarded(async (uplink: string, state: string, opts: NameOpts) => {
      await labLink(opts.name, uplink, state);
    }),
  );

  nameOption(
    lab
      .command('isp')
      .description('change what an ISP offers')
      .argument('<uplink>', 'isp<i> or eth<i>')
      .argument('<mode>', ISP_ACTIONS.join(' | ')),
  ).action(
    guarded(async (uplink: string, mode: string, opts: NameOpts) => {
      await labIsp(opts.name, uplink, mode);
    }),
  );
}
