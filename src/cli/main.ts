#!/usr/bin/env node
/** The `livebackup` command. */
import { runCli } from './program.js';

// A reader that goes away (`livebackup backup --json ... | head`) must not kill a running job:
// further output is dropped and the command finishes its work.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
  });
}

process.exitCode = await runCli(process.argv);
