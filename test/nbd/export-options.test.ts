import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { WriteFlags } from '../../src/block/block-driver.js';
import { BlockNode } from '../../src/block/block-node.js';
import { NbdClient } from '../../src/nbd/client.js';
import { NbdServer } from '../../src/nbd/server.js';
import { NBD_FLAG_CAN_MULTI_CONN } from '../../src/nbd/protocol.js';
import { MemoryDriver } from '../helpers/memory-driver.js';
import { tempDir } from '../helpers/temp-dir.js';

/** A memory driver that records the FUA flag of every write it receives. */
class FuaRecordingDriver extends MemoryDriver {
  readonly fuaFlags: boolean[] = [];

  override async write(offset: number, buf: Uint8Array, flags: WriteFlags = {}): Promise<void> {
    this.fuaFlags.push(flags.fua ?? false);
    return super.write(offset, buf);
  }
}

async function serve(t: Parameters<typeof tempDir>[0], exportOptions: { writethrough?: boolean; multiConn?: boolean; allocationDepth?: boolean }) {
  const driver = new FuaRecordingDriver(1024 * 1024);
  const node = new BlockNode({ nodeName: 'mem', driver, readOnly: false, discard: 'unmap', noFlush: false, length: 1024 * 1024, options: {} });
  const server = new NbdServer();
  server.addExport({ name: 'mem', node, writable: true, ...exportOptions });
  const path = join(await tempDir(t, 'livebackup-nbd-'), 's.sock');
  await server.listen({ type: 'unix', path });
  t.after(() => server.close());
  return { driver, address: { type: 'unix' as const, path } };
}

test('writethrough export: every write reaches the driver with FUA; otherwise only FUA requests do', async (t) => {
  for (const writethrough of [true, false]) {
    const { driver, address } = await serve(t, { writethrough });
    const client = await NbdClient.connect(address, { exportName: 'mem' });
    await client.write(0, new Uint8Array(4096).fill(1));
    await client.write(4096, new Uint8Array(4096).fill(2), { fua: true });
    await client.disconnect();
    assert.deepEqual(driver.fuaFlags, writethrough ? [true, true] : [false, true]);
  }
});

test('multiConn false hides NBD_FLAG_CAN_MULTI_CONN; allocationDepth false offers only base:allocation', async (t) => {
  const { address } = await serve(t, { multiConn: false, allocationDepth: false });
  const client = await NbdClient.connect(address, { exportName: 'mem', metaContexts: ['base:allocation', 'qemu:allocation-depth'] });
  assert.equal(client.session.transmissionFlags & NBD_FLAG_CAN_MULTI_CONN, 0);
  assert.deepEqual([...client.session.metaContexts.keys()], ['base:allocation']);
  await client.disconnect();
  assert.deepEqual(await NbdClient.listMetaContexts(address, 'mem', ['qemu:']), []);
});
