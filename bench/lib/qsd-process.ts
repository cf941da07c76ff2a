/**
 * A measured qemu-storage-daemon with one QMP monitor on a unix socket,
 * driven by the test suite's QMP client. It ends with QMP `quit` (qsd
 * flushes its nodes before exiting), so a backup it ran is durable once
 * the process has exited.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { QmpClient } from '../../test/helpers/qmp-client.js';
import type { Measurement } from './pairs.js';
import { spawnMeasured, waitForSocket, type MeasuredProcess } from './processes.js';

export interface QsdDaemon {
  readonly qmp: QmpClient;
  readonly process: MeasuredProcess;
  /** Send `quit` and resolve with the measurement of the whole process lifetime. */
  quit(): Promise<Measurement>;
}

let instance = 0;

export const QSD_PROGRAM: readonly string[] = ['qemu-storage-daemon'];

/**
 * Start qsd (or a program taking the same options, `program`) with `args`
 * (--blockdev, --nbd-server, --export ...) and connect to its monitor.
 */
export async function startQsd(scratchDir: string, args: readonly string[], program: readonly string[] = QSD_PROGRAM): Promise<QsdDaemon> {
  const socket = join(scratchDir, `qsd-${process.pid}-${instance++}.qmp`);
  const measured = spawnMeasured(
    [...program, '--chardev', `socket,id=qmp0,path=${socket},server=on,wait=off`, '--monitor', 'chardev=qmp0', ...args],
    { scratchDir },
  );
  await waitForSocket(socket, measured);
  const qmp = await connectWhileStarting(socket, measured);
  return {
    qmp,
    process: measured,
    async quit() {
      await qmp.execute('quit');
      await qmp.closed;
      return measured.exited;
    },
  };
}

/**
 * Connect to the monitor. The socket file exists from bind() on, but
 * connections are refused until listen(): retry ECONNREFUSED while the
 * process is alive.
 */
async function connectWhileStarting(socket: string, measured: MeasuredProcess): Promise<QmpClient> {
  for (;;) {
    try {
      return await QmpClient.connect(socket);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ECONNREFUSED' || measured.child.exitCode !== null) throw error;
      await sleep(2);
    }
  }
}

/** `--blockdev` arguments for an image file as a format node named `nodeName`. */
export function qsdImageArgs(nodeName: string, filename: string, format: string, options: { readOnly?: boolean } = {}): string[] {
  const readOnly = options.readOnly ? ',read-only=on' : '';
  return [
    '--blockdev',
    `driver=file,node-name=${nodeName}-file,filename=${filename}${readOnly}`,
    '--blockdev',
    `driver=${format},node-name=${nodeName},file=${nodeName}-file${readOnly}`,
  ];
}

let jobCounter = 0;

/**
 * Start blockdev-backup sync=full from `device` to `target`. Resolves once
 * the job is created, with `completed`: its BLOCK_JOB_COMPLETED (which
 * rejects when the job reports an error).
 */
export async function qsdBackup(qmp: QmpClient, device: string, target: string): Promise<{ readonly completed: Promise<void> }> {
  const id = `bench${jobCounter++}`;
  await qmp.command('blockdev-backup', { 'job-id': id, device, target, sync: 'full' });
  const completed = qmp.waitForEvent('BLOCK_JOB_COMPLETED', (event) => event.data?.device === id, 600_000).then((event) => {
    if (event.data?.error) throw new Error(`qemu-storage-daemon backup failed: ${event.data.error}`);
  });
  completed.catch(() => undefined);
  return { completed };
}
