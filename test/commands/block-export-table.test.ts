/**
 * BlockExportTable (the daemon's NBD server and exports): closing it while
 * the server is still starting leaves no listener and no unix socket file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { tempDir } from '../helpers/temp-dir.js';
import { BlockExportTable } from '../../src/commands/block-export-table.js';

const exists = (path: string): Promise<boolean> => stat(path).then(() => true, () => false);

/** The error code of connecting to a unix socket, or 'connected'. */
function tryConnect(path: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

test('close() while startServer() is still binding: the start is refused and nothing listens', { timeout: 30_000 }, async (t) => {
  const dir = await tempDir(t);
  for (let round = 0; round < 5; round++) {
    const path = join(dir, `nbd-${round}.sock`);
    const table = new BlockExportTable(() => undefined);
    const starting = table.startServer({ type: 'unix', path });
    await table.close();
    await assert.rejects(starting, { code: 'INVALID_STATE', message: /closed/ });
    assert.equal(table.serverRunning, false);
    assert.equal(await exists(path), false, 'no socket file is left');
    assert.notEqual(await tryConnect(path), 'connected', 'nobody listens');
  }
});

test('a server started after an earlier one was closed mid-start keeps running', { timeout: 30_000 }, async (t) => {
  const dir = await tempDir(t);
  const table = new BlockExportTable(() => undefined);
  const first = table.startServer({ type: 'unix', path: join(dir, 'first.sock') });
  await table.close();
  const second = join(dir, 'second.sock');
  await table.startServer({ type: 'unix', path: second });
  await assert.rejects(first, { code: 'INVALID_STATE' });
  assert.equal(table.serverRunning, true, 'the failed first start does not forget the second server');
  assert.equal(await tryConnect(second), 'connected');
  await table.close();
  assert.equal(await exists(second), false);
});
