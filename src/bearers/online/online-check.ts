// The online check of one service: an HTTP GET whose sockets are bound to the service's
// own address before they connect. The daemon installs `from <addr> lookup <service table>`
// rules, so binding is what sends the request (and the DNS lookup of the check host) out
// through that uplink, whichever service is the default one. A bound socket also fails
// closed: if the address is gone, bind fails, nothing leaks out through another uplink.
//
// Never rejects: every problem, timeouts included, is a 'failed' result with a reason.
// Redirects are not followed (node:http never does): a redirect is what a portal looks like.
import { Resolver } from 'node:dns/promises';
import { getServers } from 'node:dns';
import { type ClientRequest, type IncomingMessage, request } from 'node:http';
import { isIP, Socket } from 'node:net';
import { errno as lastErrno, libc, SOCK_CLOEXEC, SOCK_STREAM } from '../../kernel/sys/libc.ts';
import { inNetns } from '../../kernel/sys/netns.ts';
import { errnoName } from '../../kernel/netlink/errors.ts';
import { classifyResponse, type OnlineResult } from './classify.ts';

export interface OnlineCheckOptions {
  /** http:// URL; the host may be an IP literal (`http://[2001:db8::1]/…`) or a name */
  url: string;
  /** the service's address: every socket of the check is bound to it */
  localAddress: string;
  /** for the whole check: DNS, connect, response headers */
  timeoutMs: number;
  signal?: AbortSignal;
  /** the service's DNS servers, for a host name; only those of localAddress's family are used */
  nameservers?: readonly string[];
  /**
   * Named namespace (/run/netns) to create the sockets in, for tests and the lab; the daemon
   * runs inside its namespace and leaves this out.
   */
  netns?: string;
  userAgent?: string;
}

export interface OnlineCheckResult {
  result: OnlineResult;
  /** for 'portal': the login page */
  portalUrl?: string;
  /** HTTP status, when an answer came */
  status?: number;
  /** for 'failed': what went wrong */
  error?: string;
  /** the server address we connected to */
  address?: string;
  /** wall time of the check, ms */
  ms: number;
}

const DEFAULT_USER_AGENT = 'netsession/0.1 online-check';
const AF_INET = 2;
const AF_INET6 = 10;

class CheckFailure extends Error {}

/** Runs one online check. Always resolves. */
export async function checkOnline(opts: OnlineCheckOptions): Promise<OnlineCheckResult> {
  const started = performance.now();
  const done = (r: Omit<OnlineCheckResult, 'ms'>): OnlineCheckResult => ({ ...r, ms: Math.round((performance.now() - started) * 100) / 100 });
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(new CheckFailure(`timeout after ${opts.timeoutMs} ms`)), Math.max(0, opts.timeoutMs));
  const onOuterAbort = (): void => ctl.abort(new CheckFailure('aborted'));
  if (opts.signal?.aborted) onOuterAbort();
  else opts.signal?.addEventListener('abort', onOuterAbort, { once: true });
  try {
    const { url, family } = checkInput(opts);
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    let address: string;
    if (isIP(host) !== 0) {
      if (isIP(host) !== family) throw new CheckFailure(`${host} is not reachable from ${opts.localAddress} (address family)`);
      address = host;
    } else {
      address = await resolveHost(host, family, opts, ctl.signal);
    }
    const res = await get(url, address, family, opts, ctl.signal);
    const c = classifyResponse({ status: res.status, headers: res.headers }, url.href);
    const out: Omit<OnlineCheckResult, 'ms'> = { result: c.result, status: res.status, address };
    if (c.portalUrl !== undefined) out.portalUrl = c.portalUrl;
    if (c.reason !== undefined) out.error = c.reason;
    return done(out);
  } catch (e) {
    // an abort rejects with the reason we gave it, or node's AbortError wrapping it
    const reason = ctl.signal.aborted ? ctl.signal.reason : e;
    return done({ result: 'failed', error: reason instanceof Error ? reason.message : String(reason) });
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', onOuterAbort);
  }
}

function checkInput(opts: OnlineCheckOptions): { url: URL; family: 4 | 6 } {
  let url: URL;
  try {
    url = new URL(opts.url);
  } catch {
    throw new CheckFailure(`bad URL ${JSON.stringify(opts.url)}`);
  }
  if (url.protocol !== 'http:') throw new CheckFailure(`unsupported URL scheme ${url.protocol} (http only)`);
  const family = isIP(opts.localAddress);
  if (family !== 4 && family !== 6) throw new CheckFailure(`bad local address ${JSON.stringify(opts.localAddress)}`);
  return { url, family };
}

