// Traffic through a session: TCP sockets that carry the session's SessionMarker (SO_MARK)
// from their creation, so the kernel routes them through the session's service (or refuses
// them, ENETUNREACH, when the session has none: fail closed), and HTTP over such sockets.
// The socket is made with libc (koffi) — optionally inside a named network namespace — and
// handed to Node as a net.Socket.
import { lookup } from 'node:dns/promises';
import http from 'node:http';
import { isIP, Socket } from 'node:net';
import { Readable } from 'node:stream';
import tls from 'node:tls';
import { ClientUsageError } from '../errors.ts';

const AF_INET = 2;
const AF_INET6 = 10;
const EPERM = 1;
const EACCES = 13;
/** a TCP connect that neither succeeds nor fails (no SYN-ACK, no ICMP) ends after this */
export const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;

export interface TcpTarget {
  /** an IPv4/IPv6 address (brackets allowed) or a name (resolved by the system resolver, not through the session) */
  host: string;
  port: number;
  /** the address family; with a name, the one to resolve (default: what the resolver gives first) */
  family?: 4 | 6;
  /** bind to this source address before connecting (the SourceIPRule / bind-before-connect style) */
  localAddress?: string;
  /** default 30 s */
  timeoutMs?: number;
  /** set SO_MARK = SessionMarker (default true); false with localAddress is the pure bind-before-connect style */
  mark?: boolean;
}

export interface SocketPlan {
  /** the SO_MARK value; undefined: no mark */
  mark: number | undefined;
  /** a network namespace name (under /run/netns) to create the socket in; undefined: ours */
  netns: string | undefined;
}

function stripBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

async function resolve(host: string, family: 4 | 6 | undefined): Promise<{ address: string; family: 4 | 6 }> {
  const h = stripBrackets(host);
  const literal = isIP(h);
  if (literal !== 0) {
    if (family !== undefined && family !== literal) throw new ClientUsageError(`${h} is an IPv${literal} address, not IPv${family}`);
    return { address: h, family: literal as 4 | 6 };
  }
  if (h === '') throw new ClientUsageError('no host to connect to');
  const r = await lookup(h, family === undefined ? {} : { family });
  return { address: r.address, family: r.family as 4 | 6 };
}

function errnoError(syscall: string, errno: number, hint = ''): NodeJS.ErrnoException {
  const names: Record<number, string> = { 1: 'EPERM', 13: 'EACCES', 24: 'EMFILE', 97: 'EAFNOSUPPORT', 2: 'ENOENT' };
  const code = names[errno] ?? `E${errno}`;
  const e: NodeJS.ErrnoException = new Error(`${syscall} ${code}${hint}`);
  e.code = code;
  e.errno = -errno;
  e.syscall = syscall;
  return e;
}

type Sys = typeof import('../../kernel/sys/libc.ts') & typeof import('../../kernel/sys/netns.ts');
let sys: Promise<Sys> | undefined;
/** koffi is loaded only by applications that send traffic through sessions, once. */
function loadSys(): Promise<Sys> {
  sys ??= Promise.all([import('../../kernel/sys/libc.ts'), import('../../kernel/sys/netns.ts')]).then(([a, b]) => ({ ...a, ...b }));
  return sys;
}

/** A TCP socket of the given family, with SO_MARK set, in the planned namespace: its fd. */
async function markedFd(family: 4 | 6, plan: SocketPlan): Promise<number> {
  const { errno, libc, SO_MARK, SOCK_CLOEXEC, SOCK_STREAM, SOL_SOCKET, u32, inNetns } = await loadSys();
  let err = 0;
  const fd = inNetns(plan.netns, () => {
    const r = libc.socket(family === 4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0) as number;
    if (r < 0) err = errno();
    return r;
  });
  if (fd < 0) throw errnoError('socket', err);
  if (plan.mark !== undefined && libc.setsockopt(fd, SOL_SOCKET, SO_MARK, u32(plan.mark), 4) !== 0) {
    const e = errno();
    libc.close(fd);
    throw errnoError('setsockopt(SO_MARK)', e, e === EPERM || e === EACCES ? ': setting a socket mark needs CAP_NET_ADMIN (or CAP_NET_RAW on Linux ≥ 5.17)' : '');
  }
  return fd;
}

/**
 * Connects a TCP socket that carries the plan's mark from its creation. Resolves once
 * connected; rejects with the socket's error (ENETUNREACH when the session's routing fails
 * closed, ECONNREFUSED, ETIMEDOUT after `timeoutMs`).
 */
export async function connectMarked(plan: SocketPlan, target: TcpTarget): Promise<Socket> {
  if (!Number.isInteger(target.port) || target.port < 1 || target.port > 65535) throw new ClientUsageError(`port must be 1..65535, not ${target.port}`);
  const { address, family } = await resolve(target.host, target.family);
  const fd = await markedFd(family, plan);
  const sock = new Socket({ fd });
  const timeoutMs = target.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  return new Promise<Socket>((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      const e: NodeJS.ErrnoException = new Error(`connect ETIMEDOUT ${address}:${target.port} (no answer within ${timeoutMs} ms)`);
      e.code = 'ETIMEDOUT';
      e.syscall = 'connect';
      sock.destroy();
      reject(e);
    }, timeoutMs);
    sock.once('error', (e) => {
      clearTimeout(timer);
      sock.destroy();
      reject(e);
    });
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.removeAllListeners('error');
      resolvePromise(sock);
    });
    sock.connect({ host: address, port: target.port, ...(target.localAddress ? { localAddress: stripBrackets(target.localAddress) } : {}) });
  });
}

