// HTTP GET from inside a namespace through a socket that carries SO_MARK (and optionally a
// bound source address), made with koffi and handed to Node: what an application using a
// session's SessionMarker does. Resolves with the server's answer, or rejects with the
// socket's error (ENETUNREACH when routing fails closed).
import { request } from 'node:http';
import { Socket } from 'node:net';
import { errno, libc, SO_MARK, SOCK_CLOEXEC, SOCK_STREAM, SOL_SOCKET, u32 } from '../../src/kernel/sys/libc.ts';
import { inNetns } from '../../src/kernel/sys/netns.ts';

export function markedSocket(netns: string, family: 4 | 6, mark?: number): Socket {
  const fd = inNetns(netns, () => libc.socket(family === 4 ? 2 : 10, SOCK_STREAM | SOCK_CLOEXEC, 0) as number);
  if (fd < 0) throw new Error(`socket: errno ${errno()}`);
  if (mark !== undefined && libc.setsockopt(fd, SOL_SOCKET, SO_MARK, u32(mark), 4) !== 0) {
    libc.close(fd);
    throw new Error(`SO_MARK: errno ${errno()}`);
  }
  return new Socket({ fd });
}

export function markedGet(netns: string, host: string, path: string, opts: { mark?: number; localAddress?: string; timeoutMs?: number } = {}): Promise<{ status: number; body: string }> {
  const family = host.includes(':') ? 6 : 4;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host,
        port: 80,
        path,
        // no agent: with `agent: false` Node makes a fresh Agent, which ignores createConnection
        // and would open a plain socket in *our* namespace
        timeout: opts.timeoutMs ?? 3000,
        createConnection: () => {
          const sock = markedSocket(netns, family, opts.mark).connect({ host, port: 80, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
          // Node's request timeout starts only once connected: a lost SYN would hang for minutes
          const t = setTimeout(() => sock.destroy(new Error(`connect timeout after ${opts.timeoutMs ?? 3000} ms`)), opts.timeoutMs ?? 3000);
          sock.once('connect', () => clearTimeout(t));
          sock.once('close', () => clearTimeout(t));
          return sock;
        },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => {
          body += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

export async function whoamiMarked(netns: string, host: string, mark?: number): Promise<{ client: string; isp: string }> {
  const r = await markedGet(netns, host, '/whoami', mark === undefined ? {} : { mark });
  return JSON.parse(r.body) as { client: string; isp: string };
}
