// `netsessionctl state | technologies | services | connect | disconnect | config | move-before
// | move-after | enable | disable | offline | monitor`: the connection manager over D-Bus,
// through src/client. Human output follows connmanctl; --json prints one JSON document
// (monitor: one per line). Exit codes: 1 the daemon said no, 2 usage (checked before
// anything is sent), 3 the daemon cannot be reached.
import { type Command, CommanderError, Option } from 'commander';
import type { ConnmanClient, ConnmanEvent, ServiceEntry, ServiceHandle } from '../client/index.ts';
import {
  parseBool,
  parseDomains,
  parseIpv4Args,
  parseIpv6Args,
  parseNameservers,
  parseOnOff,
  parseServiceRef,
  parseTechnology,
  parseTimeservers,
  UsageError,
} from './connman-args.ts';
import { clock, eventLine, propertyLines, serviceDetail, serviceLine, technologiesText } from './connman-format.ts';
import { Failure } from './failure.ts';

const EXIT_DAEMON = 1;
const EXIT_USAGE = 2;
const EXIT_UNREACHABLE = 3;

interface CommonOpts {
  json?: boolean;
  bus?: string;
}


// The client (and dbus-next behind it) is loaded only when a command of this file runs, so
// `netsessionctl lab …` does not pay for it.
type ClientModule = typeof import('../client/index.ts');
let clientModule: ClientModule | undefined;
async function lib(): Promise<ClientModule> {
  clientModule ??= await import('../client/index.ts');
  return clientModule;
}

const print = (text: string): void => {
  if (text !== '') process.stdout.write(`${text}\n`);
};

async function printJson(v: unknown): Promise<void> {
  const { jsonReplacer } = await lib();
  process.stdout.write(`${JSON.stringify(v, jsonReplacer)}\n`);
}

/**
 * The message of a daemon error: the D-Bus name in words, the daemon's own text when it
 * says more than those words, and the name itself.
 */
function daemonMessage(dbusName: string, detail: string, words: string, subject?: string): string {
  const redundant = detail === '' || detail.toLowerCase().includes(words) || (subject !== undefined && detail.toLowerCase() === subject.toLowerCase());
  return redundant ? `${words} (${dbusName})` : `${words}: ${detail} (${dbusName})`;
}

async function toFailure(err: unknown): Promise<Failure> {
  if (err instanceof Failure) return err;
  if (err instanceof UsageError) return new Failure(EXIT_USAGE, err.message);
  const m = await lib();
  if (err instanceof m.ClientUsageError) return new Failure(EXIT_USAGE, err.message);
  if (err instanceof m.DaemonUnavailableError) {
    const prefix = err.reason === 'no-daemon' || err.reason === 'no-bus' ? 'netsessiond is not reachable' : 'lost netsessiond';
    return new Failure(EXIT_UNREACHABLE, `${prefix}: ${err.message}`, err.dbusName);
  }
  if (err instanceof m.DaemonError) {
    const words =
      err.dbusName === 'org.freedesktop.DBus.Error.UnknownObject'
        ? err.call.path.startsWith('/net/connman/technology/')
          ? 'no such technology'
          : err.call.path.startsWith('/net/connman/service/')
            ? 'no such service'
            : 'no such object'
        : m.errorWords(err.dbusName);
    return new Failure(EXIT_DAEMON, daemonMessage(err.dbusName, err.detail, words), err.dbusName);
  }
  return new Failure(EXIT_DAEMON, err instanceof Error ? err.message : String(err));
}

/**
 * Runs an action with a client: prints a failure as `netsessionctl: WHAT: message` (and as
 * JSON on stdout with --json), then hands the exit code to main through a CommanderError
 * (main prints nothing more for those).
 */
async function withClient(what: string, opts: CommonOpts, program: Command, fn: (c: ConnmanClient) => Promise<void>): Promise<void> {
  let client: ConnmanClient | undefined;
  try {
    const { ConnmanClient } = await lib();
    const bus = opts.bus ?? (program.opts() as CommonOpts).bus;
    client = await ConnmanClient.connect(bus);
    await fn(client);
  } catch (err) {
    const f = await toFailure(err);
    process.stderr.write(`netsessionctl: ${what}: ${f.message}\n`);
    if (opts.json) await printJson({ error: { message: f.message, ...(f.dbusName ? { dbusName: f.dbusName } : {}), exitCode: f.exitCode } });
    throw new CommanderError(f.exitCode, 'netsession.connman', f.message);
  } finally {
    client?.close();
  }
}

