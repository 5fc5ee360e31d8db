// The lab's "internet": ONE process per lab serves every ISP namespace (started by lab.ts).
//
//   node --import tsx internet-server.ts [--port 80] [--echo-port 7] --serve NAME:NETNS:MODEFILE …
//   node --import tsx internet-server.ts [--port 80] [--echo-port 7] --isp NAME [--mode-file FILE]
//
// The first form opens, for every --serve, listening sockets inside network namespace NETNS
// (a name under /run/netns); the second serves the namespace the process runs in. A socket
// belongs to the namespace its creating thread was in at socket() time, and keeps it; the
// connections it accepts are in that namespace too. So one process (~40 MB) replaces one
// per ISP, and a connection's listening socket tells which ISP it came through.
//
// HTTP, dual stack on every address of the namespace:
//   GET /whoami              200 {"client": "<source address>", "isp": "<NAME>"}: the server
//                            side's view of a connection, which routing tests take as the truth
//   GET /online/status.html  200, header X-ConnMan-Status: online, EMPTY body (ConnMan's status
//                            page; Debian's connman 1.41-3 fails its online check on any body)
//   GET /login               a login page
//   anything else            404
// In portal mode every path except /login answers 302 to http://<host>/login, and the status
// page loses its X-ConnMan-Status header: what a captive portal looks like to a prober.
// Each ISP's mode file is read on every request, so `lab isp … portal` needs no restart.
// TCP echo on the echo port.
import { realpathSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type Server } from 'node:net';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { inNetns } from '../kernel/sys/netns.ts';

export type ServerMode = 'online' | 'portal';

export interface InternetServerOptions {
  isp: string;
  /** network namespace to listen in (a name under /run/netns); default: the caller's */
  netns?: string;
  port: number;
  echoPort: number;
  modeFile?: string;
  logRequests?: boolean;
}

/** Anything but "portal" (missing file, "online", "no-upstream") serves normally. */
async function readMode(file: string | undefined): Promise<ServerMode> {
  if (file === undefined) return 'online';
  try {
    return (await readFile(file, 'utf8')).trim() === 'portal' ? 'portal' : 'online';
  } catch {
    return 'online';
  }
}

export function plainAddress(a: string | undefined): string {
  if (a === undefined) return '';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

export interface Reply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** The whole HTTP behaviour, as a function of the request and the mode. */
export function route(mode: ServerMode, path: string, client: string, host: string, isp: string): Reply {
  const text = (status: number, body: string, type = 'text/plain', extra: Record<string, string> = {}): Reply => ({
    status,
    headers: { 'Content-Type': type, ...extra },
    body,
  });
  if (mode === 'portal' && path !== '/login') {
    return text(302, 'portal\n', 'text/plain', { Location: `http://${host}/login` });
  }
  switch (path) {
    case '/whoami':
      return text(200, `${JSON.stringify({ client, isp })}\n`, 'application/json');
    case '/online/status.html':
      return text(200, '', 'text/html', { 'X-ConnMan-Status': 'online' });
    case '/login':
      return text(200, `<html><body>login to ${isp}</body></html>\n`, 'text/html');
    default:
      return text(404, 'not found\n');
  }
}

export function startInternetServer(opts: InternetServerOptions): Promise<void> {
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
    const client = plainAddress(req.socket.remoteAddress);
    const mode = await readMode(opts.modeFile);
    const r = route(mode, path, client, req.headers.host ?? '198.18.0.1', opts.isp);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      r.status = 405;
      r.body = '';
    }
    const body = Buffer.from(r.body);
    // node leaves the body out of HEAD answers by itself; Content-Length stays that of GET
    res.writeHead(r.status, { ...r.headers, 'Content-Length': String(body.length) });
    res.end(body);
    if (opts.logRequests) process.stdout.write(`${req.method} ${path} from ${client}: ${r.status}\n`);
  };
  const http = createHttpServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      process.stderr.write(`request failed: ${String(err)}\n`);
      res.destroy();
    });
  });
  const echo = createTcpServer((sock) => {
    sock.on('error', () => {});
    sock.pipe(sock);
  });
  const listen = (server: Server, port: number): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.once('listening', () => {
        server.off('error', reject);
        resolve();
      });
      // The socket must be created while this thread is inside the namespace. With a host
      // (even the literal '::') Node defers the bind to a dns.lookup callback on the next
      // tick — after inNetns has switched back — and the socket lands in the wrong namespace
      // (checked). Without a host, listen() creates and binds the socket synchronously, on
      // '::' dual stack (IPv4 clients arrive as ::ffff:a.b.c.d).
      inNetns(opts.netns, () => server.listen({ port, ipv6Only: false }));
    });
  return Promise.all([listen(http, opts.port), opts.echoPort > 0 ? listen(echo, opts.echoPort) : undefined]).then(
    () => undefined,
  );
}

/** `NAME:NETNS:MODEFILE` (the mode file may hold colons; NETNS may be empty = our own). */
export function parseServeSpec(spec: string): { isp: string; netns?: string; modeFile?: string } {
  const m = /^([A-Za-z0-9_-]+):([A-Za-z0-9_.-]*)(?::(.*))?$/.exec(spec);
  if (m === null) throw new Error(`bad --serve ${JSON.stringify(spec)} (expected NAME:NETNS[:MODEFILE])`);
  const [, isp = '', netns = '', modeFile = ''] = m;
  return { isp, ...(netns === '' ? {} : { netns }), ...(modeFile === '' ? {} : { modeFile }) };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      serve: { type: 'string', multiple: true, default: [] },
      isp: { type: 'string' },
      port: { type: 'string', default: '80' },
      'echo-port': { type: 'string', default: '7' },
      'mode-file': { type: 'string' },
      'log-requests': { type: 'boolean', default: false },
    },
  });
  const targets = values.serve.map(parseServeSpec);
  if (values.isp !== undefined) {
    targets.push({ isp: values.isp, ...(values['mode-file'] === undefined ? {} : { modeFile: values['mode-file'] }) });
  }
  if (targets.length === 0) throw new Error('nothing to serve: give --serve NAME:NETNS:MODEFILE or --isp NAME');
  const port = Number(values.port);
  const echoPort = Number(values['echo-port']);
  // each listen() has created its socket before it returns (see above), so all at once is safe
  await Promise.all(targets.map((t) => startInternetServer({ ...t, port, echoPort, logRequests: values['log-requests'] })));
  process.stdout.write(
    `internet server: http :${port}, echo :${echoPort} for ${targets.map((t) => `${t.isp}@${t.netns ?? 'own netns'}`).join(', ')}\n`,
  );
  process.once('SIGTERM', () => process.exit(0));
}

// run as a program, not when imported (tests import route())
const entry = process.argv[1];
if (entry !== undefined && pathToFileURL(realpathSync(entry)).href === import.meta.url) {
  main().catch((err: unknown) => {
    process.stderr.write(`internet-server: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
