import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as p from '../../src/nbd/protocol.js';
import { validateRequest, type RequestContext } from '../../src/nbd/request-validation.js';
import { transmissionFlagsFor } from '../../src/nbd/transmission-flags.js';
import { memoryNode } from '../helpers/memory-driver.js';

const SIZE = 1 << 20;

function context(writable: boolean, structuredReplies = true, metaContextCount = 1): RequestContext {
  const { node } = memoryNode(SIZE);
  const entry = { name: 'e', node, writable, description: undefined, multiConn: true, allocationDepth: true, writethrough: false, bitmap: undefined };
  return { size: SIZE, writable, transmissionFlags: transmissionFlagsFor(entry, structuredReplies), structuredReplies, metaContextCount };
}

function verdict(ctx: RequestContext, type: number, offset: number, length: number, flags = 0): string {
  const rejection = validateRequest({ type, offset, length, flags, cookie: 1n }, ctx);
  return rejection ? `${rejection.errno}${rejection.disconnect ? '+disconnect' : ''}` : 'ok';
}

test('transmission flags: writable, read-only, structured replies, multi-conn', () => {
  const rw = context(true).transmissionFlags;
  for (const flag of [p.NBD_FLAG_HAS_FLAGS, p.NBD_FLAG_SEND_FLUSH, p.NBD_FLAG_SEND_FUA, p.NBD_FLAG_SEND_TRIM, p.NBD_FLAG_SEND_WRITE_ZEROES, p.NBD_FLAG_SEND_FAST_ZERO, p.NBD_FLAG_SEND_DF, p.NBD_FLAG_CAN_MULTI_CONN]) {
    assert.ok(rw & flag, `flag ${flag}`);
  }
  assert.equal(rw & p.NBD_FLAG_READ_ONLY, 0);
  const ro = context(false, false).transmissionFlags;
  assert.ok(ro & p.NBD_FLAG_READ_ONLY);
  assert.equal(ro & (p.NBD_FLAG_SEND_TRIM | p.NBD_FLAG_SEND_WRITE_ZEROES | p.NBD_FLAG_SEND_FAST_ZERO | p.NBD_FLAG_SEND_DF), 0);
});

test('validateRequest: bounds, payload limit, read-only, flags, negotiation', () => {
  const rw = context(true);
  const ro = context(false);
  const simple = context(true, false, 0);
  const cases: Array<[RequestContext, number, number, number, number, string]> = [
    [rw, p.NBD_CMD_READ, 0, SIZE, 0, 'ok'],
    [rw, p.NBD_CMD_READ, SIZE, 0, 0, 'ok'],
    [rw, p.NBD_CMD_READ, SIZE - 1, 2, 0, 'EINVAL'],
    [rw, p.NBD_CMD_READ, Number.MAX_SAFE_INTEGER + 2, 1, 0, 'EINVAL'],
    [rw, p.NBD_CMD_READ, 0, p.NBD_MAX_PAYLOAD + 1, 0, 'EINVAL'],
    [rw, p.NBD_CMD_WRITE, 0, p.NBD_MAX_PAYLOAD + 1, 0, 'EINVAL+disconnect'],
    [rw, p.NBD_CMD_WRITE, SIZE - 1, 2, 0, 'ENOSPC'],
    [rw, p.NBD_CMD_WRITE_ZEROES, SIZE - 1, 2, 0, 'ENOSPC'],
    [rw, p.NBD_CMD_WRITE_ZEROES, 0, 0xffffffff, 0, 'ENOSPC'],
    [rw, p.NBD_CMD_TRIM, SIZE - 1, 2, 0, 'EINVAL'],
    [rw, p.NBD_CMD_WRITE, 0, 512, p.NBD_CMD_FLAG_FUA, 'ok'],
    [rw, p.NBD_CMD_WRITE, 0, 512, p.NBD_CMD_FLAG_NO_HOLE, 'EINVAL'],
    [rw, p.NBD_CMD_WRITE_ZEROES, 0, 512, p.NBD_CMD_FLAG_NO_HOLE | p.NBD_CMD_FLAG_FAST_ZERO | p.NBD_CMD_FLAG_FUA, 'ok'],
    [rw, p.NBD_CMD_READ, 0, 512, p.NBD_CMD_FLAG_DF, 'ok'],
    [simple, p.NBD_CMD_READ, 0, 512, p.NBD_CMD_FLAG_DF, 'EINVAL'],
    [rw, p.NBD_CMD_BLOCK_STATUS, 0, 512, p.NBD_CMD_FLAG_REQ_ONE, 'ok'],
    [rw, p.NBD_CMD_BLOCK_STATUS, 0, 0, 0, 'EINVAL'],
    [simple, p.NBD_CMD_BLOCK_STATUS, 0, 512, 0, 'EINVAL'],
    [context(true, true, 0), p.NBD_CMD_BLOCK_STATUS, 0, 512, 0, 'EINVAL'],
    [rw, p.NBD_CMD_FLUSH, 0, 0, 0, 'ok'],
    [rw, p.NBD_CMD_FLUSH, 0, 1, 0, 'EINVAL'],
    [rw, p.NBD_CMD_CACHE, 0, SIZE, 0, 'ok'],
    [rw, 9, 0, 0, 0, 'EINVAL'],
    [rw, p.NBD_CMD_READ, 0, 1, 1 << 15, 'EINVAL'],
    [ro, p.NBD_CMD_WRITE, 0, 512, 0, 'EPERM'],
    [ro, p.NBD_CMD_TRIM, 0, 512, 0, 'EPERM'],
    [ro, p.NBD_CMD_WRITE_ZEROES, 0, 512, 0, 'EPERM'],
    [ro, p.NBD_CMD_WRITE_ZEROES, 0, 512, p.NBD_CMD_FLAG_FAST_ZERO, 'EINVAL'],
    [ro, p.NBD_CMD_READ, 0, 512, p.NBD_CMD_FLAG_FUA, 'ok'],
    [ro, p.NBD_CMD_FLUSH, 0, 0, 0, 'ok'],
  ];
  for (const [ctx, type, offset, length, flags, expected] of cases) {
    assert.equal(verdict(ctx, type, offset, length, flags), expected, `type ${type} offset ${offset} length ${length} flags ${flags}`);
  }
});
