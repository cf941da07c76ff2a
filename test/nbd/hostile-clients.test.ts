import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import * as p from '../../src/nbd/protocol.js';
import { NbdClient } from '../../src/nbd/client.js';
import { SeededRandom } from '../helpers/random.js';
import { eventually, serveRawImage, type ServedImage } from './nbd-fixture.js';
import { RawPeer } from './raw-peer.js';

const MiB = 1024 * 1024;
const SIZE = 2 * MiB;

/** The image holds its seeded content, the server has no connection left, and a well-behaved client still works. */
async function assertHealthy(served: ServedImage, content: Uint8Array): Promise<void> {
  await eventually(() => served.server.connectionCount === 0);
  assert.equal((await stat(served.image)).size, content.length, 'image size changed');
  assert.ok((await readFile(served.image)).equals(Buffer.from(content)), 'image content changed');
  const client = await NbdClient.connectUri(served.uri);
  const buf = new Uint8Array(4096);
  await client.read(SIZE - 4096, buf);
  assert.ok(Buffer.from(buf).equals(Buffer.from(content.subarray(SIZE - 4096))));
  await client.disconnect();
  await eventually(() => served.server.connectionCount === 0);
}

async function servedWithContent(t: Parameters<typeof serveRawImage>[0], writable = true): Promise<{ served: ServedImage; content: Uint8Array }> {
  const content = new SeededRandom(4242).bytes(SIZE);
  return { served: await serveRawImage(t, { content, writable }), content };
}

test('random bytes and truncated handshakes close only that connection', async (t) => {
  const { served, content } = await servedWithContent(t);
  const seed = 20261127;
  const random = new SeededRandom(seed);
  for (let i = 0; i < 20; i++) {
    const peer = await RawPeer.connect(served.socket);
    peer.send(random.bytes(random.int(1, 2000)));
    if (random.chance(0.5)) peer.socket.end();
    await peer.closed;
  }
  // Truncated at every stage: client flags, option header, option data, request header.
  const stages: Array<(peer: RawPeer) => Promise<void>> = [
    async (peer) => peer.send(Buffer.from([0, 0])),
    async (peer) => peer.send(p.encodeClientFlags(3), p.encodeOption(p.NBD_OPT_GO).subarray(0, 10)),
    async (peer) => peer.send(p.encodeClientFlags(3), p.encodeOption(p.NBD_OPT_GO, Buffer.alloc(50)).subarray(0, 30)),
    async (peer) => {
      await peer.enter('disk');
      peer.send(p.encodeRequest({ flags: 0, type: p.NBD_CMD_READ, cookie: 1n, offset: 0, length: 512 }).subarray(0, 13));
    },
    async (peer) => {
      await peer.enter('disk');
      peer.send(p.encodeRequest({ flags: 0, type: p.NBD_CMD_WRITE, cookie: 1n, offset: 0, length: 4096 }), Buffer.alloc(100, 0xff));
    },
  ];
  for (const stage of stages) {
    const peer = await RawPeer.connect(served.socket);
    await stage(peer);
    peer.socket.end();
    await peer.closed;
  }
  await assertHealthy(served, content);
});

test('unknown client flags, bad option magic, oversized export name: connection closed', async (t) => {
  const { served, content } = await servedWithContent(t);
  const unknownFlags = await RawPeer.connect(served.socket);
  await unknownFlags.greeting();
  unknownFlags.send(p.encodeClientFlags(0x80000001));
  await unknownFlags.closed;

  const badMagic = await RawPeer.connect(served.socket);
  await badMagic.greeting();
  badMagic.send(p.encodeClientFlags(1), Buffer.from('IHAVEOPX00000000'));
  await badMagic.closed;

  const longName = await RawPeer.connect(served.socket);
  await longName.greeting();
  longName.send(p.encodeClientFlags(1), p.encodeOption(p.NBD_OPT_EXPORT_NAME, Buffer.alloc(5000, 0x61)));
  await longName.closed;

  const unknownExport = await RawPeer.connect(served.socket);
  await unknownExport.greeting();
  unknownExport.send(p.encodeClientFlags(1), p.encodeOption(p.NBD_OPT_EXPORT_NAME, Buffer.from('nope')));
  await unknownExport.closed;
  await assertHealthy(served, content);
});

