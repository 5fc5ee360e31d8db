// The lab's "internet", run once inside every ISP namespace (started by lab.ts):
//
//   node --import tsx internet-server.ts --isp NAME [--port 80] [--echo-port 7] [--mode-file FILE]
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
// The mode file is read on every request, so `lab isp … portal` needs no restart.
// TCP echo on the echo port.
import { realpathSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type Server } from 'node:net';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

export type ServerMode = 'online' | 'portal';

export interface InternetServerOptions {
  isp: string;
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
      // '::' without ipv6Only is dual stack: IPv4 clients arrive as ::ffff:a.b.c.d
      server.listen({ host: '::', port, ipv6Only: false }, resolve);
    });
  return Promise.all([listen(http, opts.port), opts.echoPort > 0 ? listen(echo, opts.echoPort) : undefined]).then(
    () => undefined,
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      isp: { type: 'string' },
      port: { type: 'string', default: '80' },
      'echo-port': { type: 'string', default: '7' },
      'mode-file': { type: 'string' },
      'log-requests': { type: 'boolean', default: false },
    },
  });
  if (values.isp === undefined) throw new Error('--isp is required');
  const opts: InternetServerOptions = {
    isp: values.isp,
    port: Number(values.port),
    echoPort: Number(values['echo-port']),
    logRequests: values['log-requests'],
  };
  if (values['mode-file'] !== undefined) opts.modeFile = values['mode-file'];
  await startInternetServer(opts);
  process.stdout.write(`internet server for ${opts.isp}: http :${opts.port}, echo :${opts.echoPort}\n`);
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
