// Tests that run programs as other users (setpriv): nobody (65534, on every Debian system) by
// default. Their curl shows what the server saw; their session client owns a session.
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const NOBODY = ['--reuid=65534', '--regid=65534', '--clear-groups'];
const CLIENT = fileURLToPath(new URL('../fixtures/session-client.ts', import.meta.url));

/** curl as a user in the device namespace: the server's view, or curl's exit code */
export function curlAs(user: string[], ns: string, url: string): { client?: string; isp?: string; code: number } {
  const r = spawnSync('ip', ['netns', 'exec', ns, 'setpriv', ...user, 'curl', '-sS', '--max-time', '3', url], { encoding: 'utf8' });
  return r.status === 0 ? { ...(JSON.parse(r.stdout) as { client: string; isp: string }), code: 0 } : { code: r.status ?? -1 };
}

/** test/fixtures/session-client.ts as a user: one session with these settings ([signature, value] each) */
export function sessionClientAs(user: string[], busAddress: string, settings: Record<string, [string, unknown]>): ChildProcessWithoutNullStreams {
  return spawn('setpriv', [...user, process.execPath, '--import', import.meta.resolve('tsx'), CLIENT, busAddress, JSON.stringify(settings)], { env: { ...process.env, HOME: '/tmp' } });
}
