/**
 * StorageDaemon used as a library, in-process: a node is exported on the
 * daemon's NBD server, opened again through the nbd driver by blockdev-add,
 * and backed up from there into a file; shutdown() ends jobs and exports
 * with their events and closes every node.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../helpers/temp-dir.js';
import { SeededRandom } from '../helpers/random.js';
import { QmpClient } from '../helpers/qmp-client.js';
import { StorageDaemon } from '../../src/index.js';

const MiB = 1024 * 1024;

test('backup from an nbd node that reads the daemon\'s own export; shutdown ends everything with events', { timeout: 30_000 }, async (t) => {
  const dir = await tempDir(t);
  const diskPath = join(dir, 'disk.raw');
  const copyPath = join(dir, 'copy.raw');
  const nbdSocket = join(dir, 'nbd.sock');
  const qmpSocket = join(dir, 'qmp.sock');
  const content = new SeededRandom(5).bytes(8 * MiB);
  await writeFile(diskPath, content);
  await writeFile(copyPath, new Uint8Array(8 * MiB));

  const daemon = new StorageDaemon();
  t.after(() => daemon.shutdown());
  await daemon.addBlockdev({ driver: 'raw', 'node-name': 'disk', file: { driver: 'file', filename: diskPath } });
  await daemon.qmp.listenUnix(qmpSocket);
  const client = await QmpClient.connect(qmpSocket);
  await client.command('nbd-server-start', { addr: { type: 'unix', data: { path: nbdSocket } } });
  await client.command('block-export-add', { type: 'nbd', id: 'disk-export', 'node-name': 'disk' });
  await client.command('blockdev-add', { driver: 'nbd', 'node-name': 'remote', 'read-only': true, server: { type: 'unix', path: nbdSocket }, export: 'disk' });
  await client.command('blockdev-add', { driver: 'raw', 'node-name': 'copy', file: { driver: 'file', filename: copyPath } });
  const remote = (await client.command('query-named-block-nodes', { flat: true })).find((node: { 'node-name': string }) => node['node-name'] === 'remote');
  assert.equal(remote.drv, 'nbd');
  assert.equal(remote.ro, true);
  assert.equal(remote.image['virtual-size'], 8 * MiB);

  await client.command('blockdev-backup', { 'job-id': 'over-nbd', device: 'remote', target: 'copy', sync: 'full' });
  const completed = await client.waitForEvent('BLOCK_JOB_COMPLETED');
  assert.equal(completed.data.error, undefined);
  await client.command('blockdev-del', { 'node-name': 'copy' });
  assert.ok(Buffer.from(content).equals(await readFile(copyPath)), 'the copy read through NBD equals the disk');

  await client.command('blockdev-add', { driver: 'null-co', 'node-name': 'slow-source', size: 64 * MiB });
  await client.command('blockdev-add', { driver: 'null-co', 'node-name': 'slow-target', size: 64 * MiB });
  await client.command('blockdev-backup', { 'job-id': 'slow', device: 'slow-source', target: 'slow-target', sync: 'full', speed: MiB });
  await daemon.shutdown();
  await daemon.closed;
  const names = client.events.map((event) => event.event);
  assert.ok(names.includes('BLOCK_EXPORT_DELETED'));
  assert.ok(names.includes('BLOCK_JOB_CANCELLED'));
  assert.ok(names.indexOf('BLOCK_EXPORT_DELETED') < names.indexOf('BLOCK_JOB_CANCELLED'), 'exports go first, as in qemu-storage-daemon');
  assert.deepEqual(daemon.graph.list(), [], 'every node is closed');
  await client.closed;
});
