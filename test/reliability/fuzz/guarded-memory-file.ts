/**
 * `fuzz-memory`: a protocol driver over an in-memory byte array, registered
 * for fuzzing formats. It stands where a `file` node would and records
 * every access outside the file's valid range (reads past the end, writes
 * that start past the end, growth beyond a cap) as a violation, so a
 * format driver fed hostile metadata is caught reaching where it must not.
 *
 *   const key = GuardedMemoryFiles.put(bytes, { maxGrowth: 8 << 20 });
 *   graph.open({ driver: 'qcow2', file: { driver: 'fuzz-memory', key } });
 */
import type { BlockDriver, ChildLink, DriverBlockStatus, WriteFlags } from '../../../src/block/block-driver.js';
import type { BlockDriverFactory, DriverOpenArgs } from '../../../src/block/driver-factory.js';
import { registerDriver } from '../../../src/block/driver-registry.js';
import { LivebackupError } from '../../../src/errors.js';

interface StoredFile {
  bytes: Uint8Array;
  length: number;
  readonly maxLength: number;
  readonly violations: string[];
}

/** The in-memory files `fuzz-memory` nodes open, by key. */
export class GuardedMemoryFiles {
  private static readonly files = new Map<number, StoredFile>();
  private static nextKey = 1;

  /** Store a copy of `bytes`; it may grow by at most `maxGrowth` bytes. Returns its key. */
  static put(bytes: Uint8Array, options: { maxGrowth: number }): number {
    const key = GuardedMemoryFiles.nextKey++;
    GuardedMemoryFiles.files.set(key, { bytes: Uint8Array.from(bytes), length: bytes.length, maxLength: bytes.length + options.maxGrowth, violations: [] });
    return key;
  }

  /** Violations recorded for a key so far. */
  static violations(key: number): readonly string[] {
    return GuardedMemoryFiles.require(key).violations;
  }

  /** Forget a file. */
  static drop(key: number): void {
    GuardedMemoryFiles.files.delete(key);
  }

  /** @internal */
  static require(key: number): StoredFile {
    const file = GuardedMemoryFiles.files.get(key);
    if (!file) throw new LivebackupError('NOT_FOUND', `no fuzz-memory file with key ${key}`);
    return file;
  }
}

class GuardedMemoryDriver implements BlockDriver {
  readonly driverName = 'fuzz-memory';
  readonly isFormat = false;
  readonly isFilter = false;
  readonly supportsBacking = false;
  readonly requestAlignment = 1;
  readonly maxTransfer = 64 * 1024 * 1024;

  constructor(private readonly file: StoredFile) {}

  async read(offset: number, buf: Uint8Array): Promise<void> {
    this.checkInside('read', offset, buf.length);
    const available = Math.max(0, Math.min(buf.length, this.file.length - offset));
    buf.set(this.file.bytes.subarray(offset, offset + available));
    buf.fill(0, available);
  }

  async write(offset: number, buf: Uint8Array, flags: WriteFlags): Promise<void> {
    const end = offset + buf.length;
    if (offset < 0 || !Number.isSafeInteger(end) || (end > this.file.length && !flags.mayGrow)) {
      this.violation(`write ${offset}+${buf.length} outside the file (length ${this.file.length})`);
    }
    if (end > this.file.maxLength) {
      this.violation(`write ${offset}+${buf.length} grows the file past ${this.file.maxLength}`);
      throw new LivebackupError('IO_ERROR', 'fuzz-memory: growth cap reached', { errno: 'ENOSPC' });
    }
    this.ensureCapacity(end);
    this.file.bytes.set(buf, offset);
    this.file.length = Math.max(this.file.length, end);
  }

  async truncate(length: number): Promise<void> {
    if (length > this.file.maxLength) {
      this.violation(`truncate to ${length} grows the file past ${this.file.maxLength}`);
      throw new LivebackupError('IO_ERROR', 'fuzz-memory: growth cap reached', { errno: 'ENOSPC' });
    }
    this.ensureCapacity(length);
    this.file.bytes.fill(0, Math.min(length, this.file.length), this.file.length);
    this.file.length = length;
  }

  async flush(): Promise<void> {}

  async blockStatus(_offset: number, bytes: number): Promise<DriverBlockStatus> {
    return { bytes, state: 'data' };
  }

  async getLength(): Promise<number> {
    return this.file.length;
  }

  children(): readonly ChildLink[] {
    return [];
  }

  async close(): Promise<void> {}

  private checkInside(what: string, offset: number, bytes: number): void {
    if (offset < 0 || !Number.isSafeInteger(offset + bytes) || offset + bytes > this.file.length) {
      this.violation(`${what} ${offset}+${bytes} outside the file (length ${this.file.length})`);
    }
  }

  private violation(text: string): void {
    if (this.file.violations.length < 10) this.file.violations.push(text);
  }

  private ensureCapacity(length: number): void {
    if (length <= this.file.bytes.length) return;
    const grown = new Uint8Array(Math.min(this.file.maxLength, Math.max(length, this.file.bytes.length * 2)));
    grown.set(this.file.bytes.subarray(0, this.file.length));
    this.file.bytes = grown;
  }
}

/** The factory; registered on import. */
export const guardedMemoryFactory: BlockDriverFactory = {
  name: 'fuzz-memory',
  options: { key: { type: 'integer', required: true } },
  childRoles: [],
  async open(args: DriverOpenArgs): Promise<BlockDriver> {
    return new GuardedMemoryDriver(GuardedMemoryFiles.require(args.options.key as number));
  },
};

registerDriver(guardedMemoryFactory);
