/**
 * The same QMP conversations against qemu-storage-daemon 7.2 and against
 * `livebackup daemon`, both started with the same command line: replies
 * (return values, error classes and texts) and every job's event sequence
 * must be equal after normalisation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { runOk, skipUnlessTools } from '../helpers/tools.js';
import { tempDir } from '../helpers/temp-dir.js';
import { startQsd } from '../helpers/qsd.js';
import { startDaemon } from '../daemon/daemon-process.js';
import { playScenario, type ScenarioStep } from './transcript.js';

const skip = skipUnlessTools('qemu-storage-daemon', 'qemu-img', 'qemu-io');
const LIMIT = { skip, timeout: 60_000 };
const MiB = 1024 * 1024;

const NULL_NODES = ['src', 'tgt', 'src2', 'tgt2'].flatMap((name) => ['--blockdev', `null-co,node-name=${name},size=${64 * MiB}`]);
const SMALL_NODE = ['--blockdev', `null-co,node-name=small,size=${MiB}`];

/**
 * Play `steps` against qsd and livebackup started with `args`; assert equal
 * transcripts (only the replies with `repliesOnly`: qsd drains running jobs
 * around some graph commands, which adds paused/running pairs to their events).
 */
async function compareWithQsd(t: TestContext, args: readonly string[], steps: readonly ScenarioStep[], options: { repliesOnly?: boolean } = {}): Promise<void> {
  const qsd = await startQsd(t, args);
  const ourSocket = join(qsd.dir, 'livebackup-qmp.sock');
  await startDaemon(t, [...args, '--chardev', `socket,id=lbqmp,path=${ourSocket},server=on,wait=off`, '--monitor', 'chardev=lbqmp'], [ourSocket]);
  const theirs = await playScenario(qsd.socketPaths[0]!, steps);
  const ours = await playScenario(ourSocket, steps);
  if (options.repliesOnly) assert.deepEqual(ours.replies, theirs.replies);
  else assert.deepEqual(ours, theirs);
}

const negotiate: ScenarioStep = { execute: 'qmp_capabilities' };
const backup = (extra: Record<string, unknown> = {}): ScenarioStep => ({
  execute: 'blockdev-backup',
  arguments: { 'job-id': 'j1', device: 'src', target: 'tgt', sync: 'full', ...extra },
});
const status = (value: string, options: { id?: string; nth?: number } = {}): ScenarioStep => ({ waitFor: 'JOB_STATUS_CHANGE', status: value, ...options });

test('backup start to completion', LIMIT, async (t) => {
  await compareWithQsd(t, NULL_NODES, [
    negotiate,
    backup(),
    status('null'),
    { execute: 'query-block-jobs' },
    { execute: 'query-jobs' },
  ]);
});

test('cancel of a throttled backup', LIMIT, async (t) => {
  await compareWithQsd(t, NULL_NODES, [
    negotiate,
    backup({ speed: MiB }),
    { execute: 'query-block-jobs' },
    { execute: 'block-job-cancel', arguments: { device: 'j1' } },
    status('null'),
    { execute: 'query-block-jobs' },
  ]);
});

test('pause and resume', LIMIT, async (t) => {
  await compareWithQsd(t, NULL_NODES, [
    negotiate,
    backup({ speed: MiB }),
    { execute: 'block-job-pause', arguments: { device: 'j1' } },
    // The first 'paused' is the drained start every new backup job goes through.
    status('paused', { nth: 2 }),
    { execute: 'query-block-jobs' },
    { execute: 'block-job-pause', arguments: { device: 'j1' } },
    { execute: 'block-job-resume', arguments: { device: 'j1' } },
    { execute: 'job-resume', arguments: { id: 'j1' } },
    { execute: 'block-job-set-speed', arguments: { device: 'j1', speed: 0 } },
    status('null'),
  ]);
});

test('auto-dismiss=false waits in concluded for job-dismiss', LIMIT, async (t) => {
  await compareWithQsd(t, NULL_NODES, [
    negotiate,
    backup({ 'auto-dismiss': false }),
    status('concluded'),
    { execute: 'query-jobs' },
    { execute: 'query-block-jobs' },
    { execute: 'job-dismiss', arguments: { id: 'j1' } },
    status('null'),
    { execute: 'query-jobs' },
  ]);
});

