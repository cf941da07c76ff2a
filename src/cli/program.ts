/**
 * The command tree of `livebackup`. Each subcommand lives in its own file
 * and registers itself here; runCli maps errors to exit codes.
 */
import { Command, CommanderError } from 'commander';
import type { CommandContext } from './command-context.js';
import { reportError } from './cli-errors.js';
import { EXIT_OK, EXIT_USAGE } from './exit-codes.js';
import { registerImgCommand } from './img.js';
import { registerDemoCommand } from './demo.js';
import { registerBackupCommand } from './backup-command.js';
import { registerDaemonCommand } from '../daemon/daemon-command.js';

export { EXIT_OK, EXIT_FAILED, EXIT_USAGE } from './exit-codes.js';

const PROGRAM_HELP_FOOTER = `
Exit codes:
  0  success
  1  the command failed (I/O error, corrupt or unsupported image, ...)
  2  usage error: unknown command or option, bad argument value
  (img compare: 1 means the images differ, 2 means an error)

Examples:
  livebackup img create -f qcow2 disk.qcow2 10G
  livebackup img info disk.qcow2
  livebackup backup disk.qcow2 /backups/disk-monday.qcow2
  livebackup daemon --blockdev driver=qcow2,node-name=disk0,file.driver=file,file.filename=disk.qcow2 \\
      --qmp unix:/tmp/qmp.sock
  livebackup demo

Run 'livebackup help <command>' or 'livebackup <command> --help' for details.
`;

/**
 * Build the `livebackup` command tree. Actions print through `context` and
 * report their exit code there; commander errors (usage, --help, --version)
 * are thrown as CommanderError instead of exiting the process.
 */
export function buildProgram(context: CommandContext): Command {
  const program = new Command('livebackup')
    .description('Live, point-in-time backups of block devices (qcow2/raw images, NBD, QMP).')
    .version('0.1.0')
    .configureOutput({ writeOut: (text) => context.out(text), writeErr: (text) => context.err(text) })
    .showHelpAfterError()
    .exitOverride()
    .addHelpText('after', PROGRAM_HELP_FOOTER);
  registerImgCommand(program, context);
  registerBackupCommand(program, context);
  registerDemoCommand(program, context);
  registerDaemonCommand(program, context);
  return program;
}

/**
 * Run the CLI with argv (as process.argv: node, script, arguments...),
 * printing to this process's stdout and stderr. Resolves to the exit code;
 * never throws.
 */
export async function runCli(argv: string[]): Promise<number> {
  let exitCode = EXIT_OK;
  const context: CommandContext = {
    out: (text) => void process.stdout.write(text),
    err: (text) => void process.stderr.write(text),
    setExitCode: (code) => {
      exitCode = code;
    },
  };
  try {
    await buildProgram(context).parseAsync(argv);
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    return reportError(context, error);
  }
}
