#!/usr/bin/env node
/** The `livebackup` command. */
import { runCli } from './program.js';

process.exitCode = await runCli(process.argv);
