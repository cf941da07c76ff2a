/**
 * The `file` protocol driver: positional I/O on a host file through a
 * FileHandle. Block status comes from lseek(SEEK_DATA/SEEK_HOLE) through the
 * optional native helper (see host-seek.ts): holes are reported as `zero`,
 * like QEMU's file-posix. Without the helper, or on a file system that
 * cannot tell, every byte is reported as data.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { constants, writeSync } from 'node:fs';
import type { BlockDriver, ChildLink, DriverBlockStatus } from '../block-driver.js';
import type { BlockDriverFactory, DriverOpenArgs } from '../driver-factory.js';
import { LivebackupError, ioError } from '../../errors.js';
import { hostSeek } from '../host-seek.js';
import { InlineWritePolicy } from './inline-writes.js';

const MAX_TRANSFER = 32 * 1024 * 1024;
/** Node lengths are whole 512-byte sectors, as in QEMU. */
const SECTOR_SIZE = 512;

/** lseek errors meaning "this file system (or file type) cannot report holes": stop asking for this file. */
const SEEK_UNSUPPORTED = new Set(['EINVAL', 'ENOTSUP', 'EOPNOTSUPP', 'ESPIPE']);

export class FileDriver implements BlockDriver {
  readonly driverName = 'file';
  readonly isFormat = false;
  readonly isFilter = false;
  readonly supportsBacking = false;
  readonly requestAlignment = 1;
  readonly maxTransfer = MAX_TRANSFER;

  private size: number;
  /** The background fdatasync started by startWriteback, while it runs. */
  private writeback: Promise<void> | undefined;
  /** A background fdatasync failure not yet reported by flush. */
  private writebackError: LivebackupError | undefined;
  /** False once lseek said this file cannot report holes (then everything is data). */
  private seekWorks = hostSeek !== undefined;
  private readonly inlineWrites = new InlineWritePolicy();

  constructor(
    readonly filename: string,
    private readonly handle: FileHandle,
    size: number,
    private readonly readOnly: boolean,
  ) {
    this.size = size;
  }

  async read(offset: number, buf: Uint8Array): Promise<void> {
    let done = 0;
    try {
      while (done < buf.length) {
        const { bytesRead } = await this.handle.read(buf, done, buf.length - done, offset + done);
        if (bytesRead === 0) {
          // Past the end of the host file (it shrank, or the format maps past it): zeroes.
          buf.fill(0, done);
          return;
        }
        done += bytesRead;
      }
    } catch (error) {
      throw ioError(`read of ${this.filename} at ${offset + done}`, error);
    }
  }

  async write(offset: number, buf: Uint8Array, flags: { fua?: boolean }): Promise<void> {
    let done = 0;
    try {
      if (this.inlineWrites.shouldInline(buf.length)) {
        const startedAt = performance.now();
        try {
          while (done < buf.length) done += writeSync(this.handle.fd, buf, done, buf.length - done, offset + done);
        } finally {
          this.inlineWrites.finished(startedAt);
        }
      }
      while (done < buf.length) {
        const { bytesWritten } = await this.handle.write(buf, done, buf.length - done, offset + done);
        done += bytesWritten;
      }
      if (offset + buf.length > this.size) this.size = offset + buf.length;
      if (flags.fua) await this.handle.datasync();
    } catch (error) {
      throw ioError(`write of ${this.filename} at ${offset + done}`, error);
    }
  }

  async flush(): Promise<void> {
    if (this.readOnly) return;
    await this.writeback;
    const backgroundError = this.writebackError;
    if (backgroundError) {
      // The kernel reports a write-back error to one fdatasync only: the
      // background one took it, so this flush must report it instead.
      this.writebackError = undefined;
      throw backgroundError;
    }
    try {
      await this.handle.datasync();
    } catch (error) {
      throw ioError(`flush of ${this.filename}`, error);
    }
  }

  startWriteback(): void {
    if (this.readOnly || this.writeback) return;
    this.writeback = this.handle.datasync().then(
      () => {
        this.writeback = undefined;
      },
      (error: unknown) => {
        this.writeback = undefined;
        this.writebackError ??= ioError(`flush of ${this.filename}`, error);
      },
    );
  }

