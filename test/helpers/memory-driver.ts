/**
 * An in-memory block driver with a configurable request alignment, for
 * testing BlockNode's alignment, splitting and tracking logic against a
 * plain reference. It asserts the driver contract (aligned, in range, no
 * larger than maxTransfer) on every call.
 */
import type { BlockDriver, ChildLink, DriverBlockStatus } from '../../src/block/block-driver.js';
import { BlockNode } from '../../src/block/block-node.js';

export class MemoryDriver implements BlockDriver {
  readonly driverName = 'test-memory';
  readonly isFormat = false;
  readonly isFilter = false;
  readonly supportsBacking = false;
  readonly data: Uint8Array;
  readonly contractViolations: string[] = [];
  calls = 0;

  constructor(
    size: number,
    readonly requestAlignment = 1,
    readonly maxTransfer = 1024 * 1024,
  ) {
    this.data = new Uint8Array(size);
  }

  private check(what: string, offset: number, bytes: number): void {
    this.calls++;
    if (offset % this.requestAlignment !== 0 || bytes % this.requestAlignment !== 0) {
      this.contractViolations.push(`${what} unaligned ${offset}+${bytes}`);
    }
    if (bytes > this.maxTransfer) this.contractViolations.push(`${what} too large ${bytes}`);
    if (offset < 0 || offset + bytes > this.data.length) this.contractViolations.push(`${what} out of range ${offset}+${bytes}`);
  }

  async read(offset: number, buf: Uint8Array): Promise<void> {
    this.check('read', offset, buf.length);
    await new Promise((resolve) => setImmediate(resolve));
    buf.set(this.data.subarray(offset, offset + buf.length));
  }

  async write(offset: number, buf: Uint8Array): Promise<void> {
    this.check('write', offset, buf.length);
    const copy = Uint8Array.from(buf);
    await new Promise((resolve) => setImmediate(resolve));
    this.data.set(copy, offset);
  }

  async flush(): Promise<void> {}

  async blockStatus(_offset: number, bytes: number): Promise<DriverBlockStatus> {
    return { bytes, state: 'data' };
  }

  async getLength(): Promise<number> {
    return this.data.length;
  }

  children(): readonly ChildLink[] {
    return [];
  }

  async close(): Promise<void> {}
}

/** A writable BlockNode over a MemoryDriver. */
export function memoryNode(size: number, alignment = 1, maxTransfer = 1024 * 1024): { node: BlockNode; driver: MemoryDriver } {
  const driver = new MemoryDriver(size, alignment, maxTransfer);
  return { node: writableNodeOver(driver, size), driver };
}

/** A writable BlockNode of `size` bytes over any test driver. */
export function writableNodeOver(driver: BlockDriver, size: number, nodeName = 'mem'): BlockNode {
  return new BlockNode({ nodeName, driver, readOnly: false, discard: 'unmap', noFlush: false, length: size, options: {} });
}