/** http.request's options without what the session decides (where and how to connect). */
export type SessionRequestOptions = Omit<http.RequestOptions, 'agent' | 'createConnection' | 'host' | 'hostname' | 'port' | 'path' | 'protocol' | 'socketPath' | 'lookup' | 'family' | 'localAddress'> & {
  family?: 4 | 6;
  localAddress?: string;
  /** TCP connect time limit (default 30 s) */
  connectTimeoutMs?: number;
  /** https: options for tls.connect (ca, rejectUnauthorized, …) */
  tls?: Omit<tls.ConnectionOptions, 'socket' | 'host' | 'port' | 'path'>;
  /** false: no SO_MARK (with localAddress: bind-before-connect only) */
  mark?: boolean;
};

/**
 * An HTTP(S) request whose connection is made by `connect` (a marked socket; TLS on top for
 * https:). Returns at once, like http.request; errors come as the request's 'error' event.
 */
export function requestVia(connect: (t: TcpTarget) => Promise<Socket>, url: string | URL, options: SessionRequestOptions = {}, callback?: (res: http.IncomingMessage) => void): http.ClientRequest {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ClientUsageError(`${JSON.stringify(String(url))} is not a URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ClientUsageError(`only http: and https: URLs, not ${u.protocol}`);
  const secure = u.protocol === 'https:';
  const host = stripBrackets(u.hostname);
  const port = u.port ? Number(u.port) : secure ? 443 : 80;
  const { family, localAddress, connectTimeoutMs, tls: tlsOptions, mark, headers: given, ...rest } = options;
  const headers: http.OutgoingHttpHeaders = {};
  if (Array.isArray(given)) {
    for (let i = 0; i + 1 < given.length; i += 2) headers[String(given[i])] = given[i + 1];
  } else Object.assign(headers, given ?? {});
  if (!Object.keys(headers).some((k) => k.toLowerCase() === 'host')) headers.host = u.host;
  const createConnection = (_o: unknown, oncreate: (err: Error | null, socket?: Socket) => void): undefined => {
    connect({ host, port, ...(family ? { family } : {}), ...(localAddress ? { localAddress } : {}), ...(connectTimeoutMs ? { timeoutMs: connectTimeoutMs } : {}), ...(mark === false ? { mark } : {}) }).then(
      (sock) => {
        if (!secure) return oncreate(null, sock);
        // host: the name the certificate must carry (also for an IP address); servername: SNI, names only
        const t = tls.connect({ host, ...(isIP(host) === 0 ? { servername: host } : {}), ...tlsOptions, socket: sock });
        oncreate(null, t);
      },
      (err: Error) => oncreate(err),
    );
    return undefined;
  };
  const auth = u.username || u.password ? `${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}` : undefined;
  return http.request(
    {
      ...rest,
      ...(auth ? { auth } : {}),
      host,
      port,
      path: `${u.pathname}${u.search}`,
      headers,
      // no agent: Node's http then uses createConnection (with `agent: false` it would not)
      createConnection: createConnection as unknown as http.RequestOptions['createConnection'],
    },
    callback,
  );
}

export interface SessionFetchInit {
  method?: string;
  headers?: Record<string, string> | [string, string][] | Headers;
  body?: string | Uint8Array | null;
  signal?: AbortSignal;
  /** time limit for the whole exchange up to the response headers */
  timeoutMs?: number;
  family?: 4 | 6;
  localAddress?: string;
  tls?: SessionRequestOptions['tls'];
  mark?: boolean;
}

const NULL_BODY_STATUS = new Set([101, 204, 205, 304]);

/** fetch() over requestVia: a WHATWG Response whose body streams from the socket. */
export function fetchVia(connect: (t: TcpTarget) => Promise<Socket>, url: string | URL, init: SessionFetchInit = {}): Promise<Response> {
  const method = (init.method ?? 'GET').toUpperCase();
  const headers: Record<string, string> = {};
  new Headers(init.headers ?? {}).forEach((v, k) => {
    headers[k] = v;
  });
  const body = init.body === undefined || init.body === null ? undefined : typeof init.body === 'string' ? Buffer.from(init.body) : Buffer.from(init.body.buffer, init.body.byteOffset, init.body.byteLength);
  if (body !== undefined && headers['content-length'] === undefined) headers['content-length'] = String(body.length);
  return new Promise<Response>((resolvePromise, reject) => {
    const req = requestVia(
      connect,
      url,
      {
        method,
        headers,
        ...(init.signal ? { signal: init.signal } : {}),
        ...(init.family ? { family: init.family } : {}),
        ...(init.localAddress ? { localAddress: init.localAddress } : {}),
        ...(init.tls ? { tls: init.tls } : {}),
        ...(init.mark === false ? { mark: false } : {}),
      },
      (res) => {
        if (timer) clearTimeout(timer);
        const h = new Headers();
        for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) h.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!);
        const status = res.statusCode ?? 0;
        const nullBody = NULL_BODY_STATUS.has(status) || method === 'HEAD';
        if (nullBody) res.resume();
        try {
          resolvePromise(new Response(nullBody ? null : (Readable.toWeb(res) as unknown as ReadableStream<Uint8Array>), { status, statusText: res.statusMessage ?? '', headers: h }));
        } catch (err) {
          res.destroy();
          reject(err);
        }
      },
    );
    let timer: NodeJS.Timeout | undefined;
    if (init.timeoutMs !== undefined) {
      timer = setTimeout(() => {
        const e: NodeJS.ErrnoException = new Error(`${method} ${String(url)}: no response within ${init.timeoutMs} ms`);
        e.code = 'ETIMEDOUT';
        req.destroy(e);
      }, init.timeoutMs);
    }
    req.on('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(e);
    });
    req.end(body);
  });
}