test('verbs in the wrong state, auto-finalize=false', LIMIT, async (t) => {
  await compareWithQsd(t, NULL_NODES, [
    negotiate,
    backup({ 'auto-finalize': false, 'auto-dismiss': false }),
    { waitFor: 'BLOCK_JOB_PENDING' },
    { execute: 'job-dismiss', arguments: { id: 'j1' } },
    { execute: 'block-job-complete', arguments: { device: 'j1' } },
    { execute: 'job-pause', arguments: { id: 'j1' } },
    { execute: 'block-job-finalize', arguments: { id: 'j1' } },
    status('concluded'),
    { execute: 'job-cancel', arguments: { id: 'j1' } },
    { execute: 'block-job-dismiss', arguments: { id: 'j1' } },
    status('null'),
    { execute: 'job-finalize', arguments: { id: 'j1' } },
  ]);
});

test('unknown command, missing and bad arguments, unknown devices and jobs', LIMIT, async (t) => {
  await compareWithQsd(t, [...NULL_NODES, ...SMALL_NODE], [
    { execute: 'query-block-jobs' },
    negotiate,
    negotiate,
    { execute: 'no-such-command' },
    { execute: 'blockdev-backup', arguments: { 'job-id': 'j1', device: 'src', sync: 'full' } },
    { execute: 'blockdev-backup', arguments: { 'job-id': 'j1', device: 'src', target: 'tgt', sync: 'full', bogus: 1 } },
    { execute: 'blockdev-backup', arguments: { 'job-id': 'j1', device: 'src', target: 'tgt', sync: 'sideways' } },
    { execute: 'blockdev-backup', arguments: { 'job-id': 'j1', device: 'src', target: 'tgt', sync: 'full', speed: 'fast' } },
    { execute: 'blockdev-backup', arguments: { 'job-id': 'j1', device: 'nope', target: 'tgt', sync: 'full' } },
    { execute: 'blockdev-backup', arguments: { 'job-id': 'j1', device: 'src', target: 'nope', sync: 'full' } },
    { execute: 'blockdev-backup', arguments: { 'job-id': 'j1', device: 'src', target: 'src', sync: 'full' } },
    { execute: 'blockdev-backup', arguments: { 'job-id': 'j1', device: 'src', target: 'small', sync: 'full' } },
    { execute: 'blockdev-backup', arguments: { 'job-id': 'j1', device: 'src', target: 'tgt', sync: 'incremental' } },
    { execute: 'blockdev-backup', arguments: { 'job-id': 'j1', device: 'src', target: 'tgt', sync: 'full', 'x-perf': { 'max-workers': 0 } } },
    { execute: 'blockdev-backup', arguments: { 'job-id': 'j1', device: 'src', target: 'tgt', sync: 'full', 'x-perf': { 'max-chunk': 1000 } } },
    { execute: 'blockdev-backup', arguments: { 'job-id': '1bad', device: 'src', target: 'tgt', sync: 'full' } },
    { execute: 'block-job-pause', arguments: { device: 'nope' } },
    { execute: 'block-job-cancel', arguments: { device: 'nope' } },
    { execute: 'block-job-set-speed', arguments: { device: 'nope', speed: 1 } },
    { execute: 'block-job-dismiss', arguments: { id: 'nope' } },
    { execute: 'job-pause', arguments: { id: 'nope' } },
    { execute: 'job-dismiss', arguments: { id: 'nope' } },
    { execute: 'blockdev-del', arguments: { 'node-name': 'nope' } },
    { execute: 'blockdev-add', arguments: { driver: 'null-co', 'node-name': 'src', size: MiB } },
    { execute: 'blockdev-add', arguments: { driver: 'null-co', 'node-name': 'x1', size: '12' } },
    { execute: 'blockdev-add', arguments: { driver: 'raw', 'node-name': 'x2', file: 'nope' } },
    { execute: 'blockdev-add', arguments: { driver: 'file', 'node-name': 'x3' } },
    { execute: 'blockdev-add', arguments: { driver: 'null-co', size: MiB } },
    { execute: 'blockdev-add', arguments: { driver: 'null-co', 'node-name': '0bad' } },
    { execute: 'blockdev-backup', arguments: { device: 'src', target: 'tgt', sync: 'full' } },
    { execute: 'nbd-server-stop' },
    { execute: 'block-export-add', arguments: { type: 'nbd', id: 'e1', 'node-name': 'src' } },
    { execute: 'query-block-exports' },
    { execute: 'query-version' },
  ]);
});

