/**
 * The security guarantees SECURITY.md lists, each checked against the real
 * servers and images: socket permissions, loopback defaults, read-only
 * exports, exports confined to their node, backing files named inside
 * untrusted images, and the limits that keep a hostile peer from holding
 * connections or memory.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createConnection } from 'node:net';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BlockGraph } from '../../src/block/block-graph.js';
import { createImage } from '../../src/block/image-file.js';
import { LivebackupError } from '../../src/errors.js';
import { NbdClient } from '../../src/nbd/client.js';
import { NbdServer } from '../../src/nbd/server.js';
import { QmpServer } from '../../src/qmp/server.js';
import { tempDir } from '../helpers/temp-dir.js';
import { SeededRandom } from '../helpers/random.js';
import { run, runOk, skipUnlessTools } from '../helpers/tools.js';
import { ConversationBuilder } from './fuzz/wire-builder.js';

const KiB = 1024;
const MiB = 1024 * KiB;

test('the QMP unix socket is created with mode 0600', async (t) => {
  const dir = await tempDir(t);
  const server = new QmpServer();
  t.after(() => server.close());
  const path = join(dir, 'qmp.sock');
  await server.listenUnix(path);
  const info = await stat(path);
  assert.ok(info.isSocket());
  assert.equal(info.mode & 0o777, 0o600);
});

test('TCP listeners of QMP and NBD bind to loopback unless told otherwise', async (t) => {
  const qmp = new QmpServer();
  const nbd = new NbdServer();
  t.after(async () => {
    await qmp.close();
    await nbd.close();
  });
  const qmpAddress = await qmp.listenTcp(0);
  assert.equal(qmpAddress.address, '127.0.0.1');
  const nbdAddress = await nbd.listen({ type: 'inet', port: 0 });
  assert.equal(nbdAddress.type === 'inet' && nbdAddress.host, '127.0.0.1');
});

/** A raw file of `size` bytes filled with a seeded pattern, opened as a window [offset, offset+size) by a raw node. */
async function windowedExport(t: Parameters<typeof tempDir>[0], fileBytes: number, windowOffset: number, windowSize: number) {
  const dir = await tempDir(t);
  const path = join(dir, 'disk.raw');
  const original = new SeededRandom(77).bytes(fileBytes);
  await writeFile(path, original);
  const graph = new BlockGraph();
  const node = await graph.open({ driver: 'raw', 'node-name': 'window', offset: windowOffset, size: windowSize, file: { driver: 'file', filename: path } });
  const server = new NbdServer();
  const socket = join(dir, 'nbd.sock');
  await server.listen({ type: 'unix', path: socket });
  server.addExport({ name: 'rw', node, writable: true });
  server.addExport({ name: 'ro', node, writable: false });
  t.after(async () => {
    await server.close();
    await graph.closeAll();
  });
  return { path, original, socket, server };
}

test('a read-only export refuses every write-type request and leaves the image untouched', { skip: skipUnlessTools('qemu-io') }, async (t) => {
  const { path, original, socket } = await windowedExport(t, 2 * MiB, 0, 2 * MiB);
  const client = await NbdClient.connect({ type: 'unix', path: socket }, { exportName: 'ro' });
  t.after(() => client.close());
  assert.equal(client.readOnly, true);
  const refusals = [
    client.write(0, new Uint8Array(4096)),
    client.writeZeroes(4096, 4096),
    client.trim(8192, 4096),
  ];
  for (const refusal of refusals) {
    await assert.rejects(refusal, (error: unknown) => error instanceof LivebackupError && error.errno === 'EPERM');
  }
  // A real peer is refused too.
  const qemuIo = await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x55 0 64k', `nbd+unix:///ro?socket=${socket}`]);
  const refused = qemuIo.code !== 0 || /failed|error|read-only/i.test(qemuIo.stdout + qemuIo.stderr);
  assert.ok(refused, `qemu-io wrote to a read-only export: ${qemuIo.stdout}${qemuIo.stderr}`);
  await client.disconnect();
  assert.equal(Buffer.compare(new Uint8Array(await readFile(path)), original), 0, 'the image changed');
});

