// netsessionctl: the command-line client. Each command group lives in its own file.
import { Command, CommanderError } from 'commander';
import { registerConnmanCommands } from './connman-commands.ts';
import { registerLabCommands } from './lab-commands.ts';
import { registerSessionCommands } from './session-commands.ts';

const program = new Command('netsessionctl')
  .description('control netsession and its network lab')
  .showHelpAfterError()
  .exitOverride();

registerLabCommands(program);
registerConnmanCommands(program);
registerSessionCommands(program);

try {
  await program.parseAsync();
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode;
  } else {
    process.stderr.write(`netsessionctl: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  }
}