test('unknown options: ERR_UNSUP and negotiation goes on; huge declared length: ERR_TOO_BIG and close without reading it', async (t) => {
  const { served, content } = await servedWithContent(t);
  const peer = await RawPeer.connect(served.socket);
  await peer.greeting();
  peer.send(p.encodeClientFlags(3), p.encodeOption(4242, Buffer.alloc(100, 7)));
  assert.deepEqual((await peer.optionReply()).type, p.NBD_REP_ERR_UNSUP);
  peer.send(p.encodeOption(p.NBD_OPT_STARTTLS));
  assert.equal((await peer.optionReply()).type, p.NBD_REP_ERR_POLICY);
  peer.send(p.encodeOption(p.NBD_OPT_LIST, Buffer.from('x')));
  assert.equal((await peer.optionReply()).type, p.NBD_REP_ERR_INVALID);
  // Malformed GO data (name length past the data), SET_META_CONTEXT before structured replies, unknown export.
  peer.send(p.encodeOption(p.NBD_OPT_GO, Buffer.from([0, 0, 0x10, 0, 0x61, 0, 0])));
  assert.equal((await peer.optionReply()).type, p.NBD_REP_ERR_INVALID);
  peer.send(p.encodeOption(p.NBD_OPT_SET_META_CONTEXT, p.encodeMetaContextOptionData({ exportName: 'disk', queries: [p.BASE_ALLOCATION] })));
  assert.equal((await peer.optionReply()).type, p.NBD_REP_ERR_INVALID);
  peer.send(p.encodeOption(p.NBD_OPT_INFO, p.encodeGoOptionData({ name: 'missing', infoRequests: [] })));
  assert.equal((await peer.optionReply()).type, p.NBD_REP_ERR_UNKNOWN);
  peer.send(p.encodeOption(p.NBD_OPT_STRUCTURED_REPLY));
  assert.equal((await peer.optionReply()).type, p.NBD_REP_ACK);
  peer.send(p.encodeOption(p.NBD_OPT_STRUCTURED_REPLY));
  assert.equal((await peer.optionReply()).type, p.NBD_REP_ERR_INVALID);
  // Meta context query count larger than the data can hold.
  peer.send(p.encodeOption(p.NBD_OPT_LIST_META_CONTEXT, Buffer.from([0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff])));
  assert.equal((await peer.optionReply()).type, p.NBD_REP_ERR_INVALID);
  // A 4 GiB option: refused up front, the connection is dropped.
  peer.send(Buffer.concat([p.encodeOption(99).subarray(0, 12), Buffer.from([0xff, 0xff, 0xff, 0xff])]));
  assert.equal((await peer.optionReply()).type, p.NBD_REP_ERR_TOO_BIG);
  await peer.closed;
  await assertHealthy(served, content);
});