test('an export reaches only its node: requests past its end are refused and bytes outside its window never change', { skip: skipUnlessTools('qemu-io') }, async (t) => {
  const windowOffset = 1 * MiB;
  const windowSize = 1 * MiB;
  const { path, original, socket } = await windowedExport(t, 3 * MiB, windowOffset, windowSize);
  const client = await NbdClient.connect({ type: 'unix', path: socket }, { exportName: 'rw' });
  t.after(() => client.close());
  assert.equal(client.size, windowSize);
  for (const [offset, length] of [
    [windowSize - 512, 1024],
    [windowSize, 512],
    [2 ** 52, 512],
  ] as const) {
    // As QEMU: ENOSPC for write-type requests past the end, EINVAL for reads.
    const writeRefusal = (error: unknown) => error instanceof LivebackupError && (error.errno === 'ENOSPC' || error.errno === 'EINVAL');
    await assert.rejects(client.write(offset, new Uint8Array(length).fill(0xee)), writeRefusal);
    await assert.rejects(client.read(offset, new Uint8Array(length)), (error: unknown) => error instanceof LivebackupError && error.errno === 'EINVAL');
    await assert.rejects(client.writeZeroes(offset, length), writeRefusal);
  }
  // Fill the whole window, first and last byte included, with writes that are in range.
  await client.write(0, new Uint8Array(windowSize).fill(0xab));
  await client.flush();
  await client.disconnect();
  // qemu-io as a peer: a write past the end fails.
  const qemuIo = await run('qemu-io', ['-f', 'raw', '-c', `write -P 0x55 ${windowSize - 512} 4k`, `nbd+unix:///rw?socket=${socket}`]);
  assert.match(qemuIo.stdout + qemuIo.stderr, /error|failed|out of range|Invalid/i);
  const after = new Uint8Array(await readFile(path));
  assert.equal(Buffer.compare(after.subarray(0, windowOffset), original.subarray(0, windowOffset)), 0, 'bytes before the window changed');
  assert.equal(Buffer.compare(after.subarray(windowOffset + windowSize), original.subarray(windowOffset + windowSize)), 0, 'bytes after the window changed');
  assert.ok(after.subarray(windowOffset, windowOffset + windowSize).every((byte) => byte === 0xab), 'the window holds the writes');
});

test('an export name nobody added is refused, and NBD_OPT_LIST shows only the exports', async (t) => {
  const { socket } = await windowedExport(t, 1 * MiB, 0, 1 * MiB);
  await assert.rejects(NbdClient.connect({ type: 'unix', path: socket }, { exportName: '../disk.raw' }), (error: unknown) => error instanceof LivebackupError && error.code === 'NOT_FOUND');
  const names = (await NbdClient.listExports({ type: 'unix', path: socket })).map((entry) => entry.name).sort();
  assert.deepEqual(names, ['ro', 'rw']);
});

test('a backing file named inside an untrusted image is not opened when the graph forbids it', async (t) => {
  const dir = await tempDir(t);
  const secretPath = join(dir, 'secret.raw');
  await writeFile(secretPath, new Uint8Array(1 * MiB).fill(0x5a));
  const imagePath = join(dir, 'untrusted.qcow2');
  await createImage(imagePath, 'qcow2', 1 * MiB, { backing_file: secretPath, backing_fmt: 'raw' });

  const strict = new BlockGraph({ allowBackingFromImage: false });
  t.after(() => strict.closeAll());
  await assert.rejects(
    strict.open({ driver: 'qcow2', file: { driver: 'file', filename: imagePath } }),
    (error: unknown) => error instanceof LivebackupError && error.code === 'INVALID_ARGUMENT' && error.message.includes(secretPath),
  );
  assert.equal(strict.list().length, 0, 'a refused open leaves no node behind');
  // With the backing given explicitly as none, the image opens and the secret stays unread.
  const node = await strict.open({ driver: 'qcow2', backing: null, file: { driver: 'file', filename: imagePath } });
  assert.equal(node.backing, undefined);
  const seen = new Uint8Array(64 * KiB);
  await node.read(0, seen);
  assert.ok(seen.every((byte) => byte === 0), 'unallocated clusters read as zeroes, not as the named file');
});

test('protocol and json: backing names inside an image are refused even where backing files are followed', { skip: skipUnlessTools('qemu-img') }, async (t) => {
  const dir = await tempDir(t);
  const graph = new BlockGraph();
  t.after(() => graph.closeAll());
  for (const name of ['nbd://127.0.0.1:1/x', 'json:{"driver":"file","filename":"/etc/passwd"}']) {
    const imagePath = join(dir, `image-${name.slice(0, 3)}.qcow2`);
    await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', name, '-F', 'raw', imagePath, '1M']);
    await assert.rejects(graph.open({ driver: 'qcow2', file: { driver: 'file', filename: imagePath } }), (error: unknown) => error instanceof LivebackupError && error.code === 'UNSUPPORTED');
  }
});

