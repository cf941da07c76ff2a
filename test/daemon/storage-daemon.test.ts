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
import { StorageDaemon, createImage } from '../../src/index.js';
import { parseDaemonArguments } from '../../src/daemon/daemon-arguments.js';
import { runOk, skipUnlessTools } from '../helpers/tools.js';

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

test('what the engine does not implement is refused with a clear error, and nothing is left behind', { timeout: 30_000 }, async (t) => {
  const dir = await tempDir(t);
  const qmpSocket = join(dir, 'qmp.sock');
  const daemon = new StorageDaemon();
  t.after(() => daemon.shutdown());
  for (const name of ['src', 'tgt']) await daemon.addBlockdev({ driver: 'null-co', 'node-name': name, size: MiB });
  await daemon.qmp.listenUnix(qmpSocket);
  const client = await QmpClient.connect(qmpSocket);
  const backup = { 'job-id': 'j1', device: 'src', target: 'tgt', sync: 'full' };
  const refusals: Array<[string, Record<string, unknown>, RegExp]> = [
    ['blockdev-backup', { ...backup, compress: true }, /Compressed backup is not supported yet/],
    ['blockdev-backup', { ...backup, bitmap: 'b0' }, /dirty bitmap \('b0'\) is not supported yet/],
    ['blockdev-backup', { ...backup, sync: 'incremental', bitmap: 'b0' }, /not supported yet/],
    ['blockdev-backup', { ...backup, 'bitmap-mode': 'always' }, /bitmap sync mode without a bitmap/],
    ['blockdev-add', { driver: 'vmdk', 'node-name': 'v', file: 'src' }, /Parameter 'driver' does not accept value 'vmdk'/],
    ['block-export-add', { type: 'fuse', id: 'f', 'node-name': 'src' }, /Export type 'fuse' is not supported/],
    ['nbd-server-start', { addr: { type: 'fd', data: { str: '3' } } }, /socket address type 'fd' is not supported/i],
    ['transaction', { actions: [{ type: 'blockdev-backup', data: backup }], properties: { 'completion-mode': 'grouped' } }, /'grouped' is not supported yet/],
    ['transaction', { actions: [{ type: 'blockdev-backup', data: backup }, { type: 'blockdev-snapshot-sync', data: { 'snapshot-file': '/x' } }] }, /action 'blockdev-snapshot-sync' is not supported/],
  ];
  for (const [command, args, message] of refusals) {
    const reply = await client.execute(command, args);
    assert.equal(reply.error?.class, 'GenericError', command);
    assert.match(reply.error!.desc, message, command);
  }
  assert.deepEqual(await client.command('query-jobs'), [], 'no job survives a refused request');
  assert.equal(daemon.jobs.list().length, 0);
  await client.command('blockdev-backup', backup);
  assert.equal((await client.waitForEvent('BLOCK_JOB_COMPLETED')).data.device, 'j1', 'the nodes are free for the next job');
});

test('an empty backing reference (backing= on the command line) means no backing, as in QEMU', { timeout: 30_000 }, async (t) => {
  const dir = await tempDir(t);
  const base = join(dir, 'base.qcow2');
  const overlay = join(dir, 'overlay.qcow2');
  await createImage(base, 'qcow2', 4 * MiB);
  await createImage(overlay, 'qcow2', 4 * MiB, { backing_file: base, backing_fmt: 'qcow2' });
  const daemon = new StorageDaemon();
  t.after(() => daemon.shutdown());
  const [step] = parseDaemonArguments(['--blockdev', `qcow2,node-name=cut,backing=,file.driver=file,file.filename=${overlay}`]).steps;
  assert.ok(step?.kind === 'blockdev');
  const cut = await daemon.addBlockdev(step.options);
  assert.equal(cut.backing, undefined);
  const chained = await daemon.addBlockdev({ driver: 'qcow2', 'node-name': 'chained', 'read-only': true, file: { driver: 'file', filename: overlay, 'read-only': true } });
  assert.ok(chained.backing, 'without backing= the image header names the backing file');
});

test('--no-backing-from-image: an image naming a backing file is refused unless backing is given', { skip: skipUnlessTools('qemu-img') }, async (t) => {
  const dir = await tempDir(t);
  const secret = join(dir, 'host-secret.raw');
  await writeFile(secret, new Uint8Array(MiB).fill(0x53));
  const overlay = join(dir, 'untrusted.qcow2');
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', secret, '-F', 'raw', overlay]);
  assert.equal(parseDaemonArguments(['--no-backing-from-image']).noBackingFromImage, true);
  const daemon = new StorageDaemon({ allowBackingFromImage: false });
  t.after(() => daemon.shutdown());
  await assert.rejects(daemon.addBlockdev({ driver: 'qcow2', 'node-name': 'u', file: { driver: 'file', filename: overlay } }), /backing/);
  const node = await daemon.addBlockdev({ driver: 'qcow2', 'node-name': 'u', backing: null, file: { driver: 'file', filename: overlay } });
  const seen = new Uint8Array(4096);
  await node.read(0, seen);
  assert.ok(seen.every((byte) => byte === 0), 'nothing of the named backing file is read');
});
