// Runs online checks from *inside* a namespace, the way the daemon runs them (no netns
// option): `ip netns exec NS node --import tsx check-child.ts '<JSON list of options>'`.
// Prints the results as one JSON list. Not a test file itself (online-check.test.ts uses it).
import { checkOnline, type OnlineCheckOptions, type OnlineCheckResult } from '../../../src/bearers/online/online-check.ts';

const list = JSON.parse(process.argv[2] ?? '[]') as OnlineCheckOptions[];
const out: OnlineCheckResult[] = [];
for (const o of list) out.push(await checkOnline(o));
process.stdout.write(`${JSON.stringify(out)}\n`);
