/**
 * A stand-in for `livebackup daemon` built from the library: it serves one
 * image over NBD on a unix socket and runs a backup of it on request.
 * Controlled through stdin/stdout, one line per message:
 *
 *   node bench-daemon.js --image PATH --format raw|qcow2 --socket PATH --export NAME [--writable]
 *   stdout  {"event":"ready"}                      listening
 *   stdin   backup TARGET                          create TARGET (same format and size), start a full backup
 *   stdout  {"event":"backup-started"}             the job runs: copy-before-write is active
 *   stdout  {"event":"backup-completed","status":"completed","seconds":S}
 *   stdin   quit  (or end of input)               close the export, flush and close the images, exit
 *
 * Exits 1 with a message on stderr when anything fails.
 */
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { BlockGraph, createImage, openImage, startBackup, type BackupJob } from '../../src/index.js';
import { NbdServer } from '../../src/nbd/server.js';

function say(message: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      image: { type: 'string' },
      format: { type: 'string' },
      socket: { type: 'string' },
      export: { type: 'string', default: 'disk' },
      writable: { type: 'boolean', default: false },
    },
  });
  if (!values.image || !values.format || !values.socket) throw new Error('--image, --format and --socket are required');
  const graph = new BlockGraph();
  const source = await openImage(values.image, { graph, format: values.format, nodeName: 'source', readOnly: !values.writable, discard: 'ignore' });
  const server = new NbdServer();
  await server.listen({ type: 'unix', path: values.socket });
  server.addExport({ name: values.export, node: source, writable: values.writable });
  const jobs: BackupJob[] = [];
  say({ event: 'ready' });

  const startBackupInto = async (targetPath: string) => {
    await createImage(targetPath, values.format!, source.length);
    const target = await openImage(targetPath, { graph, format: values.format, nodeName: `target${jobs.length}` });
    const started = performance.now();
    const job = startBackup({ source, target, sync: 'full', jobId: `backup${jobs.length}`, targetZeroInitialized: true });
    jobs.push(job);
    say({ event: 'backup-started' });
    const result = await job.done;
    say({ event: 'backup-completed', status: result.status, error: result.error, seconds: (performance.now() - started) / 1000 });
  };

  const pending: Promise<void>[] = [];
  for await (const line of createInterface({ input: process.stdin })) {
    const [command, argument] = line.trim().split(/\s+/, 2);
    if (command === 'quit') break;
    if (command === 'backup' && argument) pending.push(startBackupInto(argument));
    else if (command) throw new Error(`unknown command '${line}'`);
  }
  await Promise.all(pending);
  await server.close();
  await graph.closeAll();
}

try {
  await main();
} catch (error) {
  process.stderr.write(`bench-daemon: ${(error as Error).stack ?? String(error)}\n`);
  process.exitCode = 1;
}
