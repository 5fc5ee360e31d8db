// TCP connections per second through a session: sockets made inside a network namespace
// (the lab's device namespace) that carry SO_MARK from their creation, as an application
// using a session's mark does (src/client/session/net.ts), connected to the lab's internet
// as fast as `concurrency` loops can, for a fixed time. Each connection is closed with a
// reset as soon as it is established, so neither side keeps it in TIME_WAIT and the
// ephemeral ports never run out. Sockets are made in batches, one namespace switch each.
// tcpRateApart runs it in a process of its own: the bench's own heap (10,000 sessions of each
// daemon, their Updates) must not put its garbage collections into the loops it measures.
import { execFile } from 'node:child_process';
import { Socket } from 'node:net';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { errno, libc, SO_MARK, SOCK_CLOEXEC, SOCK_STREAM, SOL_SOCKET, u32 } from '../../src/kernel/sys/libc.ts';
import { inNetns } from '../../src/kernel/sys/netns.ts';

const AF_INET = 2;
const BATCH = 64;
/** a process of its own (tcpRateApart) first runs the loops this long, unmeasured */
const WARM_UP_S = 0.5;

export interface TcpRateOptions {
  netns: string;
  /** SO_MARK of every socket */
  mark: number;
  host: string;
  port: number;
  seconds: number;
  concurrency: number;
  /** one connect's time limit */
  connectTimeoutMs?: number;
}

export interface TcpRateResult {
  connections: number;
  errors: number;
  /** the first few error codes, with counts */
  errorCodes: Record<string, number>;
  elapsedS: number;
  perSecond: number;
  /** the slowest connect (ms): a lost SYN waits for its retransmission (1 s) */
  maxConnectMs: number;
  /** connects that took over 100 ms */
  slow: number;
}

/** A batch of marked IPv4 TCP sockets made inside `netns`. */
function makeFds(netns: string, mark: number, n: number): number[] {
  const out: number[] = [];
  let err = 0;
  inNetns(netns, () => {
    for (let i = 0; i < n; i++) {
      const fd = libc.socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0) as number;
      if (fd < 0) {
        err = errno();
        break;
      }
      out.push(fd);
    }
  });
  if (out.length === 0) throw new Error(`socket in ${netns}: errno ${err}`);
  for (const fd of out) {
    if (libc.setsockopt(fd, SOL_SOCKET, SO_MARK, u32(mark), 4) !== 0) {
      const e = errno();
      for (const f of out) libc.close(f);
      throw new Error(`setsockopt(SO_MARK ${mark}): errno ${e}`);
    }
  }
  return out;
}

export async function tcpRate(o: TcpRateOptions): Promise<TcpRateResult> {
  const pool: number[] = [];
  const take = (): number => {
    if (pool.length === 0) pool.push(...makeFds(o.netns, o.mark, BATCH));
    return pool.pop() as number;
  };
  const res: TcpRateResult = { connections: 0, errors: 0, errorCodes: {}, elapsedS: 0, perSecond: 0, maxConnectMs: 0, slow: 0 };
  const start = performance.now();
  const end = start + o.seconds * 1000;
  const timeoutMs = o.connectTimeoutMs ?? 3000;
  const one = (): Promise<void> =>
    new Promise<void>((resolve) => {
      const sock = new Socket({ fd: take() });
      const t0 = performance.now();
      const timer = setTimeout(() => sock.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' })), timeoutMs);
      sock.once('connect', () => {
        clearTimeout(timer);
        res.connections++;
        const ms = performance.now() - t0;
        if (ms > res.maxConnectMs) res.maxConnectMs = ms;
        if (ms > 100) res.slow++;
        sock.on('error', () => {});
        sock.resetAndDestroy();
        resolve();
      });
      sock.once('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        res.errors++;
        const code = e.code ?? e.message;
        res.errorCodes[code] = (res.errorCodes[code] ?? 0) + 1;
        sock.destroy();
        resolve();
      });
      sock.connect({ host: o.host, port: o.port });
    });
  const loop = async (): Promise<void> => {
    while (performance.now() < end) {
      await one();
      // a path that fails at once (ENETUNREACH) must not spin: it is an answer already
      if (res.errors > 1000 && res.connections === 0) return;
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, loop));
  for (const fd of pool) libc.close(fd);
  res.elapsedS = (performance.now() - start) / 1000;
  res.perSecond = res.connections / res.elapsedS;
  return res;
}

/**
 * tcpRate in a node process of its own (this module as its entry), its result read from stdout;
 * the process warms its JIT up with WARM_UP_S of the same loops first.
 */
export function tcpRateApart(o: TcpRateOptions): Promise<TcpRateResult> {
  const self = fileURLToPath(import.meta.url);
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', self, JSON.stringify(o)], { timeout: (o.seconds + 60) * 1000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`tcp-rate process: ${err.message}${stderr ? `: ${stderr.trim()}` : ''}`));
      else resolve(JSON.parse(stdout) as TcpRateResult);
    });
  });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const o = JSON.parse(process.argv[2] ?? '') as TcpRateOptions;
  await tcpRate({ ...o, seconds: WARM_UP_S });
  process.stdout.write(`${JSON.stringify(await tcpRate(o))}\n`);
}
