/**
 * The live path end to end: `livebackup daemon` exports a qcow2 disk (over
 * a backing image) on NBD; several qemu-io processes write random data to
 * it while QMP backup jobs run: sync=full, sync=top (target qcow2 over the
 * same backing), and fleecing (sync=none into a qcow2 whose backing is the
 * disk node, exported on NBD and read with qemu-img convert while the
 * writers run). Each copy must equal the disk as it was when its job
 * started; the reference is read over NBD before the job, with no writer
 * running, and the writers only start after the job-start reply.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { qemuImgCheck, qemuImgCompare, runOk, skipUnlessTools } from '../helpers/tools.js';
import { tempDir } from '../helpers/temp-dir.js';
import { SeededRandom } from '../helpers/random.js';
import type { QmpClient } from '../helpers/qmp-client.js';
import { startDaemon } from './daemon-process.js';

const skip = skipUnlessTools('qemu-img', 'qemu-io');
const KiB = 1024;
const MiB = 1024 * KiB;
const DISK_SIZE = 32 * MiB;
const SEED = Number(process.env.LIVEBACKUP_TEST_SEED ?? 20261127);
const WRITERS = 3;
const WRITES_PER_WRITER = 24;
const PATTERN_SIZE = 256 * KiB;

const nbdUri = (socket: string, name: string): string => `nbd+unix:///${name}?socket=${socket}`;

/** The qemu-io command lists of WRITERS writers: random offsets (some unaligned) and lengths, from random pattern files. */
function writerScripts(random: SeededRandom, patterns: readonly string[]): string[][] {
  return Array.from({ length: WRITERS }, () =>
    Array.from({ length: WRITES_PER_WRITER }, () => {
      const length = random.int(1, PATTERN_SIZE / 512) * 512 - (random.chance(0.25) ? random.int(1, 511) : 0);
      const offset = random.int(0, DISK_SIZE - length);
      return `write -s ${random.pick(patterns)} ${offset} ${length}`;
    }),
  );
}

/** Run every writer at once over NBD; resolves when all have exited successfully. */
async function runWriters(uri: string, scripts: readonly string[][]): Promise<void> {
  await Promise.all(scripts.map((commands) => runOk('qemu-io', ['-f', 'raw', uri, ...commands.flatMap((command) => ['-c', command])])));
}

/** Read the whole of an NBD export into a raw file. */
async function readExport(uri: string, path: string): Promise<void> {
  await runOk('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', uri, path]);
}

async function waitForJobEnd(client: QmpClient, id: string, event: 'BLOCK_JOB_COMPLETED' | 'BLOCK_JOB_CANCELLED'): Promise<Record<string, any>> {
  const end = await client.waitForEvent(event, (message) => message.data.device === id, 60_000);
  await client.waitForEvent('JOB_STATUS_CHANGE', (message) => message.data.id === id && message.data.status === 'null', 60_000);
  return end.data;
}

