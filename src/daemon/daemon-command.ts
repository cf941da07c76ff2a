/**
 * Registers `livebackup daemon` on the CLI. The daemon's own options follow
 * qemu-storage-daemon's syntax and order matters, so they are passed
 * through untouched to run-daemon.ts rather than parsed by commander.
 */
import type { Command } from 'commander';
import type { CommandContext } from '../cli/command-context.js';

/** Add the `daemon` subcommand to `program`. */
export function registerDaemonCommand(program: Command, context: CommandContext): void {
  program
    .command('daemon')
    .description('Run a storage daemon compatible with qemu-storage-daemon (QMP, NBD exports, backup jobs); see daemon --help.')
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument('[options...]', 'qemu-storage-daemon style options')
    .action(async (_options: string[], _flags: unknown, command: Command) => {
      // Loaded on demand: the QMP/NBD stack is not needed by the other subcommands.
      const { runDaemon } = await import('./run-daemon.js');
      context.setExitCode(await runDaemon(command.args, { out: context.out, err: context.err }));
    });
}
