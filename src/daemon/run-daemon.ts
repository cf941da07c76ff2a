/**
 * The process front end of `livebackup daemon`: parse the qsd-style
 * command line, build a StorageDaemon and apply the options in order,
 * write the pid file, detach when asked, and shut down cleanly on
 * SIGTERM/SIGINT/SIGHUP or `quit`. Resolves to the exit code.
 */
import pino from 'pino';
import { LivebackupError, messageOf } from '../errors.js';
import { livebackupVersion } from '../qmp/version.js';
import { DAEMON_USAGE, parseDaemonArguments, type DaemonArguments, type StartupStep } from './daemon-arguments.js';
import { isDetachedChild, reportFailure, reportReady, spawnDetached } from './daemonize.js';
import { removePidFile, writePidFile } from './pid-file.js';
import { StorageDaemon } from './storage-daemon.js';

/** Where the front end prints (the CLI's stdout and stderr). */
export interface DaemonOutput {
  out(text: string): void;
  err(text: string): void;
}

const SHUTDOWN_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];

/** Carry out one startup option on the daemon. */
async function applyStep(daemon: StorageDaemon, step: StartupStep): Promise<void> {
  switch (step.kind) {
    case 'blockdev':
      await daemon.addBlockdev(step.options);
      return;
    case 'monitor':
      if (step.address.type === 'unix') await daemon.qmp.listenUnix(step.address.path);
      else await daemon.qmp.listenTcp(step.address.port, step.address.host);
      return;
    case 'nbd-server':
      await daemon.startNbdServer(step.options);
      return;
    case 'export':
      daemon.addExport(step.options);
  }
}

/** Build the daemon and apply every option; on failure the daemon is shut down and the error names the option. */
async function startDaemon(args: DaemonArguments): Promise<StorageDaemon> {
  const logger = pino({ name: 'livebackup-daemon', level: process.env.LIVEBACKUP_LOG_LEVEL ?? 'warn' }, pino.destination({ dest: 2, sync: true }));
  const daemon = new StorageDaemon({ logger });
  try {
    for (const step of args.steps) {
      try {
        await applyStep(daemon, step);
      } catch (error) {
        const code = error instanceof LivebackupError ? error.code : 'IO_ERROR';
        throw new LivebackupError(code, `${step.option} ${step.text}: ${messageOf(error)}`, { cause: error });
      }
    }
    if (args.pidfile !== undefined) await writePidFile(args.pidfile);
  } catch (error) {
    await daemon.shutdown();
    throw error;
  }
  return daemon;
}

/** Run `livebackup daemon ARGS...` in this process; resolves to the exit code. */
export async function runDaemon(argv: readonly string[], output: DaemonOutput): Promise<number> {
  let args: DaemonArguments;
  try {
    args = parseDaemonArguments(argv);
  } catch (error) {
    output.err(`livebackup daemon: ${messageOf(error)}\n`);
    return 2;
  }
  if (args.help) {
    output.out(DAEMON_USAGE);
    return 0;
  }
  if (args.version) {
    output.out(`livebackup daemon ${livebackupVersion()} (qemu-storage-daemon 7.2 compatible)\n`);
    return 0;
  }
  const detachedChild = args.daemonize && isDetachedChild();
  if (args.daemonize && !detachedChild) {
    try {
      await spawnDetached();
      return 0;
    } catch (error) {
      output.err(`livebackup daemon: ${messageOf(error)}\n`);
      return 1;
    }
  }
  let daemon: StorageDaemon;
  try {
    daemon = await startDaemon(args);
  } catch (error) {
    if (detachedChild) reportFailure(messageOf(error));
    output.err(`livebackup daemon: ${messageOf(error)}\n`);
    return 1;
  }
  const onSignal = () => void daemon.shutdown();
  for (const signal of SHUTDOWN_SIGNALS) process.on(signal, onSignal);
  if (detachedChild) reportReady();
  try {
    await daemon.closed;
  } finally {
    for (const signal of SHUTDOWN_SIGNALS) process.off(signal, onSignal);
    if (args.pidfile !== undefined) await removePidFile(args.pidfile);
  }
  return 0;
}
