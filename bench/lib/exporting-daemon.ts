/**
 * A daemon that exports an image over NBD and can back it up while it is
 * served: qemu-storage-daemon (over QMP) or livebackup's. Scenarios only
 * see this interface, so which program plays livebackup's part is decided
 * by the single assignment of `launchLivebackupDaemon` below.
 */
import { once } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { LIVEBACKUP_CLI } from './backup-contenders.js';
import type { BenchImage } from './bench-images.js';
import type { Measurement } from './pairs.js';
import { runTool, spawnMeasured, waitForSocket } from './processes.js';
import { QSD_PROGRAM, qsdBackup, qsdImageArgs, startQsd } from './qsd-process.js';

export const EXPORT_NAME = 'disk';

export interface ExportingDaemon {
  /** NBD URI of the export, for qemu-img and nbdcopy. */
  readonly uri: string;
  /**
   * Create `target` (same format and size as the image) and start a backup
   * of the image into it, sync=full at unlimited speed. Resolves once the
   * job runs (copy-before-write is active), with `completed`: the seconds
   * from the call to job completion, rejecting when the job fails.
   */
  startBackup(target: string): Promise<{ readonly completed: Promise<number> }>;
  /** Stop the daemon (flushing its images); resolves with the measurement of its whole lifetime. */
  quit(): Promise<Measurement>;
}

export interface LaunchOptions {
  readonly image: BenchImage;
  readonly writable: boolean;
  /** Folder for sockets and time reports. */
  readonly scratchDir: string;
}

export type DaemonLauncher = (options: LaunchOptions) => Promise<ExportingDaemon>;

let socketCounter = 0;
function socketPath(scratchDir: string, who: string): string {
  return join(scratchDir, `${who}-${process.pid}-${socketCounter++}.nbd`);
}

function nbdUri(socket: string): string {
  return `nbd+unix:///${EXPORT_NAME}?socket=${socket}`;
}

/**
 * A daemon with qemu-storage-daemon's command line and QMP (`program`):
 * the image as node 'src', exported over NBD; backups through QMP.
 */
export function qmpDaemonLauncher(program: readonly string[]): DaemonLauncher {
  return async ({ image, writable, scratchDir }) => {
    const socket = socketPath(scratchDir, 'qmp');
    const qsd = await startQsd(scratchDir, [
      ...qsdImageArgs('src', image.path, image.format, { readOnly: !writable }),
      '--nbd-server',
      `addr.type=unix,addr.path=${socket}`,
      '--export',
      `type=nbd,id=export0,node-name=src,name=${EXPORT_NAME},writable=${writable ? 'on' : 'off'}`,
    ], program);
    let targets = 0;
    return {
      uri: nbdUri(socket),
      async startBackup(target) {
        const started = performance.now();
        const node = `tgt${targets++}`;
        await runTool(['qemu-img', 'create', '-q', '-f', image.format, target, String(image.layout.virtualBytes)]);
        await qsd.qmp.command('blockdev-add', { driver: 'file', 'node-name': `${node}-file`, filename: target });
        await qsd.qmp.command('blockdev-add', { driver: image.format, 'node-name': node, file: `${node}-file` });
        const job = await qsdBackup(qsd.qmp, 'src', node);
        return { completed: job.completed.then(() => (performance.now() - started) / 1000) };
      },
      quit: () => qsd.quit(),
    };
  };
}

/** qemu-storage-daemon itself. */
export const launchQsdExport: DaemonLauncher = qmpDaemonLauncher(QSD_PROGRAM);

/**
 * qemu-nbd serving the image (read-only unless writable), up to 8 clients
 * at once, until quit() sends it SIGTERM (--persistent: clients may come
 * and go). It cannot run backups.
 */
export const launchQemuNbd: DaemonLauncher = async ({ image, writable, scratchDir }) => {
  const socket = socketPath(scratchDir, 'qemu-nbd');
  const argv = ['qemu-nbd', '--persistent', '-f', image.format, '-k', socket, '-x', EXPORT_NAME, '-e', '8', image.path];
  if (!writable) argv.splice(1, 0, '-r');
  const server = spawnMeasured(argv, { scratchDir });
  await waitForSocket(socket, server);
  return {
    uri: nbdUri(socket),
    startBackup: () => Promise.reject(new Error('qemu-nbd cannot run a backup')),
    quit: async () => {
      await server.signal('SIGTERM');
      return server.exited;
    },
  };
};

const BENCH_DAEMON = fileURLToPath(new URL('./bench-daemon.js', import.meta.url));

/** bench-daemon.js: the library's NbdServer and startBackup, driven over stdin/stdout. */
export const launchBenchDaemon: DaemonLauncher = async ({ image, writable, scratchDir }) => {
  const socket = socketPath(scratchDir, 'livebackup');
  const argv = [process.execPath, BENCH_DAEMON, '--image', image.path, '--format', image.format, '--socket', socket, '--export', EXPORT_NAME];
  if (writable) argv.push('--writable');
  const daemon = spawnMeasured(argv, { scratchDir, stdin: 'pipe', stdout: 'pipe' });
  const messages = createInterface({ input: daemon.child.stdout! })[Symbol.asyncIterator]();
  const next = async (expected: string): Promise<Record<string, unknown>> => {
    const line = await Promise.race([
      messages.next(),
      daemon.exited.then(() => ({ done: true as const, value: undefined })),
    ]);
    if (line.done) {
      await daemon.exited;
      throw new Error(`bench-daemon ended before '${expected}': ${daemon.stderr()}`);
    }
    const message = JSON.parse(line.value) as Record<string, unknown>;
    if (message.event !== expected) throw new Error(`bench-daemon said ${line.value}, expected '${expected}'`);
    return message;
  };
  await next('ready');
  const stdin = daemon.child.stdin!;
  return {
    uri: nbdUri(socket),
    async startBackup(target) {
      const started = performance.now();
      stdin.write(`backup ${target}\n`);
      await next('backup-started');
      const completed = next('backup-completed').then((message) => {
        if (message.status !== 'completed') throw new Error(`livebackup backup ${String(message.status)}: ${String(message.error)}`);
        return (performance.now() - started) / 1000;
      });
      completed.catch(() => undefined);
      return { completed };
    },
    async quit() {
      stdin.end('quit\n');
      await once(stdin, 'finish');
      return daemon.exited;
    },
  };
};

/**
 * The program that plays livebackup's part: `livebackup daemon`, which
 * takes qemu-storage-daemon's options and speaks QMP. launchBenchDaemon
 * (the library stand-in) fits here too.
 */
export const launchLivebackupDaemon: DaemonLauncher = qmpDaemonLauncher([process.execPath, LIVEBACKUP_CLI, 'daemon']);
