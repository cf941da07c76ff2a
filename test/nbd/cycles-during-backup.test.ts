/**
 * The live path under hostile clients: a backup of an exported node runs
 * while a well-behaved client writes through the export and 100 other
 * connections come and go (aborted handshakes, garbage, abrupt closes). The
 * backup must still hold the point in time, and no connection may leak.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as p from '../../src/nbd/protocol.js';
import { NbdClient } from '../../src/nbd/client.js';
import { createImage } from '../../src/block/image-file.js';
import { startBackup } from '../../src/backup/start-backup.js';
import { SeededRandom } from '../helpers/random.js';
import { eventually, serveRawImage } from './nbd-fixture.js';
import { RawPeer } from './raw-peer.js';

const MiB = 1024 * 1024;

test('100 connect/disconnect cycles during a backup: no leaked connection, the target is the point in time', async (t) => {
  const random = new SeededRandom(2024);
  const content = random.bytes(8 * MiB);
  const served = await serveRawImage(t, { content, writable: true });
  const targetPath = join(served.dir, 'target.raw');
  await createImage(targetPath, 'raw', content.length);
  const target = await served.graph.open({ driver: 'raw', file: { driver: 'file', filename: targetPath } });
  t.after(() => target.close());

  const job = startBackup({ source: served.node, target, sync: 'full', speed: MiB, maxWorkers: 2, maxChunk: 256 * 1024, jobId: 'cycles' });
  const writer = await NbdClient.connectUri(served.uri);
  let writing = true;
  let writes = 0;
  const writerDone = (async () => {
    while (writing) {
      const bytes = random.int(1, 200_000);
      await writer.write(random.int(0, content.length - bytes), random.bytes(bytes));
      writes++;
    }
  })();

  for (let i = 0; i < 100; i++) {
    const peer = await RawPeer.connect(served.socket);
    switch (i % 5) {
      case 0:
        peer.destroy();
        break;
      case 1:
        await peer.greeting();
        peer.send(p.encodeClientFlags(1), p.encodeOption(p.NBD_OPT_ABORT));
        await peer.optionReply();
        break;
      case 2:
        await peer.enter('disk');
        peer.request(p.NBD_CMD_WRITE, 1n, content.length - 10, 4096, 0, new Uint8Array(4096));
        peer.request(p.NBD_CMD_DISC, 2n, 0, 0);
        break;
      case 3:
        await peer.greeting();
        peer.send(Buffer.from(random.bytes(64)));
        break;
      default:
        await peer.enter('disk', false);
        peer.request(p.NBD_CMD_READ, 1n, random.int(0, 100) * 4096, 65536);
        peer.destroy();
    }
    await peer.closed;
  }
  writing = false;
  await writerDone;
  // Still running at 1 MiB/s after the cycles, normally; let it finish at full speed.
  if (job.status === 'running' || job.status === 'paused') job.setSpeed(0);
  const result = await job.done;
  assert.equal(result.status, 'completed', result.error);
  assert.ok(writes > 0 && job.cowStats.copies > 0, `the writer must race the job (writes ${writes}, copies ${job.cowStats.copies})`);
  await eventually(() => served.server.connectionCount === 1);
  await writer.disconnect();
  await eventually(() => served.server.connectionCount === 0);
  await target.flush();
  assert.ok((await readFile(targetPath)).equals(Buffer.from(content)), 'the backup equals the disk as it was when the job started');
});
