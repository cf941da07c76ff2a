/**
 * The `null-co` driver: a device of a given size that discards writes and
 * reads zeroes. Used for benchmarks and as a throwaway target.
 */
import type { BlockDriver, ChildLink, DriverBlockStatus } from '../block-driver.js';
import type { BlockDriverFactory, DriverOpenArgs } from '../driver-factory.js';
import { LivebackupError } from '../../errors.js';

const DEFAULT_SIZE = 1024 * 1024 * 1024;

export class NullDriver implements BlockDriver {
  readonly driverName = 'null-co';
  readonly isFormat = false;
  readonly isFilter = false;
  readonly supportsBacking = false;
  readonly requestAlignment = 1;
  readonly maxTransfer = 32 * 1024 * 1024;

  constructor(
    private readonly size: number,
    private readonly readZeroes: boolean,
  ) {}

  async read(_offset: number, buf: Uint8Array): Promise<void> {
    // With read-zeroes=off QEMU leaves the buffer untouched; we zero it anyway
    // so that no stale memory ever reaches a reader. Only block status differs.
    buf.fill(0);
  }

  async write(): Promise<void> {}

  async writeZeroes(): Promise<void> {}

  async discard(): Promise<void> {}

  async flush(): Promise<void> {}

  async blockStatus(_offset: number, bytes: number): Promise<DriverBlockStatus> {
    return { bytes, state: this.readZeroes ? 'zero' : 'data' };
  }

  async getLength(): Promise<number> {
    return this.size;
  }

  children(): readonly ChildLink[] {
    return [];
  }

  async close(): Promise<void> {}
}

export const nullCoDriverFactory: BlockDriverFactory = {
  name: 'null-co',
  options: {
    size: { type: 'integer' },
    'read-zeroes': { type: 'boolean' },
    'latency-ns': { type: 'integer' },
  },
  childRoles: [],
  async open(args: DriverOpenArgs): Promise<BlockDriver> {
    const size = (args.options.size as number | undefined) ?? DEFAULT_SIZE;
    if (size < 0) throw new LivebackupError('INVALID_ARGUMENT', "Parameter 'size' expects a non-negative value");
    return new NullDriver(size, (args.options['read-zeroes'] as boolean | undefined) ?? false);
  },
};
