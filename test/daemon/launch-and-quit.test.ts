/**
 * `livebackup daemon` exporting a writable qcow2, launched and stopped over
 * and over: `quit` as soon as the QMP socket answers (racing the rest of
 * the startup), `quit` after a qemu-io client wrote through the export,
 * and SIGTERM after such a client. Every time the process must exit with
 * status 0, leave no socket file behind, and leave the image clean.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { qemuImgCheck, runOk, skipUnlessTools } from '../helpers/tools.js';
import { tempDir } from '../helpers/temp-dir.js';
import { startDaemon, waitForSocket, type DaemonProcess } from './daemon-process.js';

const skip = skipUnlessTools('qemu-img', 'qemu-io');
const LAUNCHES = 12;
/** Far beyond any normal exit: only a daemon that never exits reaches it. */
const HANG_LIMIT_MS = 30_000;

type StopWay = 'quit at once' | 'quit after a client' | 'SIGTERM after a client';
const STOP_WAYS: readonly StopWay[] = ['quit at once', 'quit after a client', 'SIGTERM after a client'];

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
    if (way === 'quit at once') {
      const qmp = await daemon.connect(qmpSocket);
      await qmp.command('quit');
    } else {
      await waitForSocket(nbdSocket, () => undefined);
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
    if (STOP_WAYS[launch % STOP_WAYS.length] === 'quit at once') continue;
    await runOk('qemu-io', ['-f', 'qcow2', '-c', `read -P ${launch % 256} ${launch * 65536} 64k`, disk]);
  }
});
