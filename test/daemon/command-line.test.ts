/**
 * `livebackup daemon` started as a process with qemu-storage-daemon style
 * command lines: both --blockdev forms, --chardev + --monitor, --qmp,
 * --nbd-server, --export, --daemonize with --pidfile, bad arguments, and
 * SIGTERM in the middle of a backup. Data goes in and out through real
 * qemu-io / qemu-img over NBD.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { qemuImgCheck, run, runOk, skipUnlessTools } from '../helpers/tools.js';
import { tempDir } from '../helpers/temp-dir.js';
import { SeededRandom } from '../helpers/random.js';
import { QmpClient } from '../helpers/qmp-client.js';
import { CLI_MAIN, processExists, startDaemon } from './daemon-process.js';

const skip = skipUnlessTools('qemu-img', 'qemu-io');
const LIMIT = { skip, timeout: 60_000 };
const KiB = 1024;
const MiB = 1024 * KiB;

const nbdUri = (socket: string, exportName: string): string => `nbd+unix:///${exportName}?socket=${socket}`;

/** Run qemu-io commands on an image (stdin closed after the commands); resolves with its output. */
async function qemuIo(args: string[], commands: string[]): Promise<string> {
  return runOk('qemu-io', [...args, ...commands.flatMap((command) => ['-c', command])]);
}

test('qsd-style command line: keyval and JSON --blockdev, --chardev/--monitor, --nbd-server, --export; qemu-io over NBD', LIMIT, async (t) => {
  const dir = await tempDir(t);
  const disk = join(dir, 'disk.qcow2');
  const plain = join(dir, 'plain.raw');
  const qmpSocket = join(dir, 'qmp.sock');
  const nbdSocket = join(dir, 'nbd.sock');
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', disk, `${16 * MiB}`]);
  await writeFile(plain, new Uint8Array(4 * MiB));
  const random = new SeededRandom(41);
  const patterns = await Promise.all([0, 1, 2].map(async (index) => {
    const path = join(dir, `pattern-${index}.bin`);
    const bytes = random.bytes(64 * KiB);
    await writeFile(path, bytes);
    return { path, bytes };
  }));
  const daemon = await startDaemon(t, [
    '--blockdev', `driver=file,node-name=disk-file,filename=${disk}`,
    '--blockdev', JSON.stringify({ driver: 'qcow2', 'node-name': 'disk', file: 'disk-file' }),
    '--blockdev', `raw,node-name=plain,discard=unmap,file.driver=file,file.filename=${plain}`,
    '--chardev', `socket,id=qmp0,path=${qmpSocket},server=on,wait=off`,
    '--monitor', 'chardev=qmp0',
    '--nbd-server', `addr.type=unix,addr.path=${nbdSocket},max-connections=4`,
    '--export', 'type=nbd,id=exp0,node-name=disk,name=disk,writable=on',
    '--export', 'nbd,id=exp1,node-name=plain',
  ], [qmpSocket, nbdSocket]);
  assert.equal((await stat(qmpSocket)).mode & 0o777, 0o600, 'QMP socket is private to its owner');

  // Writes at aligned and unaligned offsets, from random pattern files.
  const writes = [
    { offset: 0, pattern: patterns[0]! },
    { offset: MiB + 512, pattern: patterns[1]! },
    { offset: 15 * MiB, pattern: patterns[2]! },
  ];
  await qemuIo(['-f', 'raw', nbdUri(nbdSocket, 'disk')], writes.map(({ offset, pattern }) => `write -s ${pattern.path} ${offset} ${64 * KiB}`));
  const expected = new Uint8Array(16 * MiB);
  for (const { offset, pattern } of writes) expected.set(pattern.bytes, offset);

  const readBack = join(dir, 'read-back.raw');
  await runOk('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', nbdUri(nbdSocket, 'disk'), readBack]);
  assert.ok(Buffer.from(expected).equals(await readFile(readBack)), 'what qemu-img reads over NBD is what qemu-io wrote');

  // The export without writable=on is read-only.
  const refused = await run('qemu-io', ['-f', 'raw', '-c', `write -P 1 0 4k`, nbdUri(nbdSocket, 'plain')]);
  assert.match(refused.stdout + refused.stderr, /read-only|Permission denied|not permitted/i);

  const client = await daemon.connect(qmpSocket);
  const exports = await client.command('query-block-exports');
  assert.deepEqual(exports.map((entry: { id: string }) => entry.id).sort(), ['exp0', 'exp1']);
  const nodes = await client.command('query-named-block-nodes');
  const diskInfo = nodes.find((node: { 'node-name': string }) => node['node-name'] === 'disk');
  assert.equal(diskInfo.drv, 'qcow2');
  assert.equal(diskInfo.file, disk);
  assert.equal(diskInfo.image['virtual-size'], 16 * MiB);
  await client.command('quit');
  assert.equal(await daemon.exited, 0);

  const check = await qemuImgCheck(disk);
  assert.equal(check.code, 0, check.raw);
  const converted = join(dir, 'converted.raw');
  await runOk('qemu-img', ['convert', '-O', 'raw', disk, converted]);
  assert.ok(Buffer.from(expected).equals(await readFile(converted)), 'the image holds the writes after quit');
});

