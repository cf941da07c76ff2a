import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import diagnosticsChannel from 'node:diagnostics_channel';
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { NbdClient } from '../../src/nbd/client.js';
import { NbdServer } from '../../src/nbd/server.js';
import * as p from '../../src/nbd/protocol.js';
import { eventually, isError, serveRawImage } from './nbd-fixture.js';
import { RawPeer } from './raw-peer.js';


test('exports: add validates, remove safe refuses while connected, hard drops clients', async (t) => {
  const served = await serveRawImage(t, { size: 1024 * 1024 });
  const server = served.server;
  assert.throws(() => server.addExport({ name: 'disk', node: served.node }), isError('ALREADY_EXISTS'));
  assert.throws(() => server.addExport({ name: 'x'.repeat(5000), node: served.node }), isError('INVALID_ARGUMENT'));
  assert.throws(() => server.addExport({ name: 'bm', node: served.node, bitmap: 'b0' }), isError('UNSUPPORTED'));
  server.addExport({ name: 'second', node: served.node, writable: false, description: 'same node, read-only' });
  assert.deepEqual(server.listExports().map((entry) => entry.name), ['disk', 'second']);

  const client = await NbdClient.connectUri(served.uri);
  await eventually(() => server.clientsOf('disk') === 1);
  await assert.rejects(server.removeExport('disk'), isError('BUSY'));
  await assert.rejects(server.removeExport('missing'), isError('NOT_FOUND'));
  // Removing an unused export works at once; new clients cannot find it.
  await server.removeExport('second');
  await assert.rejects(NbdClient.connect({ type: 'unix', path: served.socket }, { exportName: 'second' }), isError('NOT_FOUND'));
  // mode 'hard' disconnects the client; its next request fails.
  await server.removeExport('disk', 'hard');
  await assert.rejects(client.read(0, new Uint8Array(512)));
  await eventually(() => server.connectionCount === 0);
  assert.equal(server.getExport('disk'), undefined);
});

test('max-connections: connections beyond the limit are closed at once; close() ends every connection', async (t) => {
  const served = await serveRawImage(t, { size: 65536, server: { maxConnections: 2 } });
  const first = await NbdClient.connectUri(served.uri);
  const second = await NbdClient.connectUri(served.uri);
  // The server hangs up before its greeting: the client sees the connection end (or reset).
  await assert.rejects(NbdClient.connectUri(served.uri), (error: unknown) => isError('PROTOCOL_ERROR')(error) || isError('IO_ERROR')(error));
  await first.disconnect();
  await eventually(() => served.server.connectionCount === 1);
  const third = await NbdClient.connectUri(served.uri);
  await served.server.close();
  assert.equal(served.server.connectionCount, 0);
  await assert.rejects(second.flush());
  await assert.rejects(third.flush());
  assert.throws(() => served.server.addExport({ name: 'late', node: served.node }), isError('INVALID_STATE'));
});

test('handshake timeout closes a silent client', async (t) => {
  const served = await serveRawImage(t, { size: 65536, server: { handshakeTimeoutMs: 50 } });
  const peer = await RawPeer.connect(served.socket);
  await peer.greeting();
  await peer.closed;
  await eventually(() => served.server.connectionCount === 0);
});

test('listening: a live unix path is an IO_ERROR, a stale one is replaced; TCP binds 127.0.0.1 by default', async (t) => {
  const served = await serveRawImage(t, { size: 65536 });
  const other = new NbdServer();
  t.after(() => other.close());
  await assert.rejects(other.listen({ type: 'unix', path: served.socket }), (error: unknown) => isError('IO_ERROR')(error) && /EADDRINUSE|listen/.test(String(error)));
  // A socket file left by a killed server is replaced; the new listener serves.
  const stalePath = join(served.dir, 'stale.sock');
  spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stalePath)}, () => process.kill(process.pid, 'SIGKILL'))`]);
  assert.ok((await lstat(stalePath)).isSocket(), 'the killed server left its socket file');
  await other.listen({ type: 'unix', path: stalePath });
  other.addExport({ name: 'again', node: served.node, writable: false });
  const client = await NbdClient.connect({ type: 'unix', path: stalePath }, { exportName: 'again' });
  await client.disconnect();
  const bound = await served.server.listen({ type: 'inet', port: 0 });
  assert.equal(bound.type === 'inet' && bound.host, '127.0.0.1');
  assert.throws(() => new NbdServer({ maxConnections: 0 }), isError('INVALID_ARGUMENT'));
});

test('trace points: connect, request and disconnect are published on diagnostics channels', async (t) => {
  const served = await serveRawImage(t, { size: 65536 });
  const events: Array<[string, unknown]> = [];
  const subscriptions = ['livebackup:nbd:connect', 'livebackup:nbd:request', 'livebackup:nbd:disconnect'].map((name) => {
    const listener = (message: unknown) => events.push([name, message]);
    diagnosticsChannel.subscribe(name, listener);
    return () => diagnosticsChannel.unsubscribe(name, listener);
  });
  t.after(() => subscriptions.forEach((unsubscribe) => unsubscribe()));
  const client = await NbdClient.connectUri(served.uri);
  await client.write(4096, new Uint8Array(512));
  await client.disconnect();
  await eventually(() => events.some(([name]) => name === 'livebackup:nbd:disconnect'));
  assert.equal(events[0]![0], 'livebackup:nbd:connect');
  assert.ok(events.some(([name, message]) => name === 'livebackup:nbd:request' && JSON.stringify(message) === JSON.stringify({ export: 'disk', type: 'write', offset: 4096, length: 512 })));
  const disconnect = events.find(([name]) => name === 'livebackup:nbd:disconnect')![1] as { export: string; reason: string };
  assert.equal(disconnect.export, 'disk');
  assert.match(disconnect.reason, /NBD_CMD_DISC/);
});

test('NBD_OPT_EXPORT_NAME (old-style entry) with and without NO_ZEROES', async (t) => {
  const served = await serveRawImage(t, { size: 65536, name: '' });
  for (const noZeroes of [true, false]) {
    const peer = await RawPeer.connect(served.socket);
    await peer.greeting();
    peer.send(p.encodeClientFlags(p.NBD_FLAG_C_FIXED_NEWSTYLE | (noZeroes ? p.NBD_FLAG_C_NO_ZEROES : 0)), p.encodeOption(p.NBD_OPT_EXPORT_NAME));
    const reply = await peer.reader.read(noZeroes ? 10 : 134);
    assert.equal(p.readU64(reply, 0), 65536);
    assert.ok(reply.readUInt16BE(8) & p.NBD_FLAG_HAS_FLAGS);
    assert.equal(reply.readUInt16BE(8) & p.NBD_FLAG_SEND_DF, 0, 'no DF without structured replies');
    peer.request(p.NBD_CMD_FLUSH, 9n, 0, 0);
    assert.deepEqual(await peer.simpleReply(), { error: 0, cookie: 9n });
    peer.request(p.NBD_CMD_DISC, 10n, 0, 0);
    await peer.closed;
  }
  // A non-fixed-newstyle client may only use NBD_OPT_EXPORT_NAME.
  const legacy = await RawPeer.connect(served.socket);
  await legacy.greeting();
  legacy.send(p.encodeClientFlags(0), p.encodeOption(p.NBD_OPT_LIST));
  await legacy.closed;
});
