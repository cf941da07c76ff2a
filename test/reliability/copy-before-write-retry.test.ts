/**
 * A copy-before-write copy that fails after the background copy loop has
 * finished must still be retried before the backup completes. A gate
 * driver under the target orders the events: the background copy of
 * cluster 0 waits until a guest write has claimed cluster 1 for
 * copy-before-write; the target write of cluster 1 fails once, only after
 * cluster 0 is done (so the background loop has no dirty cluster left and
 * nothing of its own in flight). The job must then copy cluster 1 again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BlockDriver, ChildLink, DriverBlockStatus, WriteFlags } from '../../src/block/block-driver.js';
import { BlockGraph } from '../../src/block/block-graph.js';
import type { BlockNode } from '../../src/block/block-node.js';
import type { BlockDriverFactory, DriverOpenArgs } from '../../src/block/driver-factory.js';
import { registerDriver } from '../../src/block/driver-registry.js';
import { startBackup } from '../../src/backup/start-backup.js';
import { LivebackupError } from '../../src/errors.js';
import { SeededRandom } from '../helpers/random.js';
import { tempDir } from '../helpers/temp-dir.js';

const CLUSTER = 64 * 1024;

/** Ordering of the two target writes (one test at a time uses it). */
class Gate {
  private cluster1Arrived!: () => void;
  readonly cluster1Claimed = new Promise<void>((resolve) => (this.cluster1Arrived = resolve));
  private cluster0Finished!: () => void;
  readonly cluster0Done = new Promise<void>((resolve) => (this.cluster0Finished = resolve));
  failedOnce = false;

  async write(image: BlockNode, offset: number, buf: Uint8Array): Promise<void> {
    if (offset < CLUSTER) {
      await this.cluster1Claimed;
      await image.write(offset, buf);
      this.cluster0Finished();
      return;
    }
    this.cluster1Arrived();
    if (!this.failedOnce) {
      this.failedOnce = true;
      await this.cluster0Done;
      // Let the background loop see the finished task and look for more work.
      for (let turn = 0; turn < 20; turn++) await new Promise((resolve) => setImmediate(resolve));
      throw new LivebackupError('IO_ERROR', 'gate: injected EIO', { errno: 'EIO' });
    }
    await image.write(offset, buf);
  }
}

let gate = new Gate();

class GateDriver implements BlockDriver {
  readonly driverName = 'test-cbw-gate';
  readonly isFormat = false;
  readonly isFilter = true;
  readonly supportsBacking = false;
  readonly requestAlignment = 1;
  readonly maxTransfer = 1024 * 1024;
  constructor(private readonly image: BlockNode) {}
  read(offset: number, buf: Uint8Array): Promise<void> {
    return this.image.read(offset, buf);
  }
  write(offset: number, buf: Uint8Array, _flags: WriteFlags): Promise<void> {
    return gate.write(this.image, offset, buf);
  }
  flush(): Promise<void> {
    return this.image.flush();
  }
  async blockStatus(_offset: number, bytes: number): Promise<DriverBlockStatus> {
    return { bytes, state: 'data' };
  }
  async getLength(): Promise<number> {
    return this.image.length;
  }
  children(): readonly ChildLink[] {
    return [{ role: 'image', node: this.image, owned: true }];
  }
  async close(): Promise<void> {}
}

const gateFactory: BlockDriverFactory = {
  name: 'test-cbw-gate',
  options: {},
  childRoles: ['image'],
  async open(args: DriverOpenArgs): Promise<BlockDriver> {
    return new GateDriver((await args.openChild('image', args.options.image as Record<string, unknown>))!);
  },
};
registerDriver(gateFactory);

test(
  'a copy-before-write copy failing after the background loop ended is retried before the job completes',
  async (t) => {
    gate = new Gate();
    const dir = await tempDir(t);
    const sourcePath = join(dir, 'source.raw');
    const targetPath = join(dir, 'target.raw');
    const pointInTime = new SeededRandom(5).bytes(2 * CLUSTER);
    await writeFile(sourcePath, pointInTime);
    await writeFile(targetPath, new Uint8Array(2 * CLUSTER));
    const graph = new BlockGraph();
    t.after(() => graph.closeAll());
    const source = await graph.open({ driver: 'raw', 'node-name': 'source', file: { driver: 'file', filename: sourcePath } });
    const target = await graph.open({ driver: 'test-cbw-gate', 'node-name': 'target', image: { driver: 'raw', file: { driver: 'file', filename: targetPath } } });
    const job = startBackup({ source, target, sync: 'full', maxWorkers: 1, maxChunk: CLUSTER, onTargetError: 'ignore', jobId: 'cbw-retry' });
    // The guest write to cluster 1 needs a copy-before-write, which fails once: the write fails.
    await assert.rejects(source.write(CLUSTER, new Uint8Array(4096).fill(0xee)));
    const result = await job.done;
    assert.equal(result.status, 'completed');
    await graph.closeAll();
    const copied = new Uint8Array(await readFile(targetPath));
    assert.equal(Buffer.compare(copied, pointInTime), 0, 'the target is not the point in time');
  },
);
