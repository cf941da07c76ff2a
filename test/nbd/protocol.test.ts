import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as p from '../../src/nbd/protocol.js';
import { LivebackupError } from '../../src/errors.js';

/** Bytes from a hex string with optional spaces, for hand-computed layouts. */
function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'hex');
}

function assertBytes(actual: Uint8Array, expected: string): void {
  assert.equal(Buffer.from(actual).toString('hex'), hex(expected).toString('hex'));
}

function assertProtocolError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => error instanceof LivebackupError && error.code === 'PROTOCOL_ERROR' && pattern.test(error.message));
}

test('server greeting: NBDMAGIC, IHAVEOPT, 16-bit handshake flags', () => {
  const greeting = p.encodeServerGreeting(p.NBD_FLAG_FIXED_NEWSTYLE | p.NBD_FLAG_NO_ZEROES);
  assertBytes(greeting, '4e42444d41474943 49484156454f5054 0003');
  assert.equal(p.decodeServerGreeting(greeting), 3);
  assertProtocolError(() => p.decodeServerGreeting(hex('4e42444d41474943 00420281861253aa 0000')), /newstyle/);
  assertProtocolError(() => p.decodeServerGreeting(hex('0000000000000000 49484156454f5054 0003')), /NBDMAGIC/);
});

test('client flags are 32 bits', () => {
  assertBytes(p.encodeClientFlags(3), '00000003');
  assert.equal(p.decodeClientFlags(hex('80000001')), 0x80000001);
});

test('option header and option reply layouts', () => {
  const option = p.encodeOption(p.NBD_OPT_GO, hex('aabb'));
  assertBytes(option, '49484156454f5054 00000007 00000002 aabb');
  assert.deepEqual(p.decodeOptionHeader(option), { option: 7, length: 2 });
  assertProtocolError(() => p.decodeOptionHeader(hex('49484156454f5055 00000007 00000000')), /option magic/);

  const reply = p.encodeOptionReply(p.NBD_OPT_LIST, p.NBD_REP_ERR_UNSUP, Buffer.from('no'));
  assertBytes(reply, '0003e889045565a9 00000003 80000001 00000002 6e6f');
  assert.deepEqual(p.decodeOptionReplyHeader(reply), { option: 3, type: 0x80000001, length: 2 });
});

test('NBD_OPT_EXPORT_NAME reply: size, flags, 124 zero bytes unless NO_ZEROES', () => {
  const short = p.encodeExportNameReply(0x123456789a, 0x0103, true);
  assertBytes(short, '000000123456789a 0103');
  const long = p.encodeExportNameReply(512, 1, false);
  assert.equal(long.length, 134);
  assertBytes(long.subarray(0, 10), '0000000000000200 0001');
  assert.ok(long.subarray(10).every((byte) => byte === 0));
});

test('NBD_OPT_GO data: name length, name, info count, info requests', () => {
  const data = p.encodeGoOptionData({ name: 'disk', infoRequests: [p.NBD_INFO_NAME, p.NBD_INFO_BLOCK_SIZE] });
  assertBytes(data, '00000004 6469736b 0002 0001 0003');
  assert.deepEqual(p.decodeGoOptionData(data), { name: 'disk', infoRequests: [1, 3] });
  assertProtocolError(() => p.decodeGoOptionData(hex('00000010 6469736b 0000')), /exceeds/);
  assertProtocolError(() => p.decodeGoOptionData(hex('00000004 6469736b 0002 0001')), /count/);
  assertProtocolError(() => p.decodeGoOptionData(hex('0000')), /too short/);
  assertProtocolError(() => p.decodeGoOptionData(hex('00000002 6400 0000')), /NUL/);
});