test('transmission: bad request magic closes; past the end, 1 GiB lengths, unknown commands and flags are refused', async (t) => {
  const { served, content } = await servedWithContent(t);
  const peer = await RawPeer.connect(served.socket);
  const { size, flags } = await peer.enter('disk');
  assert.equal(size, SIZE);
  assert.equal(flags & p.NBD_FLAG_READ_ONLY, 0);

  const expectError = async (type: number, offset: number, length: number, requestFlags: number, errno: number, payload?: Uint8Array) => {
    const cookie = BigInt(type * 1000 + errno);
    peer.request(type, cookie, offset, length, requestFlags, payload);
    const chunks = await peer.structuredReply();
    assert.equal(chunks[0]!.cookie, cookie);
    assert.equal(RawPeer.errorOf(chunks), errno, `command ${type} at ${offset}+${length}`);
  };
  await expectError(p.NBD_CMD_READ, SIZE - 100, 200, 0, p.NBD_ERRNO.EINVAL!);
  // An offset of 2^60 (beyond what a JavaScript number holds exactly).
  const farRequest = p.encodeRequest({ flags: 0, type: p.NBD_CMD_READ, cookie: 60n, offset: 0, length: 1 });
  farRequest.writeBigUInt64BE(2n ** 60n, 16);
  peer.send(farRequest);
  assert.equal(RawPeer.errorOf(await peer.structuredReply()), p.NBD_ERRNO.EINVAL);
  await expectError(p.NBD_CMD_READ, 0, 1024 * MiB, 0, p.NBD_ERRNO.EINVAL!);
  // A write past the end gets ENOSPC; its payload is consumed, so the stream stays in sync.
  await expectError(p.NBD_CMD_WRITE, SIZE - 100, 200, 0, p.NBD_ERRNO.ENOSPC!, Buffer.alloc(200, 0xee));
  await expectError(p.NBD_CMD_WRITE_ZEROES, SIZE, 1, 0, p.NBD_ERRNO.ENOSPC!);
  await expectError(p.NBD_CMD_TRIM, SIZE - 1, 2, 0, p.NBD_ERRNO.EINVAL!);
  await expectError(p.NBD_CMD_BLOCK_STATUS, SIZE, 1, 0, p.NBD_ERRNO.EINVAL!);
  await expectError(p.NBD_CMD_BLOCK_STATUS, 0, 0, 0, p.NBD_ERRNO.EINVAL!);
  await expectError(42, 0, 0, 0, p.NBD_ERRNO.EINVAL!);
  await expectError(p.NBD_CMD_READ, 0, 512, 1 << 9, p.NBD_ERRNO.EINVAL!);
  await expectError(p.NBD_CMD_WRITE_ZEROES, 0, 512, p.NBD_CMD_FLAG_DF, p.NBD_ERRNO.EINVAL!);
  await expectError(p.NBD_CMD_FLUSH, 1, 0, 0, p.NBD_ERRNO.EINVAL!);
  // Fast zeroing on a plain file is not fast: ENOTSUP, nothing written.
  await expectError(p.NBD_CMD_WRITE_ZEROES, 0, 65536, p.NBD_CMD_FLAG_FAST_ZERO, p.NBD_ERRNO.ENOTSUP!);
  // Still in sync: a good read works.
  peer.request(p.NBD_CMD_READ, 7n, 0, 16);
  const read = await peer.structuredReply();
  assert.equal(RawPeer.errorOf(read), 0);
  assert.ok(read[0]!.payload.subarray(8).equals(Buffer.from(content.subarray(0, 16))));
  // A 1 GiB WRITE cannot be skipped cheaply: EINVAL, then the server drops the connection.
  peer.request(p.NBD_CMD_WRITE, 8n, 0, 1024 * MiB);
  assert.equal(RawPeer.errorOf(await peer.structuredReply()), p.NBD_ERRNO.EINVAL);
  await peer.closed;

  const magic = await RawPeer.connect(served.socket);
  await magic.enter('disk', false);
  magic.send(Buffer.alloc(28, 0x42));
  await magic.closed;
  await assertHealthy(served, content);
});

