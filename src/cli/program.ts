/**
 * The command tree of `livebackup`. Each subcommand lives in its own file
 * and registers itself here.
 */
import { Command, CommanderError } from 'commander';
import { LivebackupError, messageOf } from '../errors.js';

/** Exit codes shared by all subcommands. */
export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

export function buildProgram(): Command {
  const program = new Command('livebackup')
    .description('Live, point-in-time backups of block devices (qcow2/raw images, NBD, QMP).')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();
  return program;
}

/** Run the CLI with argv (as process.argv); resolves to the exit code. Never throws. */
export async function runCli(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT_OK;
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    if (error instanceof LivebackupError) {
      process.stderr.write(`livebackup: ${error.message}\n`);
      return error.code === 'INVALID_ARGUMENT' ? EXIT_USAGE : EXIT_FAILED;
    }
    process.stderr.write(`livebackup: internal error: ${messageOf(error)}\n`);
    if (error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
    return EXIT_FAILED;
  }
}