/** Validation before connecting: a usage error sends nothing. */
function validated<T>(what: string, opts: CommonOpts, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`netsessionctl: ${what}: ${err.message}\n`);
    if (opts.json) process.stdout.write(`${JSON.stringify({ error: { message: err.message, exitCode: EXIT_USAGE } })}\n`);
    throw new CommanderError(EXIT_USAGE, 'netsession.usage', err.message);
  }
}

/** SERVICE → the service, by id, object path or interface name; exit 1 when there is none. */
async function serviceFor(client: ConnmanClient, ref: string): Promise<ServiceEntry> {
  const s = await client.findService(ref);
  if (!s) throw new Failure(EXIT_DAEMON, `no such service ${JSON.stringify(ref)} (see netsessionctl services)`);
  return s;
}

/** Commander's own usage errors (unknown option, missing argument) exit 2 as well. */
function usageExit(err: CommanderError): never {
  if (err.exitCode !== 0 && err.code !== 'netsession.connman' && err.code !== 'netsession.usage' && err.code !== 'netsession.usage.lab') {
    throw new CommanderError(EXIT_USAGE, err.code, err.message);
  }
  throw err;
}

export function registerConnmanCommands(program: Command): void {
  program.option('--bus <address>', 'D-Bus address of the bus netsessiond is on (default: $DBUS_SYSTEM_BUS_ADDRESS, else the system bus)');
  // an unknown command or a bad global option is a usage error too
  program.exitOverride(usageExit);

  const cmd = (name: string, description: string): Command =>
    program
      .command(name)
      .description(description)
      .addOption(new Option('--bus <address>', 'D-Bus address of the bus netsessiond is on').hideHelp())
      .option('--json', 'print JSON instead of text')
      .showHelpAfterError('(add --help for usage)')
      .exitOverride(usageExit);

  cmd('state', "the manager's properties: State (offline|idle|ready|online), OfflineMode").action(async (opts: CommonOpts) => {
    await withClient('state', opts, program, async (c) => {
      const p = await c.getProperties();
      if (opts.json) await printJson(p);
      else print(propertyLines(p).join('\n'));
    });
  });

  cmd('technologies', 'the technologies and their properties').action(async (opts: CommonOpts) => {
    await withClient('technologies', opts, program, async (c) => {
      const list = await c.technologies();
      if (opts.json) await printJson(list);
      else print(technologiesText(list));
    });
  });

  cmd('services', 'the services in order (flags: * favorite, A autoconnect, then O online, R ready, a/c/d connecting or disconnecting), or every property of one')
    .argument('[service]', 'service id, object path or interface name')
    .action(async (ref: string | undefined, opts: CommonOpts) => {
      const wanted = ref === undefined ? undefined : validated('services', opts, () => parseServiceRef(ref));
      await withClient(ref === undefined ? 'services' : `services ${ref}`, opts, program, async (c) => {
        if (wanted === undefined) {
          const list = await c.services();
          if (opts.json) await printJson(list);
          else print(list.map(serviceLine).join('\n'));
          return;
        }
        const s = await serviceFor(c, wanted);
        if (opts.json) await printJson(s);
        else print(serviceDetail(s));
      });
    });

  cmd('connect', 'connect a service')
    .argument('<service>', 'service id, object path or interface name')
    .option('--wait <seconds>', 'then wait until the service is ready or online (exit 1 on failure or timeout)')
    .action(async (ref: string, opts: CommonOpts & { wait?: string }) => {
      const wait = validated('connect', opts, () => {
        parseServiceRef(ref);
        if (opts.wait === undefined) return undefined;
        if (!/^[0-9]+(\.[0-9]+)?$/.test(opts.wait) || Number(opts.wait) <= 0) throw new UsageError(`--wait: ${JSON.stringify(opts.wait)} is not a number of seconds`);
        return Number(opts.wait) * 1000;
      });
      await withClient(`connect ${ref}`, opts, program, async (c) => {
        const s = await serviceFor(c, ref);
        const h = c.service(s.id);
        await h.connect();
        let state: string | undefined;
        if (wait !== undefined) {
          const m = await lib();
          try {
            state = await h.waitForState(['ready', 'online', 'failure'], wait);
          } catch (err) {
            if (err instanceof m.DaemonUnavailableError && err.reason === 'timeout') throw new Failure(EXIT_DAEMON, `not connected after ${opts.wait} s`);
            throw err;
          }
          if (state === 'failure') {
            const e = (await h.getProperties()).Error;
            throw new Failure(EXIT_DAEMON, `connection failed${e ? `: ${e}` : ''}`);
          }
        }
        if (opts.json) await printJson({ ok: true, command: 'connect', service: { id: s.id, path: s.path }, ...(state ? { state } : {}) });
        else print(`Connected ${s.id}`);
      });
    });

  cmd('disconnect', 'disconnect a service (ethernet: its addresses go, the cable stays)')
    .argument('<service>', 'service id, object path or interface name')
    .action(async (ref: string, opts: CommonOpts) => {
      validated('disconnect', opts, () => parseServiceRef(ref));
      await withClient(`disconnect ${ref}`, opts, program, async (c) => {
        const s = await serviceFor(c, ref);
        await c.service(s.id).disconnect();
        if (opts.json) await printJson({ ok: true, command: 'disconnect', service: { id: s.id, path: s.path } });
        else print(`Disconnected ${s.id}`);
      });
    });

  cmd('config', "change a service's configuration")
    .argument('<service>', 'service id, object path or interface name')
    .option('--ipv4 <args...>', 'dhcp | manual ADDRESS NETMASK [GATEWAY] | off')
    .option('--ipv6 <args...>', 'auto | manual ADDRESS PREFIXLEN [GATEWAY] | off')
    .option('--nameservers [servers...]', 'name servers (none: clear)')
    .option('--timeservers [servers...]', 'time servers (none: clear)')
    .option('--domains [domains...]', 'search domains (none: clear)')
    .option('--autoconnect <yes|no>', 'connect automatically')
    .action(
      async (
        ref: string,
        opts: CommonOpts & { ipv4?: string[]; ipv6?: string[]; nameservers?: string[] | true; timeservers?: string[] | true; domains?: string[] | true; autoconnect?: string },
      ) => {
        // every change is parsed first: one bad value and nothing is sent
        const changes = validated('config', opts, () => {
          parseServiceRef(ref);
          const out: { name: string; apply: (h: ServiceHandle) => Promise<void> }[] = [];
          if (opts.ipv4) {
            const v = parseIpv4Args(opts.ipv4);
            out.push({ name: 'IPv4.Configuration', apply: (h) => h.setIPv4(v) });
          }
          if (opts.ipv6) {
            const v = parseIpv6Args(opts.ipv6);
            out.push({ name: 'IPv6.Configuration', apply: (h) => h.setIPv6(v) });
          }
          if (opts.nameservers !== undefined) {
            const v = parseNameservers(opts.nameservers);
            out.push({ name: 'Nameservers.Configuration', apply: (h) => h.setNameservers(v) });
          }
          if (opts.timeservers !== undefined) {
            const v = parseTimeservers(opts.timeservers);
            out.push({ name: 'Timeservers.Configuration', apply: (h) => h.setTimeservers(v) });
          }
          if (opts.domains !== undefined) {
            const v = parseDomains(opts.domains);
            out.push({ name: 'Domains.Configuration', apply: (h) => h.setDomains(v) });
          }
          if (opts.autoconnect !== undefined) {
            const v = parseBool(opts.autoconnect, '--autoconnect');
            out.push({ name: 'AutoConnect', apply: (h) => h.setAutoConnect(v) });
          }
          if (out.length === 0) throw new UsageError('nothing to change: give --ipv4, --ipv6, --nameservers, --timeservers, --domains or --autoconnect');
          return out;
        });
        await withClient(`config ${ref}`, opts, program, async (c) => {
          const s = await serviceFor(c, ref);
          const h = c.service(s.id);
          for (const ch of changes) {
            try {
              await ch.apply(h);
            } catch (err) {
              const f = await toFailure(err);
              throw new Failure(f.exitCode, `${ch.name}: ${f.message}`, f.dbusName);
            }
          }
          if (opts.json) await printJson({ ok: true, command: 'config', service: { id: s.id, path: s.path }, changed: changes.map((ch) => ch.name) });
        });
      },
    );

  for (const where of ['before', 'after'] as const) {
    cmd(`move-${where}`, `move SERVICE ${where} TARGET in the service order`)
      .argument('<service>', 'service id, object path or interface name')
      .argument('<target>', 'service id, object path or interface name')
      .action(async (ref: string, target: string, opts: CommonOpts) => {
        validated(`move-${where}`, opts, () => {
          parseServiceRef(ref);
          parseServiceRef(target);
        });
        await withClient(`move-${where} ${ref} ${target}`, opts, program, async (c) => {
          const s = await serviceFor(c, ref);
          const t = await serviceFor(c, target);
          const h = c.service(s.id);
          await (where === 'before' ? h.moveBefore(t.id) : h.moveAfter(t.id));
          if (opts.json) await printJson({ ok: true, command: `move-${where}`, service: { id: s.id, path: s.path }, target: { id: t.id, path: t.path } });
        });
      });
  }

  for (const on of [true, false]) {
    const verb = on ? 'enable' : 'disable';
    cmd(verb, `${on ? 'power on' : 'power off'} a technology (\`${verb} offline\`: offline mode ${on ? 'on' : 'off'}, as connmanctl)`)
      .argument('<technology>', 'ethernet, wifi, … or offline')
      .action(async (tech: string, opts: CommonOpts) => {
        const type = validated(verb, opts, () => parseTechnology(tech));
        await withClient(`${verb} ${tech}`, opts, program, async (c) => {
          const m = await lib();
          let already = false;
          try {
            if (type === 'offline') await c.setOfflineMode(on);
            else await c.technology(type).setPowered(on);
          } catch (err) {
            // as connmanctl: already in that state is not a failure
            if (!(err instanceof m.DaemonError && (err.shortName === 'AlreadyEnabled' || err.shortName === 'AlreadyDisabled'))) throw err;
            already = true;
          }
          if (opts.json) await printJson({ ok: true, command: verb, technology: type, ...(already ? { already: true } : {}) });
          else print(already ? `${type} is already ${verb}d` : `${on ? 'Enabled' : 'Disabled'} ${type}`);
        });
      });
  }

  cmd('offline', 'offline mode: on disconnects every service, off lets them connect again')
    .argument('<on|off>', 'on | off')
    .action(async (v: string, opts: CommonOpts) => {
      const on = validated('offline', opts, () => parseOnOff(v, 'offline'));
      await withClient(`offline ${v}`, opts, program, async (c) => {
        await c.setOfflineMode(on);
        if (opts.json) await printJson({ ok: true, command: 'offline', offlineMode: on });
        else print(`Offline mode ${on ? 'on' : 'off'}`);
      });
    });

  cmd('monitor', 'print every signal of the daemon with a time stamp, until SIGINT or SIGTERM').action(async (opts: CommonOpts) => {
    await withClient('monitor', opts, program, async (c) => {
      let lost: string | undefined;
      let stop: (() => void) | undefined;
      const stopped = new Promise<void>((r) => {
        stop = r;
      });
      // a reader that went away (monitor | head) ends the monitor quietly
      process.stdout.on('error', () => stop?.());
      const show = (ev: ConnmanEvent): void => {
        const now = new Date();
        if (opts.json) process.stdout.write(`${JSON.stringify({ time: now.toISOString(), ...ev }, clientModule?.jsonReplacer)}\n`);
        else process.stdout.write(`${clock(now)} ${eventLine(ev)}\n`);
        if (ev.kind === 'bus-lost') {
          lost = ev.message;
          stop?.();
        }
      };
      const sub = await c.subscribe(show);
      process.stderr.write(`netsessionctl: monitoring ${c.busName} on ${c.busAddress} (Ctrl-C to stop)\n`);
      const onSignal = (): void => stop?.();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        await stopped;
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        await sub.close();
      }
      if (lost !== undefined) throw new Failure(EXIT_UNREACHABLE, `lost the bus: ${lost}`);
    });
  });
}
