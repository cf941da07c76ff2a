/**
 * Hostile input against the daemon process (a short version: the QMP and
 * NBD layers have their own hostile-input suites): garbage and malformed
 * QMP messages, absurd command arguments, garbage and half handshakes on
 * the NBD socket. The daemon must answer errors, drop bad connections,
 * and keep serving everyone else.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { join } from 'node:path';
import { runOk, skipUnlessTools } from '../helpers/tools.js';
import { tempDir } from '../helpers/temp-dir.js';
import { SeededRandom } from '../helpers/random.js';
import { QmpClient } from '../helpers/qmp-client.js';
import { startDaemon } from './daemon-process.js';

const skip = skipUnlessTools('qemu-img');
const MiB = 1024 * 1024;
const SEED = 7;

/** Connect to a unix socket, write `data`, half-close, read and discard whatever comes back until the peer closes. */
async function sendAndDrop(path: string, data: Uint8Array | string): Promise<void> {
  const socket = connect(path);
  socket.on('error', () => undefined);
  socket.resume();
  await once(socket, 'connect');
  socket.write(data);
  socket.end();
  await once(socket, 'close');
}

test('hostile QMP and NBD input: errors or dropped connections, and the daemon keeps serving', { skip, timeout: 60_000 }, async (t) => {
  const dir = await tempDir(t);
  const qmpSocket = join(dir, 'qmp.sock');
  const nbdSocket = join(dir, 'nbd.sock');
  const daemon = await startDaemon(t, [
    '--blockdev', `null-co,node-name=src,size=${4 * MiB},read-zeroes=on`,
    '--blockdev', `null-co,node-name=tgt,size=${4 * MiB}`,
    '--qmp', `unix:${qmpSocket}`,
    '--nbd-server', `addr.type=unix,addr.path=${nbdSocket}`,
    '--export', 'type=nbd,id=e0,node-name=src',
  ], [qmpSocket, nbdSocket]);
  const random = new SeededRandom(SEED);

  const client = await QmpClient.connect(qmpSocket);
  const cases: Array<[unknown, RegExp]> = [
    ['{"execute": 42}\n', /'execute' must be a string/],
    ['[1, 2, 3]\n', /QMP input must be a JSON object|Expected 'object'/],
    ['{"execute": "blockdev-add", "arguments": {"driver": "qcow2", "node-name": "x", "file": {"driver": "qcow2", "file": {"driver": "qcow2", "file": "x"}}}}\n', /node-name|Cannot find|not found/],
    ['{"execute": "blockdev-backup", "arguments": {"job-id": "../../etc", "device": "src", "target": "tgt", "sync": "full"}}\n', /Invalid job ID/],
    ['{"execute": "blockdev-backup", "arguments": {"job-id": "j", "device": "src", "target": "tgt", "sync": "full", "speed": 1e400}}\n', /speed|number|integer/i],
    ['{"execute": "blockdev-backup", "arguments": {"job-id": "j", "device": "src", "target": "tgt", "sync": "full", "x-perf": {"max-workers": 99999999999}}}\n', /max-workers/],
    ['{"execute": "drive-backup", "arguments": {"job-id": "j", "device": "src", "target": "/proc/self/mem", "sync": "full", "format": "bogus"}}\n', /bogus/],
    ['{"execute": "nbd-server-start", "arguments": {"addr": {"type": "inet", "data": {"host": "127.0.0.1", "port": "99999"}}}}\n', /NBD server already running|port/],
    ['{"execute": "block-export-add", "arguments": {"type": "nbd", "id": "w", "node-name": "src", "name": "' + 'x'.repeat(5000) + '"}}\n', /export name|4096|too long/i],
    ['{"execute": "transaction", "arguments": {"actions": [' + Array.from({ length: 200 }, () => '{"type": "abort", "data": {}}').join(',') + ']}}\n', /Abort action/],
  ];
  for (const [text, expected] of cases) {
    client.sendRaw(text as string);
    const reply = await client.nextReply();
    assert.ok(reply.error, `an error reply for ${(text as string).slice(0, 80)}`);
    assert.match(reply.error.desc, expected, (text as string).slice(0, 80));
  }
  // Garbage, deep nesting and half messages on fresh connections.
  await sendAndDrop(qmpSocket, random.bytes(64 * 1024));
  await sendAndDrop(qmpSocket, `${'['.repeat(100_000)}\n`);
  await sendAndDrop(qmpSocket, '{"execute": "qmp_capabilities"}\n{"execute": "query-named-block-nodes", "argu');
  // NBD: garbage instead of a handshake, and a client that stops half way through option haggling.
  await sendAndDrop(nbdSocket, random.bytes(4096));
  await sendAndDrop(nbdSocket, Buffer.from([0, 0, 0, 3, 0x49, 0x48, 0x41, 0x56, 0x45, 0x4f, 0x50, 0x54, 0, 0, 0, 7, 0xff, 0xff]));

  // Everyone else is still served.
  assert.equal(daemon.process.exitCode, null);
  assert.equal((await client.command('query-block-exports'))[0].id, 'e0');
  const second = await QmpClient.connect(qmpSocket);
  assert.equal((await second.command('query-version')).qemu.major, 7);
  const info = JSON.parse(await runOk('qemu-img', ['info', '--output=json', '-f', 'raw', `nbd+unix:///src?socket=${nbdSocket}`]));
  assert.equal(info['virtual-size'], 4 * MiB);
  await second.command('quit');
  assert.equal(await daemon.exited, 0);
});
