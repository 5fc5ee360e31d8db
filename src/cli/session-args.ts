// `netsessionctl session …`: its arguments and its output, pure. The options of `session
// create` follow connmanctl's `session on` (--bearers, --type, --ifname, --srciprule,
// --ctxid); the commands read on stdin while attached are connect, disconnect, change KEY
// VALUE… and quit; the output follows connmanctl's `Session      Update               = {`
// block (Debian's 1.41).
import type { SessionConfig, SessionConfigKey, SessionSettings } from '../client/index.ts';
import { orderedKeys, SESSION_BEARERS, SESSION_CONFIG_SIGNATURES, SESSION_CONNECTION_TYPES } from '../client/session/types.ts';
import { parseBool, UsageError } from './connman-args.ts';
import { formatValue } from './connman-format.ts';

const IFNAME = /^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,14}$/;
const U32_MAX = 0xffffffff;

export interface CreateArgs {
  bearers?: string[] | true;
  type?: string;
  ifname?: string;
  srciprule?: string | true;
  ctxid?: string;
}

export function parseBearers(list: readonly string[]): string[] {
  for (const b of list) {
    if (!(SESSION_BEARERS as readonly string[]).includes(b)) throw new UsageError(`unknown bearer ${JSON.stringify(b)} (${SESSION_BEARERS.join(', ')})`);
  }
  return [...list];
}

export function parseConnectionType(v: string): 'any' | 'local' | 'internet' {
  if ((SESSION_CONNECTION_TYPES as readonly string[]).includes(v)) return v as 'any' | 'local' | 'internet';
  throw new UsageError(`--type takes local, internet or any, not ${JSON.stringify(v)}`);
}

export function parseIfname(v: string): string {
  if (v === '' || v === '*' || IFNAME.test(v)) return v;
  throw new UsageError(`${JSON.stringify(v)} is not an interface name`);
}

/** `session create` options → the settings sent with CreateSession. */
export function createConfig(a: CreateArgs): SessionConfig {
  const c: SessionConfig = {};
  // --bearers without names: an empty list, as connmanctl (the session never connects)
  if (a.bearers !== undefined) c.AllowedBearers = a.bearers === true ? [] : parseBearers(a.bearers);
  if (a.type !== undefined) c.ConnectionType = parseConnectionType(a.type);
  if (a.ifname !== undefined) c.AllowedInterface = parseIfname(a.ifname);
  if (a.srciprule !== undefined) c.SourceIPRule = a.srciprule === true ? true : parseBool(a.srciprule, '--srciprule');
  if (a.ctxid !== undefined) {
    if (a.ctxid.length > 1024) throw new UsageError('--ctxid is longer than 1024 characters');
    c.ContextIdentifier = a.ctxid;
  }
  return c;
}

/** connmanctl's option words for Change, and ours (the D-Bus names, any case). */
const ALIASES: Record<string, SessionConfigKey> = {
  bearers: 'AllowedBearers',
  type: 'ConnectionType',
  ifname: 'AllowedInterface',
  srciprule: 'SourceIPRule',
  ctxid: 'ContextIdentifier',
};

export function settingKey(word: string): SessionConfigKey {
  const w = word.replace(/^--/, '');
  const alias = ALIASES[w.toLowerCase()];
  if (alias) return alias;
  const k = Object.keys(SESSION_CONFIG_SIGNATURES).find((x) => x.toLowerCase() === w.toLowerCase());
  if (k) return k as SessionConfigKey;
  throw new UsageError(`unknown setting ${JSON.stringify(word)} (${Object.keys(SESSION_CONFIG_SIGNATURES).join(', ')})`);
}

/** `KEY VALUE…` → the setting and its value, typed as the daemon wants it. */
export function settingValue(key: SessionConfigKey, words: readonly string[]): SessionConfig[SessionConfigKey] {
  const sig = SESSION_CONFIG_SIGNATURES[key];
  const one = (): string => {
    if (words.length > 1) throw new UsageError(`${key} takes one value`);
    return words[0] ?? '';
  };
  switch (sig) {
    case 'as':
      return [...words];
    case 'b':
      if (words.length !== 1) throw new UsageError(`${key} takes yes or no`);
      return parseBool(words[0]!, key);
    case 'u': {
      const v = one();
      if (!/^[0-9]{1,10}$/.test(v) || Number(v) > U32_MAX) throw new UsageError(`${key} takes an integer 0..${U32_MAX}, not ${JSON.stringify(v)}`);
      return Number(v);
    }
    case 's':
      return one();
  }
}

export type StdinCommand =
  | { kind: 'connect' }
  | { kind: 'disconnect' }
  | { kind: 'change'; key: SessionConfigKey; value: NonNullable<SessionConfig[SessionConfigKey]> }
  | { kind: 'quit' }
  | { kind: 'help' }
  | { kind: 'empty' };

export const STDIN_HELP = 'commands: connect | disconnect | change KEY VALUE… (e.g. change AllowedBearers wifi ethernet, change ConnectionType internet) | quit';

/** One line typed on stdin while attached. */
export function parseStdinCommand(line: string): StdinCommand {
  const words = line.trim().split(/\s+/).filter(Boolean);
  const [cmd, ...rest] = words;
  if (cmd === undefined || cmd.startsWith('#')) return { kind: 'empty' };
  switch (cmd.toLowerCase()) {
    case 'connect':
    case 'disconnect':
      if (rest.length > 0) throw new UsageError(`${cmd} takes no arguments`);
      return { kind: cmd.toLowerCase() as 'connect' | 'disconnect' };
    case 'change':
    case 'config': {
      const [k, ...values] = rest;
      if (k === undefined) throw new UsageError('change KEY VALUE…');
      const key = settingKey(k);
      return { kind: 'change', key, value: settingValue(key, values) as NonNullable<SessionConfig[SessionConfigKey]> };
    }
    case 'quit':
    case 'exit':
    case 'off':
      return { kind: 'quit' };
    case 'help':
      return { kind: 'help' };
    default:
      throw new UsageError(`unknown command ${JSON.stringify(cmd)}; ${STDIN_HELP}`);
  }
}

/** connmanctl's block: `Session      Update               = {`, one `Key = value` per line, `}`. */
export function updateBlock(changed: Partial<SessionSettings>): string {
  const lines = orderedKeys(Object.keys(changed)).map((k) => `${k} = ${formatValue(changed[k])}`);
  return ['Session      Update               = {', ...lines, '}'].join('\n');
}

/** connmanctl's lines when a session goes up or down: undefined when nothing to say. */
export function transitionLine(path: string, wasConnected: boolean, state: string): { line: string; connected: boolean } | undefined {
  const up = state === 'connected' || state === 'online';
  if (up && !wasConnected) return { line: `Session ${path} connected`, connected: true };
  if (state === 'disconnected' && wasConnected) return { line: `Session ${path} disconnected`, connected: false };
  return undefined;
}