test('a qcow2 image with an external data file is refused without the data file being used', { skip: skipUnlessTools('qemu-img') }, async (t) => {
  const dir = await tempDir(t);
  const dataPath = join(dir, 'elsewhere.raw');
  const imagePath = join(dir, 'with-data-file.qcow2');
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', `data_file=${dataPath}`, imagePath, '1M']);
  const before = await stat(dataPath);
  const graph = new BlockGraph();
  t.after(() => graph.closeAll());
  await assert.rejects(graph.open({ driver: 'qcow2', file: { driver: 'file', filename: imagePath } }), (error: unknown) => error instanceof LivebackupError && error.code === 'UNSUPPORTED' && /data file/.test(error.message));
  assert.equal(graph.list().length, 0);
  assert.equal((await stat(dataPath)).mtimeMs, before.mtimeMs);
});

test('the NBD server holds at most max-connections clients; a freed slot is usable again', async (t) => {
  const { socket } = await windowedExportWithLimit(t, 2);
  const first = await NbdClient.connect({ type: 'unix', path: socket }, { exportName: 'rw' });
  const second = await NbdClient.connect({ type: 'unix', path: socket }, { exportName: 'rw' });
  await assert.rejects(NbdClient.connect({ type: 'unix', path: socket }, { exportName: 'rw' }));
  await first.disconnect();
  const third = await waitForSlot(socket);
  await third.read(0, new Uint8Array(512));
  await third.disconnect();
  await second.disconnect();
});

async function windowedExportWithLimit(t: Parameters<typeof tempDir>[0], maxConnections: number) {
  const dir = await tempDir(t);
  const graph = new BlockGraph();
  const node = await graph.open({ driver: 'null-co', 'node-name': 'null0', size: 1 * MiB });
  const server = new NbdServer({ maxConnections });
  const socket = join(dir, 'nbd.sock');
  await server.listen({ type: 'unix', path: socket });
  server.addExport({ name: 'rw', node, writable: true });
  t.after(async () => {
    await server.close();
    await graph.closeAll();
  });
  return { socket, server };
}

/** Connect once the server has noticed a disconnect (it frees the slot when the socket closes). */
async function waitForSlot(socket: string): Promise<NbdClient> {
  for (;;) {
    try {
      return await NbdClient.connect({ type: 'unix', path: socket }, { exportName: 'rw' });
    } catch {
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
}

test('an NBD write request larger than the maximum payload ends the connection without reading the payload', { timeout: 60_000 }, async (t) => {
  const { socket } = await windowedExportWithLimit(t, 4);
  const conversation = new ConversationBuilder(3).exportName('rw').request(1, 0, 1n, 0, 64 * MiB).bytes();
  const closed = await new Promise<boolean>((resolve) => {
    const connection = createConnection(socket);
    connection.on('error', () => undefined);
    connection.on('data', () => undefined);
    connection.on('connect', () => connection.write(conversation));
    connection.on('close', () => resolve(true));
  });
  assert.equal(closed, true);
});

test('the QMP server serves at most max-clients; others are closed without a greeting', async (t) => {
  const dir = await tempDir(t);
  const server = new QmpServer({ maxClients: 1 });
  t.after(() => server.close());
  const path = join(dir, 'qmp.sock');
  await server.listenUnix(path);
  const first = createConnection(path);
  t.after(() => first.destroy());
  await new Promise((resolve) => first.once('data', resolve));
  const received = await new Promise<string>((resolve) => {
    const second = createConnection(path);
    let text = '';
    second.on('error', () => undefined);
    second.on('data', (chunk: Buffer) => (text += chunk.toString()));
    second.on('close', () => resolve(text));
  });
  assert.equal(received, '', 'the client over the limit got data');
});

test('a QMP client sending an endless message without a newline is cut off, not buffered', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t);
  const server = new QmpServer();
  t.after(() => server.close());
  const path = join(dir, 'qmp.sock');
  await server.listenUnix(path);
  const limit = 1024 * MiB;
  const chunk = Buffer.alloc(1 * MiB, 'a');
  const sent = await new Promise<number>((resolve) => {
    const connection = createConnection(path);
    let total = 0;
    let open = true;
    connection.on('error', () => undefined);
    connection.on('data', () => undefined);
    connection.on('close', () => {
      open = false;
      resolve(total);
    });
    const pump = () => {
      while (open && total < limit) {
        total += chunk.length;
        if (!connection.write(total === chunk.length ? Buffer.concat([Buffer.from('{"execute":"x","arguments":{"s":"'), chunk]) : chunk)) {
          connection.once('drain', pump);
          return;
        }
      }
      if (total >= limit) connection.end();
    };
    connection.on('connect', pump);
  });
  // The default limit is 16 MiB per message; socket buffers hold a few MiB more.
  assert.ok(sent < 64 * MiB, `the server read ${sent / MiB} MiB of one message before cutting the client off`);
});