  /**
   * Data runs are [offset, next hole), holes are `zero` runs [offset, next
   * data); past the host file's end (it shrank, or the node is longer) the
   * bytes read as zeroes, so they are `zero` too. Block status is only an
   * optimisation: any lseek failure reports `data`, never an error.
   *
   * Why a `zero` that is stale by the time the caller uses it cannot break a
   * backup of this file: the backup job asks the source's block status only
   * for areas whose copy bits are still set, and after the status call it
   * re-reads the bitmap and claims (clears) only the bits that are still set,
   * synchronously (BackupJob.claimNow, then BlockCopy.copyArea). A guest
   * write reaches this file only after copy-before-write has claimed the bits
   * of its clusters, which it does before the write starts. So a bit still
   * set at the claim means no write has touched that cluster since the
   * backup started, and the lseek answer, asked after the start, describes
   * the point-in-time content there. A cluster written after the status call
   * has lost its bit and is left out of the claim; copy-before-write copied
   * its point-in-time content. Other users (img map, NBD block status) get
   * what a racing reader gets from QEMU: the answer of one moment.
   */
  async blockStatus(offset: number, bytes: number): Promise<DriverBlockStatus> {
    if (!this.seekWorks || !hostSeek) return { bytes, state: 'data' };
    try {
      const fd = this.handle.fd;
      const data = hostSeek.seekData(fd, offset);
      if (data === -1) return { bytes, state: 'zero' };
      if (data > offset) return { bytes: Math.min(bytes, data - offset), state: 'zero' };
      const hole = hostSeek.seekHole(fd, offset);
      // hole <= offset: the file changed between the two calls; data is always a safe answer.
      if (data < offset || hole <= offset) return { bytes, state: 'data' };
      return { bytes: Math.min(bytes, hole - offset), state: 'data' };
    } catch (error) {
      if (SEEK_UNSUPPORTED.has((error as { code?: string }).code ?? '')) this.seekWorks = false;
      return { bytes, state: 'data' };
    }
  }

  /**
   * The file's size rounded up to 512 bytes, as QEMU's block layer counts
   * it (in sectors): a 1000-byte file is a 1024-byte node whose last 24
   * bytes read as zeroes until written.
   */
  async getLength(): Promise<number> {
    return Math.ceil(this.size / SECTOR_SIZE) * SECTOR_SIZE;
  }

  /**
   * Set the host file's size (formats grow their file with this). Bytes
   * past the old end read as zeroes.
   */
  async truncate(size: number): Promise<void> {
    try {
      await this.handle.truncate(size);
      this.size = size;
    } catch (error) {
      throw ioError(`truncate of ${this.filename}`, error);
    }
  }

  children(): readonly ChildLink[] {
    return [];
  }

  async close(): Promise<void> {
    await this.writeback;
    await this.handle.close();
  }
}

export const fileDriverFactory: BlockDriverFactory = {
  name: 'file',
  options: {
    filename: { type: 'string', required: true },
    aio: { type: 'string', values: ['threads', 'native', 'io_uring'] },
    locking: { type: 'string', values: ['on', 'off', 'auto'] },
    'aio-max-batch': { type: 'integer' },
    'pr-manager': { type: 'string' },
    'drop-cache': { type: 'boolean' },
    'x-check-cache-dropped': { type: 'boolean' },
  },
  childRoles: [],
  async open(args: DriverOpenArgs): Promise<BlockDriver> {
    const filename = args.options.filename as string;
    if (filename === '') throw new LivebackupError('INVALID_ARGUMENT', "Parameter 'filename' must not be empty");
    let handle: FileHandle;
    try {
      handle = await open(filename, args.readOnly ? constants.O_RDONLY : constants.O_RDWR);
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === 'ENOENT') {
        throw new LivebackupError('NOT_FOUND', `Could not open '${filename}': No such file or directory`, { cause: error, errno: 'ENOENT' });
      }
      if (code === 'EISDIR') {
        throw new LivebackupError('INVALID_ARGUMENT', `'${filename}' is a directory, not an image file`, { cause: error, errno: 'EINVAL' });
      }
      throw ioError(`Could not open '${filename}'`, error);
    }
    try {
      const stats = await handle.stat();
      if (!stats.isFile() && !stats.isBlockDevice()) {
        throw new LivebackupError('INVALID_ARGUMENT', `'${filename}' is not a regular file or block device`);
      }
      return new FileDriver(filename, handle, stats.size, args.readOnly);
    } catch (error) {
      await handle.close();
      throw error;
    }
  },
  async create(args): Promise<void> {
    const unknown = Object.keys(args.formatOptions);
    if (unknown.length > 0) {
      throw new LivebackupError('INVALID_ARGUMENT', `Invalid option '${unknown[0]}' for protocol 'file'`);
    }
    await createHostFile(args.filename, args.size);
  },
};

/** Create (or truncate) a host file of `size` bytes, sparse. */
export async function createHostFile(filename: string, size: number): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(filename, constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC, 0o644);
    await handle.truncate(size);
  } catch (error) {
    throw ioError(`Could not create '${filename}'`, error);
  } finally {
    await handle?.close();
  }
}
