/**
 * The process front end of `livebackup daemon`: parse the qsd-style
 * command line, build a StorageDaemon and apply the options in order,
 * write the pid file, detach when asked, and shut down cleanly on
 * SIGTERM/SIGINT/SIGHUP or `quit`. Resolves to the exit code.
 *
 * As with qemu-storage-daemon, whose monitors are served only once every
 * option has been processed, a QMP client never sees a half-started
 * daemon: the monitors start listening after the nodes, the NBD server and
 * the exports are in place, so a QMP greeting means the exports are ready.
 * A signal during startup stops it after the option in progress and shuts
 * the daemon down (exit status 0).
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
      await daemon.addExport(step.options);
  }
}

/** The steps in the order they are applied: command-line order, except that monitors come last. */
function startupOrder(steps: readonly StartupStep[]): StartupStep[] {
  return [...steps.filter((step) => step.kind !== 'monitor'), ...steps.filter((step) => step.kind === 'monitor')];
}

/**
 * Apply every option to `daemon` and write the pid file; resolves to true
 * when all of that was done. On failure the daemon is shut down and the
 * error names the option. Stops early, resolving to false, when the daemon
 * starts shutting down meanwhile (a signal).
 */
async function startDaemon(daemon: StorageDaemon, args: DaemonArguments): Promise<boolean> {
  try {
    for (const step of startupOrder(args.steps)) {
      if (daemon.shuttingDown) return false;
      try {
        await applyStep(daemon, step);
      } catch (error) {
        if (daemon.shuttingDown) return false;
        const code = error instanceof LivebackupError ? error.code : 'IO_ERROR';
        throw new LivebackupError(code, `${step.option} ${step.text}: ${messageOf(error)}`, { cause: error });
      }
    }
    if (args.pidfile !== undefined) await writePidFile(args.pidfile);
    return true;
  } catch (error) {
    await daemon.shutdown();
    throw error;
  }
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
  const logger = pino({ name: 'livebackup-daemon', level: process.env.LIVEBACKUP_LOG_LEVEL ?? 'warn' }, pino.destination({ dest: 2, sync: true }));
  const daemon = new StorageDaemon({ logger, allowBackingFromImage: !args.noBackingFromImage });
  const onSignal = () => void daemon.shutdown();
  for (const signal of SHUTDOWN_SIGNALS) process.on(signal, onSignal);
  try {
    let started: boolean;
    try {
      started = await startDaemon(daemon, args);
    } catch (error) {
      if (detachedChild) reportFailure(messageOf(error));
      output.err(`livebackup daemon: ${messageOf(error)}\n`);
      return 1;
    }
    if (detachedChild) {
      if (started) reportReady();
      else reportFailure('stopped by a signal during startup');
    }
    await daemon.closed;
    if (started && args.pidfile !== undefined) await removePidFile(args.pidfile);
  } finally {
    for (const signal of SHUTDOWN_SIGNALS) process.off(signal, onSignal);
  }
  return 0;
}