test('meta context option data: export name, query count, queries', () => {
  const data = p.encodeMetaContextOptionData({ exportName: 'd', queries: ['base:', 'qemu:allocation-depth'] });
  assertBytes(
    data,
    '00000001 64 00000002 00000005 ' + Buffer.from('base:').toString('hex') + ' 00000015 ' + Buffer.from('qemu:allocation-depth').toString('hex'),
  );
  assert.deepEqual(p.decodeMetaContextOptionData(data), { exportName: 'd', queries: ['base:', 'qemu:allocation-depth'] });
  assert.deepEqual(p.decodeMetaContextOptionData(hex('00000000 00000000')), { exportName: '', queries: [] });
  // A query count that cannot fit the data, a query running past it, trailing bytes.
  assertProtocolError(() => p.decodeMetaContextOptionData(hex('00000000 ffffffff')), /query count/);
  assertProtocolError(() => p.decodeMetaContextOptionData(hex('00000000 00000001 00000009 6162')), /exceeds/);
  assertProtocolError(() => p.decodeMetaContextOptionData(hex('00000000 00000000 00')), /trailing/);
  assertProtocolError(() => p.decodeMetaContextOptionData(hex('00002000 00000000')), /too long/);
});

test('NBD_REP_SERVER and NBD_REP_META_CONTEXT data', () => {
  const server = p.encodeServerReplyData('a', 'desc');
  assertBytes(server, '00000001 61 64657363');
  assert.deepEqual(p.decodeServerReplyData(server), { name: 'a', description: 'desc' });
  const context = p.encodeMetaContextReplyData(7, 'base:allocation');
  assertBytes(context, '00000007' + Buffer.from('base:allocation').toString('hex'));
  assert.deepEqual(p.decodeMetaContextReplyData(context), { id: 7, name: 'base:allocation' });
});

test('NBD_REP_INFO items: export, name, description, block size', () => {
  const exportInfo = p.encodeInfo({ type: p.NBD_INFO_EXPORT, size: 4096, transmissionFlags: 0x0d4d });
  assertBytes(exportInfo, '0000 0000000000001000 0d4d');
  assert.deepEqual(p.decodeInfo(exportInfo), { type: 0, size: 4096, transmissionFlags: 0x0d4d });
  assertBytes(p.encodeInfo({ type: p.NBD_INFO_NAME, name: 'x' }), '0001 78');
  assertBytes(p.encodeInfo({ type: p.NBD_INFO_DESCRIPTION, description: 'y' }), '0002 79');
  const blockSize = p.encodeInfo({ type: p.NBD_INFO_BLOCK_SIZE, minimum: 1, preferred: 4096, maximum: 32 * 1024 * 1024 });
  assertBytes(blockSize, '0003 00000001 00001000 02000000');
  assert.deepEqual(p.decodeInfo(blockSize), { type: 3, minimum: 1, preferred: 4096, maximum: 33554432 });
  assert.deepEqual(p.decodeInfo(hex('0009 00')), { type: 9, unknown: true });
  assertProtocolError(() => p.decodeInfo(hex('0000 00000000')), /12 bytes/);
});

test('request: magic, flags, type, cookie, offset, length', () => {
  const request = { flags: p.NBD_CMD_FLAG_FUA, type: p.NBD_CMD_WRITE, cookie: 0x0102030405060708n, offset: 0x100000000, length: 512 };
  const bytes = p.encodeRequest(request);
  assertBytes(bytes, '25609513 0001 0001 0102030405060708 0000000100000000 00000200');
  assert.deepEqual(p.decodeRequest(bytes), request);
  assertProtocolError(() => p.decodeRequest(hex('25609514 0000 0000 0000000000000000 0000000000000000 00000000')), /request magic/);
  // Offsets beyond 2^53 decode to numbers no bounds check can accept.
  const huge = p.decodeRequest(hex('25609513 0000 0000 0000000000000001 ffffffffffffffff 00000001'));
  assert.ok(huge.offset > Number.MAX_SAFE_INTEGER);
});

