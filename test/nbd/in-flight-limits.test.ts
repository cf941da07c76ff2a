import { test } from 'node:test';
import assert from 'node:assert/strict';
import diagnosticsChannel from 'node:diagnostics_channel';
import { join } from 'node:path';
import { BlockNode } from '../../src/block/block-node.js';
import { NbdServer } from '../../src/nbd/server.js';
import * as p from '../../src/nbd/protocol.js';
import { MemoryDriver } from '../helpers/memory-driver.js';
import { tempDir } from '../helpers/temp-dir.js';
import { RawPeer } from './raw-peer.js';
import { eventually } from './nbd-fixture.js';

/** A memory driver whose reads wait until the test opens the gate. */
class GatedDriver extends MemoryDriver {
  readsStarted = 0;
  private open = false;
  private waiters: Array<() => void> = [];

  openGate(): void {
    this.open = true;
    for (const resolve of this.waiters.splice(0)) resolve();
  }

  override async read(offset: number, buf: Uint8Array): Promise<void> {
    this.readsStarted++;
    if (!this.open) await new Promise<void>((resolve) => this.waiters.push(resolve));
    return super.read(offset, buf);
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
}

for (const limits of [{ maxInFlightRequests: 1 }, { maxInFlightBytes: 64 * 1024 }]) {
  test(`in-flight cap ${JSON.stringify(limits)}: further requests wait in the socket until replies are sent`, async (t) => {
    const size = 1024 * 1024;
    const driver = new GatedDriver(size);
    driver.data.fill(0x3c);
    const node = new BlockNode({ nodeName: 'gated', driver, readOnly: true, discard: 'ignore', noFlush: false, length: size, options: {} });
    const server = new NbdServer(limits);
    server.addExport({ name: 'gated', node });
    const socket = join(await tempDir(t, 'livebackup-nbd-'), 's.sock');
    await server.listen({ type: 'unix', path: socket });
    t.after(() => server.close());
    let decoded = 0;
    const onRequest = () => decoded++;
    diagnosticsChannel.subscribe('livebackup:nbd:request', onRequest);
    t.after(() => diagnosticsChannel.unsubscribe('livebackup:nbd:request', onRequest));

    const peer = await RawPeer.connect(socket);
    await peer.enter('gated');
    const requests = Array.from({ length: 10 }, (_, i) => p.encodeRequest({ flags: 0, type: p.NBD_CMD_READ, cookie: BigInt(i + 1), offset: i * 65536, length: 65536 }));
    peer.send(Buffer.concat(requests));
    await eventually(() => driver.readsStarted === 1);
    await settle();
    // One request runs; at most the next header has been looked at (the byte cap needs its length).
    assert.equal(driver.readsStarted, 1, 'the server started more requests than its cap allows');
    assert.ok(decoded <= 2, `the server decoded ${decoded} requests`);
    driver.openGate();
    const answered = new Set<bigint>();
    while (answered.size < 10) {
      const chunks = await peer.structuredReply();
      assert.equal(RawPeer.errorOf(chunks), 0);
      assert.ok(chunks[0]!.payload.subarray(8).every((byte) => byte === 0x3c));
      answered.add(chunks[0]!.cookie);
    }
    assert.equal(decoded, 10);
    peer.request(p.NBD_CMD_DISC, 0n, 0, 0);
    await peer.closed;
  });
}