test('read-only export: writes, zeroes and trims fail with EPERM (simple replies), payload skipped', async (t) => {
  const { served, content } = await servedWithContent(t, false);
  const peer = await RawPeer.connect(served.socket);
  const { flags } = await peer.enter('disk', false);
  assert.ok(flags & p.NBD_FLAG_READ_ONLY);
  peer.request(p.NBD_CMD_WRITE, 1n, 0, 4096, 0, Buffer.alloc(4096, 0x99));
  assert.deepEqual(await peer.simpleReply(), { error: p.NBD_ERRNO.EPERM, cookie: 1n });
  peer.request(p.NBD_CMD_WRITE_ZEROES, 2n, 0, 4096);
  assert.deepEqual(await peer.simpleReply(), { error: p.NBD_ERRNO.EPERM, cookie: 2n });
  peer.request(p.NBD_CMD_TRIM, 3n, 0, 4096);
  assert.deepEqual(await peer.simpleReply(), { error: p.NBD_ERRNO.EPERM, cookie: 3n });
  // Simple-reply READ: header then data.
  peer.request(p.NBD_CMD_READ, 4n, 100, 50);
  assert.deepEqual(await peer.simpleReply(), { error: 0, cookie: 4n });
  assert.ok((await peer.reader.read(50)).equals(Buffer.from(content.subarray(100, 150))));
  peer.request(p.NBD_CMD_DISC, 5n, 0, 0);
  await peer.closed;
  await assertHealthy(served, content);
});

test('pipelined burst: 200 mixed requests in one write are each answered once', async (t) => {
  const { served } = await servedWithContent(t);
  const peer = await RawPeer.connect(served.socket);
  await peer.enter('disk');
  const random = new SeededRandom(7);
  const expected = new Map<bigint, number>();
  const burst: Buffer[] = [];
  for (let i = 1; i <= 200; i++) {
    const cookie = BigInt(i);
    const length = random.int(1, 65536);
    const offset = random.int(0, SIZE - length);
    const type = random.pick([p.NBD_CMD_READ, p.NBD_CMD_WRITE, p.NBD_CMD_BLOCK_STATUS, p.NBD_CMD_FLUSH]);
    const isFlush = type === p.NBD_CMD_FLUSH;
    burst.push(p.encodeRequest({ type, cookie, offset: isFlush ? 0 : offset, length: isFlush ? 0 : length, flags: 0 }));
    if (type === p.NBD_CMD_WRITE) burst.push(Buffer.from(random.bytes(length)));
    expected.set(cookie, type);
  }
  peer.send(Buffer.concat(burst));
  const answered = new Set<bigint>();
  while (answered.size < expected.size) {
    const chunk = await peer.chunk();
    assert.ok(expected.has(chunk.cookie), `unexpected cookie ${chunk.cookie}`);
    assert.equal(chunk.type & p.NBD_REPLY_TYPE_ERROR_BIT, 0, `error for cookie ${chunk.cookie}`);
    if (chunk.flags & p.NBD_REPLY_FLAG_DONE) {
      assert.ok(!answered.has(chunk.cookie), `cookie ${chunk.cookie} answered twice`);
      answered.add(chunk.cookie);
    }
  }
  peer.request(p.NBD_CMD_DISC, 0n, 0, 0);
  await peer.closed;
  await eventually(() => served.server.connectionCount === 0);
});

test('100 connect/disconnect cycles leak no connection; other clients keep working', async (t) => {
  const { served, content } = await servedWithContent(t);
  const steady = await NbdClient.connectUri(served.uri);
  for (let i = 0; i < 100; i++) {
    const peer = await RawPeer.connect(served.socket);
    if (i % 4 === 0) peer.destroy();
    else if (i % 4 === 1) {
      await peer.greeting();
      peer.send(p.encodeClientFlags(1), p.encodeOption(p.NBD_OPT_ABORT));
      assert.equal((await peer.optionReply()).type, p.NBD_REP_ACK);
    } else if (i % 4 === 2) {
      await peer.enter('disk');
      peer.request(p.NBD_CMD_DISC, 1n, 0, 0);
    } else {
      await peer.enter('disk', false);
      peer.request(p.NBD_CMD_READ, 1n, 0, 65536);
      peer.destroy();
    }
    await peer.closed;
    if (i % 10 === 0) {
      const buf = new Uint8Array(512);
      await steady.read(i * 512, buf);
      assert.ok(Buffer.from(buf).equals(Buffer.from(content.subarray(i * 512, i * 512 + 512))));
    }
  }
  await eventually(() => served.server.connectionCount === 1);
  await steady.disconnect();
  await assertHealthy(served, content);
});