test('transaction: a bad action starts nothing; a good one starts every job', LIMIT, async (t) => {
  const good = (id: string, device: string, target: string) => ({ type: 'blockdev-backup', data: { 'job-id': id, device, target, sync: 'full', speed: MiB } });
  await compareWithQsd(t, NULL_NODES, [
    negotiate,
    { execute: 'transaction', arguments: { actions: [good('j1', 'src', 'tgt'), { type: 'blockdev-backup', data: { 'job-id': 'j2', device: 'src2', target: 'nope', sync: 'full' } }] } },
    { execute: 'transaction', arguments: { actions: [good('j1', 'src', 'tgt'), { type: 'bogus', data: {} }] } },
    { execute: 'transaction', arguments: { actions: [good('j1', 'src', 'tgt'), good('j1', 'src2', 'tgt2')] } },
    { execute: 'query-jobs' },
    { execute: 'transaction', arguments: { actions: [] } },
    { execute: 'transaction', arguments: { actions: [good('j1', 'src', 'tgt'), good('j2', 'src2', 'tgt2')] } },
    { execute: 'query-jobs' },
    { execute: 'job-cancel', arguments: { id: 'j1' } },
    status('null', { id: 'j1', nth: 3 }),
    { execute: 'job-cancel', arguments: { id: 'j2' } },
    status('null', { id: 'j2' }),
  ]);
});

test('exports: nbd-server-start/stop, block-export-add/del, nbd-server-add/remove, blockdev-del of an exported node', LIMIT, async (t) => {
  const dir = await tempDir(t);
  const nbdSocket = join(dir, 'nbd.sock');
  await compareWithQsd(t, NULL_NODES, [
    negotiate,
    { execute: 'block-export-add', arguments: { type: 'nbd', id: 'e1', 'node-name': 'src' } },
    { execute: 'nbd-server-start', arguments: { addr: { type: 'unix', data: { path: nbdSocket } } } },
    { execute: 'nbd-server-start', arguments: { addr: { type: 'unix', data: { path: nbdSocket } } } },
    { execute: 'block-export-add', arguments: { type: 'nbd', id: 'e1', 'node-name': 'src' } },
    { execute: 'block-export-add', arguments: { type: 'nbd', id: 'e1', 'node-name': 'tgt' } },
    { execute: 'block-export-add', arguments: { type: 'nbd', id: 'e2', 'node-name': 'nope' } },
    { execute: 'block-export-add', arguments: { type: 'nbd', id: 'e2', 'node-name': 'tgt', name: 'other', writable: true } },
    { execute: 'nbd-server-add', arguments: { device: 'src2', name: 'legacy' } },
    { execute: 'query-block-exports' },
    { execute: 'blockdev-del', arguments: { 'node-name': 'src' } },
    { execute: 'block-export-del', arguments: { id: 'e1' } },
    { execute: 'block-export-del', arguments: { id: 'e1' } },
    { execute: 'nbd-server-remove', arguments: { name: 'legacy' } },
    { execute: 'nbd-server-remove', arguments: { name: 'legacy' } },
    { execute: 'blockdev-del', arguments: { 'node-name': 'src' } },
    { execute: 'query-block-exports' },
    { execute: 'nbd-server-stop' },
    { execute: 'query-block-exports' },
    { execute: 'nbd-server-stop' },
  ]);
});

