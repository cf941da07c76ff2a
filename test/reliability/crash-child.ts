/**
 * The process a crash test kills: it opens a qcow2 source, exports it
 * writable over NBD on a unix socket, and runs a full backup of it to a
 * qcow2 target at a limited speed, until SIGKILL ends it.
 *
 *   node crash-child.js SOURCE.qcow2 TARGET.qcow2 SOCKET SPEED
 *
 * Prints "ready" once the export is served and the job runs; any error
 * goes to stderr and exits 1.
 */
import { BlockGraph } from '../../src/block/block-graph.js';
import { openImage } from '../../src/block/image-file.js';
import { startBackup } from '../../src/backup/start-backup.js';
import { NbdServer } from '../../src/nbd/server.js';

async function main(): Promise<void> {
  const [sourcePath, targetPath, socketPath, speedText] = process.argv.slice(2);
  if (!sourcePath || !targetPath || !socketPath) throw new Error('usage: crash-child SOURCE TARGET SOCKET [SPEED]');
  const graph = new BlockGraph();
  const source = await openImage(sourcePath, { graph, format: 'qcow2', nodeName: 'source' });
  const target = await openImage(targetPath, { graph, format: 'qcow2', nodeName: 'target' });
  const server = new NbdServer();
  await server.listen({ type: 'unix', path: socketPath });
  server.addExport({ name: 'disk', node: source, writable: true });
  const job = startBackup({ source, target, sync: 'full', speed: Number(speedText ?? 0), jobId: 'crash0', maxChunk: 256 * 1024 });
  void job.done.then((result) => process.stdout.write(`job ${result.status}\n`));
  process.stdout.write('ready\n');
}

main().catch((error: unknown) => {
  process.stderr.write(`crash-child: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
