/**
 * BlockCopy: the copy engine shared by the background copy loop and
 * copy-before-write. The copy bitmap is the single source of truth: a set
 * bit means "this cluster still holds point-in-time data that has not
 * reached the target". A claim clears the bits and registers an in-flight
 * task synchronously (no await in between), so a cluster is never copied
 * twice; whoever needs a range that is being copied waits for that task and
 * looks again. A failed task sets its bits again, so the next claimant
 * retries it.
 */
import { channel } from 'node:diagnostics_channel';
import { HBitmap } from '../bitmap/hbitmap.js';
import { alignUp, type BlockNode, type RangeLock } from '../block/block-node.js';
import { LivebackupError, ioError } from '../errors.js';
import { BufferPool } from './buffer-pool.js';
import { isAllZero } from './zero-detect.js';

const taskChannel = channel('livebackup:backup:copy-task');

/**
 * After this many bytes written to the target, start writing them out to
 * disk in the background. Without it the page cache holds the whole copy
 * and the final flush writes all of it while the job waits; with it the
 * disk works during the copy and the final flush is short.
 */
export const DEFAULT_WRITEBACK_INTERVAL = 32 * 1024 * 1024;

export interface BlockCopyParams {
  readonly source: BlockNode;
  readonly target: BlockNode;
  /** Copy granularity in bytes (power of two): max(64 KiB, target cluster size). */
  readonly clusterSize: number;
  /** Largest data task in bytes (a multiple of clusterSize). */
  readonly maxChunk: number;
  /** The target reads as zeroes everywhere at the start: zero ranges are not written. */
  readonly targetZeroInitialized: boolean;
  /**
   * Hold a range lock on the target while copying, so readers of the target
   * (a fleecing target whose backing is the source) never see a half-done
   * copy-before-write.
   */
  readonly lockTarget: boolean;
  /** Bytes written to the target between background write-outs (startWriteback); 0 = never. */
  readonly writebackInterval?: number;
  /**
   * Copies read the source only after this settles: the source's writes
   * that were in flight at the point in time (see BackupJob), so no copy
   * reads half of one.
   */
  readonly priorWrites?: Promise<void>;
}

/** Which side of a copy failed. */
export type CopyOperation = 'read' | 'write';

/** A copy failure, with the side that failed (for on-source-error / on-target-error). */
export class CopyError extends LivebackupError {
  constructor(
    readonly operation: CopyOperation,
    cause: LivebackupError,
  ) {
    super(cause.code, cause.message, { cause, errno: cause.errno });
    this.name = 'CopyError';
  }
}

/** A copy in flight over [offset, endOffset). */
interface CopyTask {
  readonly offset: number;
  readonly endOffset: number;
  readonly done: Promise<void>;
}

/** A dirty area claimed for copying, with what is known about its content. */
export interface ClaimedArea {
  readonly offset: number;
  readonly bytes: number;
  /** The source reads as zeroes over the whole area (from block status). */
  readonly knownZero: boolean;
}

export class BlockCopy {
  readonly source: BlockNode;
  readonly target: BlockNode;
  readonly clusterSize: number;
  readonly maxChunk: number;
  /** Set bits: clusters not yet copied. Guarded by the JS thread: claims are synchronous. */
  readonly bitmap: HBitmap;
  private readonly targetZeroInitialized: boolean;
  private readonly lockTarget: boolean;
  private readonly writebackInterval: number;
  private priorWrites: Promise<void> | undefined;
  private readonly tasks = new Set<CopyTask>();
  private readonly buffers: BufferPool;
  private bytesInFlight = 0;
  private bytesSinceWriteback = 0;
  /** Called with the number of bytes each finished task accounted for. */
  onProgress: (bytes: number) => void = () => undefined;

  constructor(params: BlockCopyParams) {
    if (params.source.length !== params.target.length) {
      throw new LivebackupError('INVALID_ARGUMENT', 'Source and target image have different sizes');
    }
    if (!Number.isInteger(Math.log2(params.clusterSize)) || params.maxChunk % params.clusterSize !== 0 || params.maxChunk <= 0) {
      throw new LivebackupError('INVALID_ARGUMENT', `invalid copy geometry: cluster ${params.clusterSize}, chunk ${params.maxChunk}`);
    }
    this.source = params.source;
    this.target = params.target;
    this.clusterSize = params.clusterSize;
    this.maxChunk = params.maxChunk;
    this.targetZeroInitialized = params.targetZeroInitialized;
    this.lockTarget = params.lockTarget;
    this.writebackInterval = params.writebackInterval ?? DEFAULT_WRITEBACK_INTERVAL;
    this.priorWrites = params.priorWrites?.then(() => {
      this.priorWrites = undefined;
    });
    this.bitmap = new HBitmap(params.source.length, params.clusterSize);
    this.buffers = new BufferPool(params.maxChunk, 64);
  }

  /** Bytes still to copy: dirty plus claimed but not finished. */
  get remaining(): number {
    return this.bitmap.count() + this.bytesInFlight;
  }

  /** Number of copy tasks in flight. */
  get tasksInFlight(): number {
    return this.tasks.size;
  }

