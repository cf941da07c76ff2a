/**
 * Runs the built `livebackup` CLI as a child process, wherever the tests
 * were compiled to (dist/ or a private build folder): main.js is found
 * relative to this compiled file.
 */
import { fileURLToPath } from 'node:url';
import { run, type RunResult } from '../helpers/tools.js';

/** The compiled CLI entry point next to this compiled test helper. */
export const CLI_MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** Run `livebackup ARGS...`; resolves with stdout, stderr and the exit code. */
export function livebackup(...args: string[]): Promise<RunResult> {
  return run(process.execPath, [CLI_MAIN, ...args]);
}

/** Run `livebackup ARGS...`, which must exit 0; resolves to its stdout. */
export async function livebackupOk(...args: string[]): Promise<string> {
  const result = await livebackup(...args);
  if (result.code !== 0) {
    throw new Error(`livebackup ${args.join(' ')} exited ${result.code}: ${result.stderr || result.stdout}`);
  }
  return result.stdout;
}
