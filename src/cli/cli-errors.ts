/**
 * How the CLI turns a thrown error into one line on stderr and an exit code.
 * User errors (LivebackupError) print only their message; anything else is
 * an internal error and also prints its stack.
 */
import { LivebackupError, messageOf } from '../errors.js';
import type { CommandContext } from './command-context.js';
import { EXIT_FAILED, EXIT_USAGE } from './exit-codes.js';

/**
 * Print `error` to the context's stderr as `livebackup: MESSAGE` and return
 * the exit code it maps to: EXIT_USAGE for INVALID_ARGUMENT, EXIT_FAILED
 * for every other error.
 */
export function reportError(context: CommandContext, error: unknown): number {
  if (error instanceof LivebackupError) {
    context.err(`livebackup: ${error.message}\n`);
    return error.code === 'INVALID_ARGUMENT' ? EXIT_USAGE : EXIT_FAILED;
  }
  context.err(`livebackup: internal error: ${messageOf(error)}\n`);
  if (error instanceof Error && error.stack) context.err(`${error.stack}\n`);
  return EXIT_FAILED;
}
