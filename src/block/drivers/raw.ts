/**
 * The `raw` format driver: the guest sees the file child's bytes, optionally
 * a window [offset, offset + size) of them.
 */
import type { BlockDriver, ChildLink, DriverBlockStatus, WriteFlags, WriteZeroesFlags } from '../block-driver.js';
import type { BlockNode } from '../block-node.js';
import type { BlockDriverFactory, DriverOpenArgs } from '../driver-factory.js';
import { LivebackupError } from '../../errors.js';
import { createHostFile } from './file.js';

export class RawDriver implements BlockDriver {
  readonly driverName = 'raw';
  readonly isFormat = true;
  readonly isFilter = false;
  readonly supportsBacking = false;
  readonly requestAlignment: number;
  readonly maxTransfer: number;

  constructor(
    private readonly file: BlockNode,
    private readonly base: number,
    /** Fixed window size, or undefined to follow the file's length. */
    private readonly fixedSize: number | undefined,
    private readonly owned: boolean,
  ) {
    this.requestAlignment = file.driver.requestAlignment;
    this.maxTransfer = file.driver.maxTransfer;
  }

  read(offset: number, buf: Uint8Array): Promise<void> {
    return this.file.read(this.base + offset, buf);
  }

  write(offset: number, buf: Uint8Array, flags: WriteFlags): Promise<void> {
    return this.file.write(this.base + offset, buf, { fua: flags.fua });
  }

  writeZeroes(offset: number, bytes: number, flags: WriteZeroesFlags): Promise<void> {
    return this.file.writeZeroes(this.base + offset, bytes, { ...flags, mayGrow: false });
  }

  discard(offset: number, bytes: number): Promise<void> {
    return this.file.discard(this.base + offset, bytes);
  }

  async flush(): Promise<void> {
    // The file child is flushed by BlockNode after this.
  }

  async blockStatus(offset: number, bytes: number): Promise<DriverBlockStatus> {
    const below = await this.file.blockStatus(this.base + offset, bytes);
    return {
      bytes: below.bytes,
      state: below.zero && !below.data ? 'zero' : 'data',
      hostOffset: this.base + offset,
      hostNode: this.file,
    };
  }

  async getLength(): Promise<number> {
    return this.fixedSize ?? Math.max(0, this.file.length - this.base);
  }

  async truncate(length: number): Promise<void> {
    if (this.fixedSize !== undefined || this.base !== 0) {
      throw new LivebackupError('UNSUPPORTED', 'a raw node with offset or size options cannot be resized');
    }
    await this.file.truncate(length);
  }

  children(): readonly ChildLink[] {
    return [{ role: 'file', node: this.file, owned: this.owned }];
  }

  async close(): Promise<void> {}
}

export const rawDriverFactory: BlockDriverFactory = {
  name: 'raw',
  options: { offset: { type: 'integer' }, size: { type: 'integer' } },
  childRoles: ['file'],
  async open(args: DriverOpenArgs): Promise<BlockDriver> {
    const reference = args.options.file;
    if (reference === undefined || reference === null) {
      throw new LivebackupError('INVALID_ARGUMENT', "Parameter 'file' is missing");
    }
    const file = (await args.openChild('file', reference as string | Record<string, unknown>))!;
    const base = (args.options.offset as number | undefined) ?? 0;
    const size = args.options.size as number | undefined;
    if (base < 0) throw new LivebackupError('INVALID_ARGUMENT', "Parameter 'offset' expects a non-negative value");
    if (size !== undefined && size < 0) throw new LivebackupError('INVALID_ARGUMENT', "Parameter 'size' expects a non-negative value");
    if (base > file.length || (size !== undefined && base + size > file.length)) {
      throw new LivebackupError(
        'INVALID_ARGUMENT',
        `The sum of offset (${base}) and size (${size ?? 0}) has to be smaller or equal to the actual size of the containing file (${file.length})`,
      );
    }
    return new RawDriver(file, base, size, typeof reference === 'object');
  },
  createOptions: [],
  async create(args): Promise<void> {
    const names = Object.keys(args.formatOptions).filter((name) => name !== 'preallocation' || args.formatOptions[name] !== 'off');
    if (names.length > 0) throw new LivebackupError('INVALID_ARGUMENT', `Invalid option '${names[0]}' for format 'raw'`);
    await createHostFile(args.filename, args.size);
  },
};
