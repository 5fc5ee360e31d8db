// Logging to stderr in a form both people and journald read: with JOURNAL_STREAM set
// (stderr goes to the journal) each line starts with its syslog priority (<3>, <4>, …)
// and carries no timestamp; otherwise an ISO time and the level name lead.

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };
const PRIORITY: Record<LogLevel, number> = { error: 3, warn: 4, info: 6, debug: 7 };

export interface Logger {
  error(msg: string): void;
  warn(msg: string): void;
  info(msg: string): void;
  debug(msg: string): void;
  child(component: string): Logger;
  enabled(level: LogLevel): boolean;
}

export function parseLevel(s: string): LogLevel | undefined {
  return s in RANK ? (s as LogLevel) : undefined;
}

export function createLogger(level: LogLevel, component = 'netsessiond', write: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  const journal = process.env.JOURNAL_STREAM !== undefined;
  const log =
    (lv: LogLevel) =>
    (msg: string): void => {
      if (RANK[lv] > RANK[level]) return;
      const text = msg.replace(/\n/g, ' | ');
      write(journal ? `<${PRIORITY[lv]}>${component}: ${text}\n` : `${new Date().toISOString()} ${lv.toUpperCase().padEnd(5)} ${component}: ${text}\n`);
    };
  return {
    error: log('error'),
    warn: log('warn'),
    info: log('info'),
    debug: log('debug'),
    child: (c) => createLogger(level, `${component}/${c}`, write),
    enabled: (lv) => RANK[lv] <= RANK[level],
  };
}