test('backups of a disk written over NBD by several qemu-io processes: full, top, and fleecing', { skip, timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t);
  const random = new SeededRandom(SEED);
  const base = join(dir, 'base.qcow2');
  const disk = join(dir, 'disk.qcow2');
  const qmpSocket = join(dir, 'qmp.sock');
  const nbdSocket = join(dir, 'nbd.sock');
  const patterns = await Promise.all(Array.from({ length: 4 }, async (_, index) => {
    const path = join(dir, `pattern-${index}.bin`);
    await writeFile(path, random.bytes(PATTERN_SIZE));
    return path;
  }));
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', base, `${DISK_SIZE}`]);
  await runOk('qemu-io', ['-f', 'qcow2', base, '-c', `write -s ${patterns[0]} 0 ${PATTERN_SIZE}`, '-c', `write -s ${patterns[1]} ${20 * MiB} ${PATTERN_SIZE}`]);
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', disk]);
  await runOk('qemu-io', ['-f', 'qcow2', disk, '-c', `write -s ${patterns[2]} ${MiB} ${PATTERN_SIZE}`, '-c', `write -s ${patterns[3]} ${30 * MiB} ${PATTERN_SIZE}`]);

  const daemon = await startDaemon(t, [
    '--blockdev', `qcow2,node-name=base,read-only=on,file.driver=file,file.filename=${base}`,
    '--blockdev', `qcow2,node-name=disk,backing=base,file.driver=file,file.filename=${disk}`,
    '--chardev', `socket,id=qmp,path=${qmpSocket},server=on,wait=off`, '--monitor', 'chardev=qmp',
    '--nbd-server', `addr.type=unix,addr.path=${nbdSocket}`,
    '--export', 'type=nbd,id=disk-export,node-name=disk,name=disk,writable=on',
  ], [qmpSocket, nbdSocket]);
  const client = await daemon.connect(qmpSocket);
  const diskUri = nbdUri(nbdSocket, 'disk');

  // sync=full into an existing qcow2, throttled so the writers overlap the copy.
  const fullTarget = join(dir, 'full.qcow2');
  const fullReference = join(dir, 'full-reference.raw');
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', fullTarget, `${DISK_SIZE}`]);
  await client.command('blockdev-add', { driver: 'qcow2', 'node-name': 'full', file: { driver: 'file', filename: fullTarget } });
  await readExport(diskUri, fullReference);
  await client.command('blockdev-backup', { 'job-id': 'job-full', device: 'disk', target: 'full', sync: 'full', speed: 16 * MiB });
  await runWriters(diskUri, writerScripts(random, patterns));
  const full = await waitForJobEnd(client, 'job-full', 'BLOCK_JOB_COMPLETED');
  assert.equal(full.error, undefined);
  await client.command('blockdev-del', { 'node-name': 'full' });
  assert.equal(await qemuImgCompare(fullReference, fullTarget, 'raw', 'qcow2'), true, `sync=full target differs (seed ${SEED})`);
  assert.equal((await qemuImgCheck(fullTarget)).code, 0);

  // sync=top: the target shares the disk's backing image and holds only the top layer.
  const topTarget = join(dir, 'top.qcow2');
  const topReference = join(dir, 'top-reference.raw');
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', topTarget]);
  await client.command('blockdev-add', { driver: 'qcow2', 'node-name': 'top', backing: 'base', file: { driver: 'file', filename: topTarget } });
  await readExport(diskUri, topReference);
  await client.command('blockdev-backup', { 'job-id': 'job-top', device: 'disk', target: 'top', sync: 'top', speed: 16 * MiB });
  await runWriters(diskUri, writerScripts(random, patterns));
  const top = await waitForJobEnd(client, 'job-top', 'BLOCK_JOB_COMPLETED');
  assert.ok(top.len < DISK_SIZE, 'sync=top copies only what the top layer allocates');
  await client.command('blockdev-del', { 'node-name': 'top' });
  assert.equal(await qemuImgCompare(topReference, topTarget, 'raw', 'qcow2'), true, `sync=top target + backing differs (seed ${SEED})`);
  assert.equal((await qemuImgCheck(topTarget)).code, 0);

  // Fleecing: sync=none into a qcow2 whose backing is the disk node, exported read-only.
  const fleece = join(dir, 'fleece.qcow2');
  const fleeceReference = join(dir, 'fleece-reference.raw');
  const fleeceRead = join(dir, 'fleece-read.raw');
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', fleece, `${DISK_SIZE}`]);
  await client.command('blockdev-add', { driver: 'qcow2', 'node-name': 'fleece', backing: 'disk', file: { driver: 'file', filename: fleece } });
  await readExport(diskUri, fleeceReference);
  await client.command('blockdev-backup', { 'job-id': 'job-fleece', device: 'disk', target: 'fleece', sync: 'none' });
  await client.command('block-export-add', { type: 'nbd', id: 'fleece-export', 'node-name': 'fleece', name: 'fleece' });
  await Promise.all([runWriters(diskUri, writerScripts(random, patterns)), readExport(nbdUri(nbdSocket, 'fleece'), fleeceRead)]);
  // Read again once every writer is done: still the point-in-time image.
  const fleeceReadAfter = join(dir, 'fleece-read-after.raw');
  await readExport(nbdUri(nbdSocket, 'fleece'), fleeceReadAfter);
  const expected = await readFile(fleeceReference);
  assert.ok(expected.equals(await readFile(fleeceRead)), `fleecing export read during writes differs (seed ${SEED})`);
  assert.ok(expected.equals(await readFile(fleeceReadAfter)), `fleecing export read after writes differs (seed ${SEED})`);
  await client.command('block-export-del', { id: 'fleece-export' });
  await client.command('job-cancel', { id: 'job-fleece' });
  await waitForJobEnd(client, 'job-fleece', 'BLOCK_JOB_CANCELLED');
  await client.command('blockdev-del', { 'node-name': 'fleece' });

  // The writers really changed the disk.
  const finalDisk = join(dir, 'final.raw');
  await readExport(diskUri, finalDisk);
  assert.ok(!expected.equals(await readFile(finalDisk)), 'the disk moved on after the fleecing point in time');
  await client.command('quit');
  assert.equal(await daemon.exited, 0);
  assert.equal((await qemuImgCheck(disk)).code, 0);
  assert.equal(await qemuImgCompare(finalDisk, disk, 'raw', 'qcow2'), true, 'the disk image holds what was last read over NBD');
});
