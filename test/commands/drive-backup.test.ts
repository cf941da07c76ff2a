/**
 * drive-backup against qemu-storage-daemon 7.2: the same requests (sync
 * full, top and none with mode absolute-paths, mode existing, a raw
 * target) played against both, each in its own folder. Replies and job
 * events must match, the images each creates must look alike to
 * `qemu-img info`, and the copies must hold the source's data.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { qemuImgCompare, runOk, skipUnlessTools } from '../helpers/tools.js';
import { tempDir } from '../helpers/temp-dir.js';
import { startQsd } from '../helpers/qsd.js';
import { startDaemon } from '../daemon/daemon-process.js';
import { playScenario, type ScenarioStep } from './transcript.js';

const skip = skipUnlessTools('qemu-storage-daemon', 'qemu-img', 'qemu-io');
const MiB = 1024 * 1024;

const steps = (dir: string): ScenarioStep[] => {
  const backup = (job: string, file: string, extra: Record<string, unknown>): ScenarioStep => ({
    execute: 'drive-backup',
    arguments: { 'job-id': job, device: 'disk', target: join(dir, file), ...extra },
  });
  const gone = (job: string): ScenarioStep => ({ waitFor: 'JOB_STATUS_CHANGE', status: 'null', id: job });
  return [
    { execute: 'qmp_capabilities' },
    backup('full', 'full.qcow2', { format: 'qcow2', sync: 'full' }),
    gone('full'),
    backup('top', 'top.qcow2', { format: 'qcow2', sync: 'top' }),
    gone('top'),
    backup('none', 'none.qcow2', { sync: 'none' }),
    { execute: 'query-block-jobs' },
    { execute: 'job-cancel', arguments: { id: 'none' } },
    gone('none'),
    backup('existing', 'missing.qcow2', { sync: 'full', mode: 'existing' }),
    backup('existing', 'full.qcow2', { sync: 'full', mode: 'existing', format: 'qcow2' }),
    gone('existing'),
    backup('raw', 'copy.raw', { format: 'raw', sync: 'full' }),
    gone('raw'),
    { execute: 'query-block-jobs' },
  ];
};

/** `qemu-img info` of an image with the folder and host allocation normalised away. */
async function describe(path: string, dir: string): Promise<unknown> {
  const info = JSON.parse((await runOk('qemu-img', ['info', '-U', '--output=json', path])).split(dir).join('<dir>'));
  delete info['actual-size'];
  return info;
}

test('drive-backup: same replies, events and created images as qemu-storage-daemon', { skip, timeout: 60_000 }, async (t) => {
  const dir = await tempDir(t);
  const base = join(dir, 'base.qcow2');
  const disk = join(dir, 'disk.qcow2');
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', base, `${8 * MiB}`]);
  await runOk('qemu-io', ['-f', 'qcow2', base, '-c', 'write -P 0x11 0 2M', '-c', 'write -P 0x22 6M 1M']);
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', disk]);
  await runOk('qemu-io', ['-f', 'qcow2', disk, '-c', 'write -P 0x33 1M 2M', '-c', 'write -z 7M 512k']);
  const args = ['--blockdev', `qcow2,node-name=disk,file.driver=file,file.filename=${disk}`];
  const theirDir = join(dir, 'qsd');
  const ourDir = join(dir, 'livebackup');
  await mkdir(theirDir);
  await mkdir(ourDir);

  const qsd = await startQsd(t, args);
  const theirs = await playScenario(qsd.socketPaths[0]!, steps(theirDir));
  await qsd.stop();
  const ourSocket = join(ourDir, 'qmp.sock');
  const daemon = await startDaemon(t, [...args, '--qmp', `unix:${ourSocket}`], [ourSocket]);
  const ours = await playScenario(ourSocket, steps(ourDir));
  await daemon.stop();

  const normalized = (transcript: unknown, folder: string) => JSON.parse(JSON.stringify(transcript).split(folder).join('<dir>'));
  assert.deepEqual(normalized(ours, ourDir), normalized(theirs, theirDir));
  for (const image of ['full.qcow2', 'top.qcow2', 'none.qcow2', 'copy.raw']) {
    assert.deepEqual(await describe(join(ourDir, image), ourDir), await describe(join(theirDir, image), theirDir), image);
  }
  for (const image of ['full.qcow2', 'top.qcow2', 'copy.raw']) {
    assert.equal(await qemuImgCompare(disk, join(ourDir, image)), true, `${image} holds the disk's data`);
  }
});