  /**
   * Claim [offset, offset + bytes) and copy it. The range must be dirty in
   * the bitmap at the moment of the call (take it from nextDirtyArea without
   * awaiting in between). Rejects with CopyError; the bits are then set again.
   */
  copyArea(area: ClaimedArea): Promise<void> {
    this.bitmap.reset(area.offset, area.bytes);
    this.bytesInFlight += area.bytes;
    let release!: () => void;
    const task: CopyTask = {
      offset: area.offset,
      endOffset: area.offset + area.bytes,
      done: new Promise<void>((resolve) => (release = resolve)),
    };
    this.tasks.add(task);
    const work = this.performCopy(area).then(
      () => {
        this.bytesInFlight -= area.bytes;
        this.onProgress(area.bytes);
      },
      (error: unknown) => {
        this.bytesInFlight -= area.bytes;
        this.bitmap.set(area.offset, area.bytes);
        throw error;
      },
    );
    return work.finally(() => {
      this.tasks.delete(task);
      release();
    });
  }

  /**
   * Make sure the point-in-time content of [offset, offset + bytes) has
   * reached the target (copy-before-write): copies the dirty clusters that
   * cover it, and waits for tasks in flight over it. Resolves when no
   * covering cluster is dirty or being copied, with the number of bytes this
   * call copied itself. Rejects with CopyError if a copy it started failed.
   */
  async copyRange(offset: number, bytes: number): Promise<number> {
    const start = offset - (offset % this.clusterSize);
    const end = Math.min(this.source.length, offset + bytes);
    let copied = 0;
    if (end <= start) return copied;
    for (;;) {
      const started: Promise<void>[] = [];
      for (let position = start; position < end; ) {
        const area = this.bitmap.nextDirtyArea(position, end, this.maxChunk);
        if (!area) break;
        const areaEnd = Math.min(this.source.length, alignUp(area.offset + area.bytes, this.clusterSize));
        started.push(this.copyArea({ offset: area.offset, bytes: areaEnd - area.offset, knownZero: false }));
        copied += areaEnd - area.offset;
        position = areaEnd;
      }
      if (started.length > 0) {
        const results = await Promise.allSettled(started);
        const failure = results.find((result) => result.status === 'rejected');
        if (failure) throw (failure as PromiseRejectedResult).reason;
        continue;
      }
      const busy = this.findTask(start, end);
      if (!busy) return copied;
      await busy.done;
    }
  }

  /** Wait until no task is in flight. */
  async drain(): Promise<void> {
    while (this.tasks.size > 0) await Promise.all([...this.tasks].map((task) => task.done));
  }

  private findTask(start: number, end: number): CopyTask | undefined {
    for (const task of this.tasks) if (task.offset < end && start < task.endOffset) return task;
    return undefined;
  }

  private async performCopy(area: ClaimedArea): Promise<void> {
    const published = taskChannel.hasSubscribers;
    if (published) taskChannel.publish({ phase: 'start', offset: area.offset, bytes: area.bytes, zero: area.knownZero });
    if (this.priorWrites) await this.priorWrites;
    let lock: RangeLock | undefined;
    if (this.lockTarget) lock = await this.target.lockRange(area.offset, area.bytes);
    try {
      if (area.knownZero) {
        await this.writeZeroes(area.offset, area.bytes, lock);
      } else {
        for (let position = area.offset; position < area.offset + area.bytes; ) {
          const chunk = Math.min(this.maxChunk, area.offset + area.bytes - position);
          await this.copyData(position, chunk, lock);
          position += chunk;
        }
      }
    } finally {
      lock?.release();
      if (published) taskChannel.publish({ phase: 'end', offset: area.offset, bytes: area.bytes });
    }
  }

  /** Copy one chunk of at most maxChunk bytes, turning all-zero data into writeZeroes. */
  private async copyData(offset: number, bytes: number, lock: RangeLock | undefined): Promise<void> {
    const buffer = this.buffers.acquire();
    try {
      const view = buffer.subarray(0, bytes);
      try {
        await this.source.read(offset, view);
      } catch (error) {
        throw new CopyError('read', ioError(`backup read of source at ${offset}`, error));
      }
      if (isAllZero(view)) {
        await this.writeZeroes(offset, bytes, lock);
        return;
      }
      try {
        await this.target.write(offset, view, { lockToken: lock?.token });
      } catch (error) {
        throw new CopyError('write', ioError(`backup write of target at ${offset}`, error));
      }
      this.bytesSinceWriteback += bytes;
      if (this.writebackInterval > 0 && this.bytesSinceWriteback >= this.writebackInterval) {
        this.bytesSinceWriteback = 0;
        this.target.startWriteback();
      }
    } finally {
      this.buffers.release(buffer);
    }
  }

  private async writeZeroes(offset: number, bytes: number, lock: RangeLock | undefined): Promise<void> {
    if (this.targetZeroInitialized) return;
    try {
      await this.target.writeZeroes(offset, bytes, { mayUnmap: true, lockToken: lock?.token });
    } catch (error) {
      throw new CopyError('write', ioError(`backup write of target at ${offset}`, error));
    }
  }
}