/** The host's first A or AAAA record, asked from the service's address to its own servers. */
async function resolveHost(host: string, family: 4 | 6, opts: OnlineCheckOptions, signal: AbortSignal): Promise<string> {
  const servers = (opts.nameservers ?? getServers()).filter((s) => serverFamily(s) === family);
  if (servers.length === 0) throw new CheckFailure(`no IPv${family} name server to resolve ${host}`);
  // one try: a retry would be sent from a later event-loop turn, outside inNetns (where
  // its bind to localAddress fails rather than leaks, but the answer would be lost anyway)
  const r = new Resolver({ timeout: Math.max(1, opts.timeoutMs), tries: 1 });
  try {
    r.setServers(servers);
    if (family === 4) r.setLocalAddress(opts.localAddress);
    else r.setLocalAddress('0.0.0.0', opts.localAddress);
  } catch (e) {
    throw new CheckFailure(`resolver: ${(e as Error).message}`);
  }
  const cancel = (): void => r.cancel();
  signal.addEventListener('abort', cancel, { once: true });
  try {
    // c-ares opens its socket inside ares_send, synchronously: inNetns covers it
    const query = inNetns(opts.netns, () => (family === 4 ? r.resolve4(host) : r.resolve6(host)));
    const addrs = await query;
    const first = addrs[0];
    if (first === undefined) throw new CheckFailure(`${host}: no address`);
    return first;
  } catch (e) {
    if (e instanceof CheckFailure) throw e;
    throw new CheckFailure(`resolve ${host}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  } finally {
    signal.removeEventListener('abort', cancel);
  }
}

/** 4 or 6 for `addr`, `addr:port` (IPv4) and `[addr]:port` as setServers takes them; else 0. */
function serverFamily(s: string): number {
  const m = /^\[(.+)\](?::\d+)?$/.exec(s) ?? /^([0-9.]+):\d+$/.exec(s);
  return isIP(m?.[1] ?? s);
}

interface Answer {
  status: number;
  headers: IncomingMessage['headers'];
}

/**
 * The GET itself; resolves at the response headers (the body does not matter). In a foreign
 * namespace the TCP socket is made there by hand: node makes its own sockets a tick after
 * request() returns, too late for inNetns, so wrapping request() binds in the wrong one.
 */
function get(url: URL, address: string, family: 4 | 6, opts: OnlineCheckOptions, signal: AbortSignal): Promise<Answer> {
  const port = url.port === '' ? 80 : Number(url.port);
  return new Promise<Answer>((resolve, reject) => {
    let req: ClientRequest;
    try {
      const common = {
        host: address,
        port,
        path: `${url.pathname}${url.search}`,
        method: 'GET',
        headers: { Host: url.host, 'User-Agent': opts.userAgent ?? DEFAULT_USER_AGENT, Accept: '*/*', Connection: 'close' },
        signal,
      };
      req =
        opts.netns === undefined
          ? request({ ...common, family, localAddress: opts.localAddress, agent: false })
          : request({ ...common, createConnection: () => socketIn(opts.netns as string, family).connect({ host: address, port, localAddress: opts.localAddress }) });
    } catch (e) {
      reject(e);
      return;
    }
    req.on('response', (res) => {
      resolve({ status: res.statusCode ?? 0, headers: res.headers });
      // headers are all we need; close at once instead of reading a portal's page
      res.destroy();
      req.destroy();
    });
    req.on('error', (e: NodeJS.ErrnoException) => {
      reject(new CheckFailure(e.code !== undefined && e.syscall !== undefined ? `${e.syscall} ${e.code}` : e.message));
    });
    req.end();
  });
}

/** An unconnected TCP socket of `family` made in `netns`, handed to libuv. */
function socketIn(netns: string, family: 4 | 6): Socket {
  const fd = inNetns(netns, () => libc.socket(family === 4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0) as number);
  if (fd < 0) throw new CheckFailure(`socket() in ${netns}: ${errnoName(lastErrno())}`);
  try {
    return new Socket({ fd });
  } catch (e) {
    libc.close(fd);
    throw e;
  }
}
