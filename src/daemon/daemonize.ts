/**
 * --daemonize for Node: the process re-spawns itself detached (its own
 * session, stdio on /dev/null) with an environment marker, and waits on a
 * pipe (the child's fd 3) for the child to say it is ready — every socket
 * listening, the pid file written — or why it failed. The parent then
 * exits: 0 when ready, 1 otherwise (with the child's error on stderr).
 */
import { spawn } from 'node:child_process';
import { closeSync, writeSync } from 'node:fs';
import type { Readable } from 'node:stream';

/** Set in the environment of the detached child. */
export const DAEMON_CHILD_ENV = 'LIVEBACKUP_DAEMON_CHILD';
const READY_FD = 3;
const READY = 'ready';

/** True in the detached child started by spawnDetached. */
export function isDetachedChild(): boolean {
  return process.env[DAEMON_CHILD_ENV] === '1';
}

/**
 * Parent side: start this same command line again, detached, and wait
 * until it reports. Resolves with the child's pid when it is ready;
 * rejects with the child's error message otherwise.
 */
export async function spawnDetached(): Promise<number> {
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
    env: { ...process.env, [DAEMON_CHILD_ENV]: '1' },
  });
  const pipe = child.stdio[READY_FD] as Readable;
  let report = '';
  pipe.setEncoding('utf8');
  pipe.on('data', (text: string) => (report += text));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve) => {
    pipe.once('close', resolve);
    child.once('error', () => resolve());
  });
  const pid = child.pid;
  if (report.trim() === READY && pid !== undefined) {
    child.unref();
    return pid;
  }
  await exited;
  throw new Error(report.trim() || 'the daemon exited during startup');
}

/** Child side: tell the parent startup is complete (and stop talking to it). */
export function reportReady(): void {
  finishReport(`${READY}\n`);
}

/** Child side: tell the parent why startup failed. */
export function reportFailure(message: string): void {
  finishReport(`${message}\n`);
}

function finishReport(text: string): void {
  try {
    writeSync(READY_FD, text);
    closeSync(READY_FD);
  } catch {
    // The parent is gone: nobody to tell.
  }
}
