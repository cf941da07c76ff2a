import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { NbdClient } from '../../src/nbd/client.js';
import { LivebackupError } from '../../src/errors.js';
import * as p from '../../src/nbd/protocol.js';
import { SocketReader } from '../../src/nbd/socket-reader.js';
import { tempDir } from '../helpers/temp-dir.js';

/** A scripted server on a unix socket: `script` drives each accepted socket. */
async function scriptedServer(t: TestContext, script: (socket: Socket, reader: SocketReader) => Promise<void>): Promise<{ type: 'unix'; path: string }> {
  const path = join(await tempDir(t, 'livebackup-nbd-peer-'), 's.sock');
  const server = createServer((socket) => {
    socket.on('error', () => undefined);
    const reader = new SocketReader(socket);
    script(socket, reader).catch(() => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { type: 'unix', path };
}

/** A correct handshake for a 1 MiB writable export with structured replies and no meta contexts. */
async function handshake(socket: Socket, reader: SocketReader): Promise<void> {
  socket.write(p.encodeServerGreeting(p.NBD_FLAG_FIXED_NEWSTYLE | p.NBD_FLAG_NO_ZEROES));
  await reader.read(4);
  for (;;) {
    const { option, length } = p.decodeOptionHeader(await reader.read(p.OPTION_HEADER_LENGTH));
    await reader.read(length);
    if (option === p.NBD_OPT_GO) {
      const flags = p.NBD_FLAG_HAS_FLAGS | p.NBD_FLAG_SEND_FLUSH;
      socket.write(p.encodeOptionReply(option, p.NBD_REP_INFO, p.encodeInfo({ type: p.NBD_INFO_EXPORT, size: 1 << 20, transmissionFlags: flags })));
      socket.write(p.encodeOptionReply(option, p.NBD_REP_ACK));
      return;
    }
    socket.write(p.encodeOptionReply(option, p.NBD_REP_ACK));
  }
}

function isProtocolError(pattern: RegExp): (error: unknown) => boolean {
  return (error) => error instanceof LivebackupError && error.code === 'PROTOCOL_ERROR' && pattern.test(error.message);
}

test('client refuses a server with a bad greeting or one that hangs up', async (t) => {
  const garbage = await scriptedServer(t, async (socket) => void socket.end(Buffer.alloc(18, 0x41)));
  await assert.rejects(NbdClient.connect(garbage, { exportName: 'x' }), isProtocolError(/not an NBD server/));
  const hangUp = await scriptedServer(t, async (socket) => void socket.end());
  await assert.rejects(NbdClient.connect(hangUp, { exportName: 'x' }), isProtocolError(/closed/));
});

test('client fails pending requests on a reply with an unknown cookie or a chunk outside the request', async (t) => {
  const wrongCookie = await scriptedServer(t, async (socket, reader) => {
    await handshake(socket, reader);
    await reader.read(p.REQUEST_LENGTH);
    socket.write(p.encodeNoneChunk(999n));
  });
  const first = await NbdClient.connect(wrongCookie, { exportName: 'x' });
  await assert.rejects(first.flush(), isProtocolError(/unknown cookie/));
  await assert.rejects(first.flush(), isProtocolError(/unknown cookie/));

  const outside = await scriptedServer(t, async (socket, reader) => {
    await handshake(socket, reader);
    const request = p.decodeRequest(await reader.read(p.REQUEST_LENGTH));
    socket.write(p.encodeOffsetDataHeader(request.cookie, p.NBD_REPLY_FLAG_DONE, request.offset + 512, 4096));
    socket.write(Buffer.alloc(4096));
  });
  const second = await NbdClient.connect(outside, { exportName: 'x' });
  await assert.rejects(second.read(0, new Uint8Array(1024)), isProtocolError(/outside the request/));

  const short = await scriptedServer(t, async (socket, reader) => {
    await handshake(socket, reader);
    const request = p.decodeRequest(await reader.read(p.REQUEST_LENGTH));
    socket.write(p.encodeOffsetDataHeader(request.cookie, p.NBD_REPLY_FLAG_DONE, request.offset, 100));
    socket.write(Buffer.alloc(100));
  });
  const third = await NbdClient.connect(short, { exportName: 'x' });
  // A reply that covers too little of the read fails that request.
  await assert.rejects(third.read(0, new Uint8Array(1024)), isProtocolError(/with 100 bytes/));
  third.close();
});

test('client falls back to NBD_OPT_EXPORT_NAME and simple replies on an old server', async (t) => {
  const old = await scriptedServer(t, async (socket, reader) => {
    socket.write(p.encodeServerGreeting(p.NBD_FLAG_FIXED_NEWSTYLE));
    assert.equal(p.decodeClientFlags(await reader.read(4)), p.NBD_FLAG_C_FIXED_NEWSTYLE, 'no NO_ZEROES when the server lacks it');
    for (;;) {
      const { option, length } = p.decodeOptionHeader(await reader.read(p.OPTION_HEADER_LENGTH));
      const data = await reader.read(length);
      if (option === p.NBD_OPT_EXPORT_NAME) {
        assert.equal(data.toString(), 'legacy');
        socket.write(p.encodeExportNameReply(8192, p.NBD_FLAG_HAS_FLAGS, false));
        break;
      }
      socket.write(p.encodeOptionReply(option, p.NBD_REP_ERR_UNSUP));
    }
    const request = p.decodeRequest(await reader.read(p.REQUEST_LENGTH));
    socket.write(p.encodeSimpleReply(request.cookie, 0));
    socket.write(Buffer.alloc(request.length, 0x5c));
    await reader.read(p.REQUEST_LENGTH); // NBD_CMD_DISC
    socket.end();
  });
  const client = await NbdClient.connect(old, { exportName: 'legacy' });
  assert.equal(client.size, 8192);
  assert.equal(client.session.structuredReplies, false);
  const buf = new Uint8Array(100);
  await client.read(50, buf);
  assert.ok(buf.every((byte) => byte === 0x5c));
  await client.disconnect();
});