test('--qmp unix: shorthand and --option=value spelling', LIMIT, async (t) => {
  const dir = await tempDir(t);
  const qmpSocket = join(dir, 'qmp.sock');
  const daemon = await startDaemon(t, [`--blockdev=null-co,node-name=n0,size=${MiB}`, `--qmp=unix:${qmpSocket}`], [qmpSocket]);
  const client = await daemon.connect(qmpSocket);
  const second = await daemon.connect(qmpSocket);
  assert.equal(client.greeting.QMP.version.qemu.major, 7);
  const nodes = await second.command('query-named-block-nodes', { flat: true });
  assert.deepEqual(nodes.map((node: { 'node-name': string }) => node['node-name']), ['n0']);
  await client.command('quit');
  assert.equal(await daemon.exited, 0);
});

test('bad command lines fail with a message naming the option', LIMIT, async (t) => {
  const dir = await tempDir(t);
  const cases: Array<{ args: string[]; code: number; message: RegExp }> = [
    { args: ['--blockdev', 'driver=file'], code: 2, message: /--blockdev driver=file: Parameter 'filename' is missing/ },
    { args: ['--blockdev', 'null-co,node-name=n,size=big'], code: 2, message: /--blockdev .*'size'/ },
    { args: ['--bogus'], code: 2, message: /--bogus: unknown option/ },
    { args: ['--monitor', 'chardev=nope'], code: 2, message: /chardev 'nope' not found/ },
    { args: ['--chardev', 'stdio,id=c'], code: 2, message: /backend 'stdio' is not supported/ },
    { args: ['--blockdev'], code: 2, message: /--blockdev: requires an argument/ },
    { args: ['--blockdev', `driver=file,node-name=f,filename=${join(dir, 'missing.img')}`], code: 1, message: /--blockdev .*missing\.img/ },
    { args: ['--blockdev', 'null-co,node-name=n', '--export', 'type=nbd,id=e,node-name=n'], code: 1, message: /--export .*NBD server not running/ },
    { args: ['--blockdev', 'vmdk,node-name=v,file=x'], code: 2, message: /Parameter 'driver' does not accept value 'vmdk'/ },
  ];
  const results = await Promise.all(cases.map(({ args }) => run(process.execPath, [CLI_MAIN, 'daemon', ...args])));
  cases.forEach(({ args, code, message }, index) => {
    assert.equal(results[index]!.code, code, `${args.join(' ')}: ${results[index]!.stderr}`);
    assert.match(results[index]!.stderr, message, args.join(' '));
  });
  const help = await run(process.execPath, [CLI_MAIN, 'daemon', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--blockdev/);
});

test('--daemonize --pidfile: the parent exits 0 once the sockets listen; SIGTERM ends the child', LIMIT, async (t) => {
  const dir = await tempDir(t);
  const qmpSocket = join(dir, 'qmp.sock');
  const nbdSocket = join(dir, 'nbd.sock');
  const pidFile = join(dir, 'daemon.pid');
  const parent = await run(process.execPath, [
    CLI_MAIN, 'daemon', '--daemonize', '--pidfile', pidFile,
    '--blockdev', `null-co,node-name=n0,size=${MiB},read-zeroes=on`,
    '--chardev', `socket,id=m,path=${qmpSocket},server=on,wait=off`, '--monitor', 'm',
    '--nbd-server', `addr.type=unix,addr.path=${nbdSocket}`,
    '--export', 'type=nbd,id=e0,node-name=n0',
  ]);
  assert.equal(parent.code, 0, parent.stderr);
  const pid = Number((await readFile(pidFile, 'utf8')).trim());
  t.after(() => {
    if (processExists(pid)) process.kill(pid, 'SIGKILL');
  });
  assert.ok(Number.isInteger(pid) && pid > 0 && processExists(pid), 'the pid file names a running process');
  // Already listening when the parent exited: no waiting here.
  assert.ok((await stat(qmpSocket)).isSocket());
  assert.ok((await stat(nbdSocket)).isSocket());
  const client = await QmpClient.connect(qmpSocket);
  assert.deepEqual((await client.command('query-block-exports')).map((entry: { id: string }) => entry.id), ['e0']);
  const info = await runOk('qemu-img', ['info', '--output=json', '-f', 'raw', nbdUri(nbdSocket, 'n0')]);
  assert.equal(JSON.parse(info)['virtual-size'], MiB);

  process.kill(pid, 'SIGTERM');
  await client.waitForEvent('BLOCK_EXPORT_DELETED');
  await client.closed;
  while (processExists(pid)) await sleep(10);
  await assert.rejects(stat(pidFile), 'the pid file is removed at exit');

  const failing = await run(process.execPath, [CLI_MAIN, 'daemon', '--daemonize', '--blockdev', `driver=file,node-name=f,filename=${join(dir, 'nope.img')}`]);
  assert.equal(failing.code, 1);
  assert.match(failing.stderr, /nope\.img/, 'the parent reports why the child could not start');
});

test('SIGTERM during a backup: events reach the client, source and target pass qemu-img check', LIMIT, async (t) => {
  const dir = await tempDir(t);
  const disk = join(dir, 'disk.qcow2');
  const target = join(dir, 'target.qcow2');
  const qmpSocket = join(dir, 'qmp.sock');
  const nbdSocket = join(dir, 'nbd.sock');
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', disk, `${32 * MiB}`]);
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', target, `${32 * MiB}`]);
  await qemuIo(['-f', 'qcow2', disk], ['write -P 0x5a 0 8M', 'write -P 0xa5 20M 4M']);
  const daemon = await startDaemon(t, [
    '--blockdev', `qcow2,node-name=disk,file.driver=file,file.filename=${disk}`,
    '--blockdev', `qcow2,node-name=target,file.driver=file,file.filename=${target}`,
    '--qmp', `unix:${qmpSocket}`,
    '--nbd-server', `addr.type=unix,addr.path=${nbdSocket}`,
    '--export', 'type=nbd,id=disk-export,node-name=disk,writable=on',
  ], [qmpSocket, nbdSocket]);
  const client = await daemon.connect(qmpSocket);
  await client.command('blockdev-backup', { 'job-id': 'job0', device: 'disk', target: 'target', sync: 'full', speed: 2 * MiB });
  // A guest write meets copy-before-write while the job is throttled.
  await qemuIo(['-f', 'raw', nbdUri(nbdSocket, 'disk')], ['write -P 0x11 4M 1M']);
  assert.equal((await client.command('query-block-jobs'))[0].status, 'running');

  daemon.process.kill('SIGTERM');
  await client.waitForEvent('BLOCK_EXPORT_DELETED', (event) => event.data.id === 'disk-export');
  const cancelled = await client.waitForEvent('BLOCK_JOB_CANCELLED');
  assert.equal(cancelled.data.device, 'job0');
  assert.ok(cancelled.data.offset < cancelled.data.len);
  await client.waitForEvent('JOB_STATUS_CHANGE', (event) => event.data.status === 'null');
  await client.closed;
  assert.equal(await daemon.exited, 0);

  for (const image of [disk, target]) {
    const check = await qemuImgCheck(image);
    assert.equal(check.code, 0, `${image}: ${check.raw}`);
    const info = JSON.parse(await runOk('qemu-img', ['info', '--output=json', image]));
    assert.equal(info['dirty-flag'], false, `${image} was closed cleanly`);
  }
});

/** A TCP port that was free a moment ago on 127.0.0.1. */
async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

test('TCP: --chardev host/port monitor and --nbd-server inet, on 127.0.0.1 when no host is given', LIMIT, async (t) => {
  const [qmpPort, nbdPort] = [await freePort(), await freePort()];
  const dir = await tempDir(t);
  const readySocket = join(dir, 'ready.sock');
  const daemon = await startDaemon(t, [
    '--blockdev', `null-co,node-name=n0,size=${2 * MiB},read-zeroes=on`,
    '--chardev', `socket,id=tcp,port=${qmpPort},server=on,wait=off`, '--monitor', 'chardev=tcp',
    '--nbd-server', `addr.type=inet,addr.host=,addr.port=${nbdPort}`,
    '--export', 'type=nbd,id=e0,node-name=n0',
    // Listed last: once it exists, every listener before it is up.
    '--qmp', `unix:${readySocket}`,
  ], [readySocket]);
  const client = await QmpClient.connect({ port: qmpPort, host: '127.0.0.1' });
  assert.equal((await client.command('query-block-exports'))[0].id, 'e0');
  const info = JSON.parse(await runOk('qemu-img', ['info', '--output=json', '-f', 'raw', `nbd://127.0.0.1:${nbdPort}/n0`]));
  assert.equal(info['virtual-size'], 2 * MiB);
  await client.command('quit');
  assert.equal(await daemon.exited, 0);
});