test('blockdev-add and query-named-block-nodes: file, raw, qcow2 with backing, null-co, nested and by-name children', LIMIT, async (t) => {
  const dir = await tempDir(t);
  const base = join(dir, 'base.qcow2');
  const top = join(dir, 'top.qcow2');
  const other = join(dir, 'other.qcow2');
  const plain = join(dir, 'plain.raw');
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', base, `${4 * MiB}`]);
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', top]);
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', other]);
  await runOk('qemu-img', ['create', '-q', '-f', 'raw', plain, `${4 * MiB}`]);
  await compareWithQsd(t, ['--blockdev', `driver=file,node-name=top-file,filename=${top}`, '--blockdev', 'qcow2,node-name=top,file=top-file'], [
    negotiate,
    { execute: 'blockdev-add', arguments: { driver: 'raw', 'node-name': 'plain', file: { driver: 'file', filename: plain } } },
    { execute: 'blockdev-add', arguments: { driver: 'null-co', 'node-name': 'null0', size: 4 * MiB } },
    { execute: 'blockdev-add', arguments: { driver: 'qcow2', 'node-name': 'base', 'read-only': true, file: { driver: 'file', 'node-name': 'base-file', filename: base } } },
    { execute: 'blockdev-add', arguments: { driver: 'qcow2', 'node-name': 'nobacking', 'read-only': true, backing: null, file: { driver: 'file', filename: other, 'read-only': true } } },
    { execute: 'query-named-block-nodes' },
    { execute: 'query-named-block-nodes', arguments: { flat: true } },
    { execute: 'blockdev-del', arguments: { 'node-name': 'base-file' } },
    { execute: 'blockdev-del', arguments: { 'node-name': 'base' } },
    { execute: 'blockdev-del', arguments: { 'node-name': 'top-file' } },
    { execute: 'blockdev-del', arguments: { 'node-name': 'nobacking' } },
    { execute: 'blockdev-del', arguments: { 'node-name': 'null0' } },
    { execute: 'query-named-block-nodes', arguments: { flat: true } },
  ]);
});

test('write errors on a blkdebug target (keyval lists on the command line): report and stop policies', LIMIT, async (t) => {
  const dir = await tempDir(t);
  const source = join(dir, 'source.raw');
  const target = join(dir, 'target.raw');
  await runOk('qemu-img', ['create', '-q', '-f', 'raw', source, `${4 * MiB}`]);
  await runOk('qemu-img', ['create', '-q', '-f', 'raw', target, `${4 * MiB}`]);
  const blkdebug = (name: string, once: boolean) => [
    '--blockdev',
    `driver=raw,node-name=${name},file.driver=blkdebug,file.image.driver=file,file.image.filename=${target},` +
      `file.inject-error.0.event=write_aio,file.inject-error.0.errno=5,file.inject-error.0.once=${once ? 'on' : 'off'}`,
  ];
  await compareWithQsd(t, ['--blockdev', `driver=file,node-name=src,filename=${source}`, ...blkdebug('failing', false)], [
    negotiate,
    { execute: 'blockdev-backup', arguments: { 'job-id': 'j1', device: 'src', target: 'failing', sync: 'full', 'on-target-error': 'report' } },
    status('null'),
  ]);
  await compareWithQsd(t, ['--blockdev', `driver=file,node-name=src,filename=${source}`, ...blkdebug('flaky', true)], [
    negotiate,
    { execute: 'blockdev-backup', arguments: { 'job-id': 'j1', device: 'src', target: 'flaky', sync: 'full', 'on-target-error': 'stop' } },
    { waitFor: 'BLOCK_JOB_ERROR' },
    status('paused', { nth: 2 }),
    { execute: 'query-block-jobs' },
    { execute: 'job-dismiss', arguments: { id: 'j1' } },
    { execute: 'job-resume', arguments: { id: 'j1' } },
    status('null'),
  ]);
});

