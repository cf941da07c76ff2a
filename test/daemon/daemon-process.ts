/**
 * Runs the built `livebackup daemon` as a child process with a
 * qemu-storage-daemon style command line, waits for its sockets, and stops
 * it (SIGTERM) when the test ends. main.js is found relative to this
 * compiled file, so tests work from dist/ and from private build folders.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import { QmpClient } from '../helpers/qmp-client.js';
import { connectWhenListening } from '../helpers/unix-socket.js';

/** The compiled CLI entry point. */
export const CLI_MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export interface DaemonProcess {
  readonly process: ChildProcess;
  /** Everything written to stderr so far. */
  stderr(): string;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  readonly exited: Promise<number | string>;
  /** Connect a QMP client to a unix socket of this daemon (negotiated). */
  connect(path: string): Promise<QmpClient>;
  /** SIGTERM and wait for the exit; safe to call twice. */
  stop(): Promise<number | string>;
}

/** Wait until `path` is a listening socket (one connect succeeds); fails when `isDead()` says why first. */
export async function waitForSocket(path: string, isDead: () => string | undefined): Promise<void> {
  (await connectWhenListening(path, isDead)).destroy();
}

/**
 * Start `livebackup daemon ARGS...`; resolves once every path in
 * `sockets` is a listening socket. Stopped when the test `t` ends.
 */
export async function startDaemon(t: Pick<TestContext, 'after'>, args: readonly string[], sockets: readonly string[]): Promise<DaemonProcess> {
  const child = spawn(process.execPath, [CLI_MAIN, 'daemon', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const exited = once(child, 'exit').then(([code, signal]) => (code as number | null) ?? (signal as string));
  let exitValue: number | string | undefined;
  void exited.then((value) => (exitValue = value));
  const stop = async () => {
    if (exitValue === undefined) child.kill('SIGTERM');
    return exited;
  };
  t.after(stop);
  for (const path of sockets) {
    await waitForSocket(path, () => (exitValue === undefined ? undefined : `livebackup daemon exited (${exitValue}) during startup: ${stderr}`));
  }
  return { process: child, stderr: () => stderr, exited, connect: (path) => QmpClient.connect(path), stop };
}

/** True while a process with this pid exists. */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
