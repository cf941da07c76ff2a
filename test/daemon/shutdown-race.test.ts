/**
 * StorageDaemon.shutdown() while state is still being built, in-process:
 * an NBD server start, a node opening and a QMP nbd-server-start still in
 * flight are finished first and then torn down with everything else (no
 * listener or image is left open, the unix socket file is removed), and
 * whatever comes after shutdown began is refused with INVALID_STATE.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../helpers/temp-dir.js';
import { QmpClient } from '../helpers/qmp-client.js';
import { StorageDaemon, createImage } from '../../src/index.js';

const MiB = 1024 * 1024;
const exists = (path: string): Promise<boolean> => stat(path).then(() => true, () => false);

test('shutdown during startup: the option in flight finishes, then everything it built is closed', { timeout: 30_000 }, async (t) => {
  const dir = await tempDir(t);
  const diskPath = join(dir, 'disk.qcow2');
  const nbdSocket = join(dir, 'nbd.sock');
  await createImage(diskPath, 'qcow2', 8 * MiB);
  const daemon = new StorageDaemon();
  t.after(() => daemon.shutdown());

  const opening = daemon.addBlockdev({ driver: 'qcow2', 'node-name': 'disk', file: { driver: 'file', filename: diskPath } });
  const listening = daemon.startNbdServer({ addr: { type: 'unix', path: nbdSocket } });
  const stopped = daemon.shutdown();
  assert.equal(daemon.shuttingDown, true);
  await opening;
  await listening;
  await stopped;
  assert.equal(daemon.exports.serverRunning, false, 'the NBD server started in flight is stopped');
  assert.equal(await exists(nbdSocket), false, 'its unix socket file is removed');
  assert.deepEqual(daemon.graph.list(), [], 'the node opened in flight is closed');

  await assert.rejects(daemon.addBlockdev({ driver: 'null-co', 'node-name': 'late', size: MiB }), { code: 'INVALID_STATE', message: /shutting down/ });
  await assert.rejects(daemon.startNbdServer({ addr: { type: 'unix', path: nbdSocket } }), { code: 'INVALID_STATE' });
  assert.equal(await exists(nbdSocket), false);
});

test('quit racing another client\'s nbd-server-start: the server is either never started or started and stopped; no socket is left', { timeout: 30_000 }, async (t) => {
  const dir = await tempDir(t);
  const nbdSocket = join(dir, 'nbd.sock');
  const qmpSocket = join(dir, 'qmp.sock');
  const daemon = new StorageDaemon();
  t.after(() => daemon.shutdown());
  await daemon.qmp.listenUnix(qmpSocket);
  const starter = await QmpClient.connect(qmpSocket);
  const quitter = await QmpClient.connect(qmpSocket);
  const start = starter.execute('nbd-server-start', { addr: { type: 'unix', data: { path: nbdSocket } } });
  await quitter.command('quit');
  await daemon.closed;
  const reply = await start;
  if (reply.error) assert.match(reply.error.desc, /shutting down/, 'refused only because quit came first');
  assert.equal(daemon.exports.serverRunning, false);
  assert.equal(await exists(nbdSocket), false, 'the NBD socket file is removed');
  assert.equal(await exists(qmpSocket), false, 'the QMP socket file is removed');
});