/** A qemu-io process connected read-only to an NBD export, kept open until `close()`. */
async function connectedReader(t: TestContext, uri: string): Promise<{ close(): Promise<void> }> {
  const reader = spawn('qemu-io', ['-r', '-f', 'raw', uri], { stdio: ['pipe', 'pipe', 'ignore'] });
  const exited = once(reader, 'exit');
  t.after(async () => {
    if (reader.exitCode === null) reader.kill();
    await exited;
  });
  let output = '';
  const firstRead = new Promise<void>((resolve) => {
    reader.stdout!.setEncoding('utf8').on('data', (text: string) => {
      output += text;
      if (output.includes('read 512/512')) resolve();
    });
  });
  reader.stdin!.write('read 0 512\n');
  await firstRead;
  return {
    close: async () => {
      reader.stdin!.end();
      await exited;
    },
  };
}

test('block-export-del while a client is connected: safe mode refuses, hard mode disconnects', LIMIT, async (t) => {
  const steps: ScenarioStep[] = [
    negotiate,
    { execute: 'block-export-del', arguments: { id: 'e1' } },
    { execute: 'nbd-server-remove', arguments: { name: 'src' } },
    { execute: 'query-block-exports' },
    { execute: 'block-export-del', arguments: { id: 'e1', mode: 'hard' } },
    { execute: 'query-block-exports' },
  ];
  const play = async (qmpSocket: string, nbdSocket: string) => {
    const reader = await connectedReader(t, `nbd+unix:///src?socket=${nbdSocket}`);
    const transcript = await playScenario(qmpSocket, steps);
    await reader.close();
    return transcript;
  };
  const dir = await tempDir(t);
  const exportArgs = (nbdSocket: string) => [...NULL_NODES, '--nbd-server', `addr.type=unix,addr.path=${nbdSocket}`, '--export', 'type=nbd,id=e1,node-name=src'];
  const qsd = await startQsd(t, exportArgs(join(dir, 'qsd-nbd.sock')));
  const theirs = await play(qsd.socketPaths[0]!, join(dir, 'qsd-nbd.sock'));
  const ourSocket = join(dir, 'qmp.sock');
  await startDaemon(t, [...exportArgs(join(dir, 'nbd.sock')), '--qmp', `unix:${ourSocket}`], [ourSocket]);
  const ours = await play(ourSocket, join(dir, 'nbd.sock'));
  assert.deepEqual(ours, theirs);
});

test('nodes used by a running job: blockdev-del and a second backup are refused as qsd refuses them', LIMIT, async (t) => {
  const dir = await tempDir(t);
  const image = join(dir, 'disk.qcow2');
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', image, `${64 * MiB}`]);
  // Data, so that both throttled jobs are still copying while the commands run.
  await runOk('qemu-io', ['-f', 'qcow2', image, '-c', 'write -P 0x42 0 16M']);
  const args = [...NULL_NODES, '--blockdev', `driver=file,node-name=disk-file,filename=${image}`, '--blockdev', 'qcow2,node-name=disk,file=disk-file'];
  await compareWithQsd(t, args, [
    negotiate,
    { execute: 'blockdev-backup', arguments: { 'job-id': 'j1', device: 'disk', target: 'tgt', sync: 'full', speed: MiB } },
    { execute: 'blockdev-del', arguments: { 'node-name': 'disk' } },
    { execute: 'blockdev-del', arguments: { 'node-name': 'disk-file' } },
    { execute: 'blockdev-del', arguments: { 'node-name': 'tgt' } },
    { execute: 'blockdev-backup', arguments: { 'job-id': 'j2', device: 'src2', target: 'tgt', sync: 'full' } },
    { execute: 'blockdev-backup', arguments: { 'job-id': 'j2', device: 'tgt', target: 'tgt2', sync: 'full' } },
    { execute: 'blockdev-backup', arguments: { 'job-id': 'j1', device: 'src2', target: 'tgt2', sync: 'full' } },
    { execute: 'job-cancel', arguments: { id: 'j1' } },
    { waitFor: 'JOB_STATUS_CHANGE', status: 'null', id: 'j1' },
    { execute: 'blockdev-del', arguments: { 'node-name': 'tgt' } },
    { execute: 'blockdev-del', arguments: { 'node-name': 'disk' } },
  ], { repliesOnly: true });
});
