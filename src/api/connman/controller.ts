// What the D-Bus objects need from the daemon: the current state and a way to run commands.
import type { Command, CommandError } from '../../engine/engine.ts';
import type { EngineState } from '../../engine/types.ts';

export interface Controller {
  state(): EngineState;
  now(): number;
  /** runs a command; returns its error, if any (nothing changed then) */
  execute(cmd: Command): CommandError | undefined;
  /** until the service is connected, fails or the time is up (Service.Connect answers then) */
  waitConnected(id: string, timeoutMs: number): Promise<CommandError | undefined>;
}