test('simple reply and structured chunk headers', () => {
  const simple = p.encodeSimpleReply(5n, 22);
  assertBytes(simple, '67446698 00000016 0000000000000005');
  assert.deepEqual(p.decodeSimpleReply(simple), { error: 22, cookie: 5n });
  assert.equal(p.replyMagicOf(simple), p.NBD_SIMPLE_REPLY_MAGIC);

  const none = p.encodeNoneChunk(9n);
  assertBytes(none, '668e33ef 0001 0000 0000000000000009 00000000');
  assert.deepEqual(p.decodeStructuredHeader(none), { flags: 1, type: 0, cookie: 9n, length: 0 });
});

test('OFFSET_DATA header, OFFSET_HOLE chunk', () => {
  assertBytes(p.encodeOffsetDataHeader(1n, 0, 4096, 512), '668e33ef 0000 0001 0000000000000001 00000208 0000000000001000');
  const hole = p.encodeOffsetHoleChunk(2n, p.NBD_REPLY_FLAG_DONE, 8192, 65536);
  assertBytes(hole, '668e33ef 0001 0002 0000000000000002 0000000c 0000000000002000 00010000');
  assert.deepEqual(p.decodeOffsetHole(hole.subarray(20)), { offset: 8192, size: 65536 });
});

test('BLOCK_STATUS chunk: context id, then length/flags pairs', () => {
  const chunk = p.encodeBlockStatusChunk(3n, p.NBD_REPLY_FLAG_DONE, 1, [
    { length: 65536, flags: 0 },
    { length: 4096, flags: p.NBD_STATE_HOLE | p.NBD_STATE_ZERO },
  ]);
  assertBytes(chunk, '668e33ef 0001 0005 0000000000000003 00000014 00000001 00010000 00000000 00001000 00000003');
  assert.deepEqual(p.decodeBlockStatusPayload(chunk.subarray(20)), {
    contextId: 1,
    extents: [
      { length: 65536, flags: 0 },
      { length: 4096, flags: 3 },
    ],
  });
  assertProtocolError(() => p.decodeBlockStatusPayload(hex('00000001')), /bad length/);
});

test('error chunks: error, message length, message (and offset for ERROR_OFFSET)', () => {
  const chunk = p.encodeErrorChunk(4n, 5, 'bad');
  assertBytes(chunk, '668e33ef 0001 8001 0000000000000004 00000009 00000005 0003 626164');
  assert.deepEqual(p.decodeErrorPayload(p.NBD_REPLY_TYPE_ERROR, chunk.subarray(20)), { error: 5, message: 'bad' });
  assert.deepEqual(p.decodeErrorPayload(p.NBD_REPLY_TYPE_ERROR_OFFSET, hex('00000016 0001 78 0000000000000200')), { error: 22, message: 'x', offset: 512 });
  assertProtocolError(() => p.decodeErrorPayload(p.NBD_REPLY_TYPE_ERROR, hex('00000016 0009 78')), /exceeds/);
  // Messages longer than the protocol's 4096-byte string limit are cut.
  assert.equal(p.encodeErrorChunk(1n, 5, 'z'.repeat(5000)).length, 20 + 6 + 4096);
});

test('errno mapping: names to NBD values and back', () => {
  assert.equal(p.nbdErrnoValue('EPERM'), 1);
  assert.equal(p.nbdErrnoValue('ENOSPC'), 28);
  assert.equal(p.nbdErrnoValue('EDQUOT'), 28);
  assert.equal(p.nbdErrnoValue('ENOENT'), 5);
  assert.equal(p.nbdErrnoName(95), 'ENOTSUP');
  assert.equal(p.nbdErrnoName(12345), 'EINVAL');
});

test('strings: UTF-8, at most 4096 bytes, no NUL', () => {
  assert.equal(p.decodeString(p.encodeString('dísk')), 'dísk');
  assert.throws(() => p.encodeString('x'.repeat(4097)), /longer than 4096/);
  assert.throws(() => p.encodeString('a\0b'), /NUL/);
  assertProtocolError(() => p.decodeString(hex('ff')), /UTF-8/);
});
