/**
 * `livebackup daemon` exporting a writable qcow2, launched and stopped over
 * and over: `quit` as soon as the QMP socket answers (the export already
 * listens then, as with qemu-storage-daemon), `quit` after a qemu-io
 * client wrote through the export, SIGTERM after such a client, and `quit`
 * while a client is still connected (the daemon drops it). Every time the
 * process must exit with status 0, leave no socket file behind, and leave
 * the image clean.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { stat } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { qemuImgCheck, runOk, skipUnlessTools } from '../helpers/tools.js';
import { tempDir } from '../helpers/temp-dir.js';
import { startDaemon, type DaemonProcess } from './daemon-process.js';

const skip = skipUnlessTools('qemu-img', 'qemu-io');
const LAUNCHES = 12;
/** Far beyond any normal exit: only a daemon that never exits reaches it. */
const HANG_LIMIT_MS = 30_000;

type StopWay = 'quit at once' | 'quit after a client' | 'SIGTERM after a client' | 'quit with a client connected';
const STOP_WAYS: readonly StopWay[] = ['quit at once', 'quit after a client', 'SIGTERM after a client', 'quit with a client connected'];
/** Writes through the export happen in these ways. */
const WRITES: ReadonlySet<StopWay> = new Set(['quit after a client', 'SIGTERM after a client']);

/** Connect to a unix socket and wait for the first bytes the server sends (the NBD greeting). */
async function connectedClient(path: string): Promise<Socket> {
  const socket = connect(path);
  await once(socket, 'readable');
  socket.resume(); // keep reading, so the server's close is seen
  return socket;
}

const exists = (path: string): Promise<boolean> => stat(path).then(() => true, () => false);

/** The exit status, or 'still running' when the process has not exited after HANG_LIMIT_MS. */
async function exitStatus(daemon: DaemonProcess): Promise<number | string> {
  const controller = new AbortController();
  try {
    return await Promise.race([
      daemon.exited,
      sleep(HANG_LIMIT_MS, 'still running', { signal: controller.signal }).catch(() => 'still running'),
    ]);
  } finally {
    controller.abort();
  }
}

test('launch and stop a writable qcow2 export many times: the daemon always exits and removes its sockets', { skip, timeout: 300_000 }, async (t) => {
  const dir = await tempDir(t);
  const disk = join(dir, 'disk.qcow2');
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '16M']);
  for (let launch = 0; launch < LAUNCHES; launch++) {
    const way = STOP_WAYS[launch % STOP_WAYS.length]!;
    const qmpSocket = join(dir, `qmp-${launch}.sock`);
    const nbdSocket = join(dir, `nbd-${launch}.sock`);
    const daemon = await startDaemon(t, [
      '--chardev', `socket,id=qmp0,path=${qmpSocket},server=on,wait=off`,
      '--monitor', 'chardev=qmp0',
      '--blockdev', `driver=file,node-name=disk-file,filename=${disk}`,
      '--blockdev', 'driver=qcow2,node-name=disk,file=disk-file',
      '--nbd-server', `addr.type=unix,addr.path=${nbdSocket}`,
      '--export', 'type=nbd,id=export0,node-name=disk,writable=on',
    ], [qmpSocket]);
    const what = `launch ${launch} (${way})`;
    assert.equal(await exists(nbdSocket), true, `${what}: the export listens once the QMP socket does`);
    if (way === 'quit at once') {
      const qmp = await daemon.connect(qmpSocket);
      await qmp.command('quit');
    } else if (way === 'quit with a client connected') {
      const client = await connectedClient(nbdSocket);
      const dropped = once(client, 'close');
      await (await daemon.connect(qmpSocket)).command('quit');
      await dropped;
    } else {
      const pattern = launch % 256;
      await runOk('qemu-io', ['-f', 'raw', '-c', `write -P ${pattern} ${launch * 65536} 64k`, `nbd+unix:///disk?socket=${nbdSocket}`]);
      if (way === 'quit after a client') await (await daemon.connect(qmpSocket)).command('quit');
      else daemon.process.kill('SIGTERM');
    }
    const status = await exitStatus(daemon);
    if (status === 'still running') daemon.process.kill('SIGKILL');
    assert.equal(status, 0, `${what}: exit status; stderr: ${daemon.stderr()}`);
    assert.equal(await exists(qmpSocket), false, `${what}: QMP socket removed`);
    assert.equal(await exists(nbdSocket), false, `${what}: NBD socket removed`);
    const check = await qemuImgCheck(disk);
    assert.equal(check.code, 0, `${what}: qemu-img check: ${check.raw}`);
  }
  // Everything written through the exports is in the image.
  for (let launch = 0; launch < LAUNCHES; launch++) {
    if (!WRITES.has(STOP_WAYS[launch % STOP_WAYS.length]!)) continue;
    await runOk('qemu-io', ['-f', 'qcow2', '-c', `read -P ${launch % 256} ${launch * 65536} 64k`, disk]);
  }
});
