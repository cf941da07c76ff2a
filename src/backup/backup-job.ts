/**
 * BackupJob: a point-in-time copy of a source node to a target node, with
 * copy-before-write protecting the data not yet copied. Thin on purpose:
 * the copying is BlockCopy's, the state machine and events are Job's; this
 * file holds the sync modes, the background loop and the error policies.
 */
import { Job, type BlockdevOnError, type JobOptions } from '../job/job.js';
import type { BlockNode } from '../block/block-node.js';
import { LivebackupError } from '../errors.js';
import { BlockCopy, CopyError, type ClaimedArea } from './block-copy.js';
import { attachCopyBeforeWrite, type CopyBeforeWriteStats } from './copy-before-write.js';

/** What the job copies in the background (QAPI MirrorSyncMode subset). */
export type BackupSyncMode = 'full' | 'top' | 'none';

export const DEFAULT_MAX_WORKERS = 16;
export const DEFAULT_MAX_CHUNK = 1024 * 1024;
const MIN_CLUSTER = 64 * 1024;
/** How far a zero run found by block status may reach in one task. */
const MAX_ZERO_RUN = 1024 * 1024 * 1024;

export interface BackupJobOptions extends JobOptions {
  readonly source: BlockNode;
  readonly target: BlockNode;
  readonly sync: BackupSyncMode;
  readonly onSourceError?: BlockdevOnError;
  readonly onTargetError?: BlockdevOnError;
  /** Copy tasks in flight at once (QEMU x-perf max-workers). */
  readonly maxWorkers?: number;
  /** Largest data task in bytes (QEMU x-perf max-chunk); rounded up to the cluster size. */
  readonly maxChunk?: number;
  /** The target reads as zeroes at the start (freshly created, no backing): zero ranges are skipped. */
  readonly targetZeroInitialized?: boolean;
  /** Bytes written to the target between background write-outs to disk (default 32 MiB; 0 = never). */
  readonly writebackInterval?: number;
}

export class BackupJob extends Job {
  readonly source: BlockNode;
  readonly target: BlockNode;
  readonly sync: BackupSyncMode;
  readonly blockCopy: BlockCopy;
  readonly cowStats: CopyBeforeWriteStats = { copies: 0 };
  private readonly onSourceError: BlockdevOnError;
  private readonly onTargetError: BlockdevOnError;
  private readonly maxWorkers: number;
  private readonly releases: Array<() => void> = [];
  /**
   * The last data run block status reported, [start, end): claims inside it
   * skip the block status call (treating bytes as data is always correct: they
   * are read and zero-detected). Only the background loop touches it.
   */
  private knownData = { start: 0, end: 0 };

  /**
   * Create the job and attach copy-before-write at once: the point in time
   * is the moment this constructor returns. The job does not run until start().
   */
  constructor(options: BackupJobOptions) {
    super(options);
    this.source = options.source;
    this.target = options.target;
    this.sync = options.sync;
    this.onSourceError = options.onSourceError ?? 'report';
    this.onTargetError = options.onTargetError ?? 'report';
    this.maxWorkers = options.maxWorkers ?? DEFAULT_MAX_WORKERS;
    if (!Number.isInteger(this.maxWorkers) || this.maxWorkers < 1) {
      throw new LivebackupError('INVALID_ARGUMENT', "Parameter 'max-workers' must be a positive integer");
    }
    const clusterSize = Math.max(MIN_CLUSTER, options.target.driver.clusterSize ?? 0);
    const requestedChunk = options.maxChunk ?? DEFAULT_MAX_CHUNK;
    if (!Number.isSafeInteger(requestedChunk) || requestedChunk < 0) {
      throw new LivebackupError('INVALID_ARGUMENT', "Parameter 'max-chunk' must be a non-negative integer");
    }
    const maxChunk = Math.max(clusterSize, Math.ceil((requestedChunk || DEFAULT_MAX_CHUNK) / clusterSize) * clusterSize);
    this.blockCopy = new BlockCopy({
      source: options.source,
      target: options.target,
      clusterSize,
      maxChunk,
      targetZeroInitialized: options.targetZeroInitialized ?? false,
      lockTarget: isInBackingChain(options.target, options.source),
      writebackInterval: options.writebackInterval,
      // Like QEMU's drain at job start: writes issued before the point in time complete first.
      priorWrites: options.source.writesSettled(),
    });
    this.blockCopy.bitmap.setAll();
    this.blockCopy.onProgress = (bytes) => {
      this.progressCurrent += bytes;
      this.updateTotal();
    };
    this.updateTotal();
    this.releases.push(attachCopyBeforeWrite(options.source, this.blockCopy, this.cowStats));
    this.releases.push(options.source.addBlocker('block device is in use by block job: backup'));
    this.releases.push(options.target.addBlocker('block device is in use by block job: backup'));
  }

  protected override async run(): Promise<void> {
    if (this.sync === 'none') {
      await this.waitForCancel();
      return;
    }
    if (this.sync === 'top' && this.source.backing) await this.skipUnallocated();
    await this.copyInBackground();
    await this.blockCopy.drain();
    await this.flushTarget();
  }

  protected override async clean(): Promise<void> {
    await this.blockCopy.drain();
    for (const release of this.releases.splice(0)) release();
  }

  private updateTotal(): void {
    this.progressTotal = this.progressCurrent + this.blockCopy.remaining;
  }

  /** sync=top: clear the bits of clusters the source's top layer does not allocate. */
  private async skipUnallocated(): Promise<void> {
    const { bitmap, clusterSize } = this.blockCopy;
    const length = this.source.length;
    for (let offset = 0; offset < length; ) {
      await this.pausePoint();
      const status = await this.retrying(() => this.source.blockStatus(offset, Math.min(length - offset, MAX_ZERO_RUN)), 'read');
      const end = offset + status.bytes;
      if (!status.allocated) {
        const start = Math.ceil(offset / clusterSize) * clusterSize;
        const stop = end === length ? length : end - (end % clusterSize);
        if (stop > start) bitmap.reset(start, stop - start);
      }
      offset = end;
      this.updateTotal();
    }
  }

  /** The background loop: claim dirty areas in order and copy them, maxWorkers at a time. */
  private async copyInBackground(): Promise<void> {
    const { bitmap } = this.blockCopy;
    const length = this.source.length;
    const running = new Set<Promise<void>>();
    let failure: CopyError | undefined;
    let cursor = 0;
    try {
      for (;;) {
        await this.pausePoint();
        if (failure) {
          const error = failure;
          failure = undefined;
          const policy = error.operation === 'read' ? this.onSourceError : this.onTargetError;
          await Promise.allSettled(running);
          if ((await this.handleError(policy, error.operation, error)) === 'fail') throw error;
          cursor = 0;
          continue;
        }
        if (running.size >= this.maxWorkers) {
          await Promise.race(running);
          continue;
        }
        let area = bitmap.nextDirtyArea(cursor, length, MAX_ZERO_RUN);
        if (!area && cursor > 0) area = bitmap.nextDirtyArea(0, length, MAX_ZERO_RUN);
        if (!area) {
          if (running.size === 0) {
            // Copy-before-write tasks may still be in flight; one that fails dirties its
            // clusters again, so only a drained, clean bitmap means the copy is complete.
            if (this.blockCopy.tasksInFlight === 0) return;
            await this.blockCopy.drain();
            continue;
          }
          await Promise.race(running);
          continue;
        }
        const shape = await this.claimShape(area.offset, area.offset + area.bytes);
        // No await between this bitmap check and copyArea: copy-before-write may
        // have claimed some of these clusters while block status was asked.
        const claim = this.claimNow(area.offset, area.offset + area.bytes, shape);
        if (!claim) continue;
        const task = this.blockCopy.copyArea(claim).catch((error: unknown) => {
          failure ??= error instanceof CopyError ? error : new CopyError('write', error as LivebackupError);
        });
        running.add(task);
        void task.finally(() => running.delete(task));
        cursor = claim.offset + claim.bytes;
        // Like QEMU, zero runs count against the speed limit too.
        await this.rateLimit(claim.bytes);
      }
    } finally {
      await Promise.allSettled(running);
    }
  }

  /**
   * Decide how much of the dirty area [start, end) one task takes: a whole
   * zero run (by block status) or at most maxChunk of data.
   */
  private async claimShape(start: number, end: number): Promise<{ limit: number; knownZero: boolean }> {
    const { maxChunk, clusterSize } = this.blockCopy;
    const status = await this.statusForClaim(start, end);
    let runEnd = start + status.bytes;
    if (runEnd < this.source.length) runEnd -= runEnd % clusterSize;
    const knownZero = status.zero && runEnd > start;
    return { limit: knownZero ? runEnd - start : maxChunk, knownZero };
  }

  /**
   * The claim for [start, end) of the given shape, taken from the bitmap as
   * it is now; undefined when `start` is no longer dirty (look again). The
   * caller must hand it to copyArea without awaiting in between.
   */
  private claimNow(start: number, end: number, shape: { limit: number; knownZero: boolean }): ClaimedArea | undefined {
    const area = this.blockCopy.bitmap.nextDirtyArea(start, Math.min(end, start + shape.limit), shape.limit);
    if (!area || area.offset !== start) return undefined;
    return { offset: area.offset, bytes: area.bytes, knownZero: shape.knownZero };
  }

  /** Whether [start, end) begins with a zero run, and how long the run is; remembers data runs (see knownData). */
  private async statusForClaim(start: number, end: number): Promise<{ zero: boolean; bytes: number }> {
    const known = this.knownData;
    if (start >= known.start && start < known.end) return { zero: false, bytes: Math.min(end, known.end) - start };
    try {
      const status = await this.source.blockStatus(start, end - start);
      if (!status.zero) this.knownData = { start, end: start + status.bytes };
      return status;
    } catch {
      // Block status is only an optimisation: copy the data and let the read report errors.
      return { zero: false, bytes: end - start };
    }
  }

  private async flushTarget(): Promise<void> {
    await this.retrying(() => this.target.flush(), 'write');
  }

  /** Run an operation, applying the error policy of its side until it succeeds or the policy says fail. */
  private async retrying<T>(operation: () => Promise<T>, side: 'read' | 'write'): Promise<T> {
    for (;;) {
      try {
        return await operation();
      } catch (error) {
        const policy = side === 'read' ? this.onSourceError : this.onTargetError;
        if ((await this.handleError(policy, side, error)) === 'fail') throw error;
      }
    }
  }

  private waitForCancel(): Promise<void> {
    return new Promise((resolve) => {
      if (this.signal.aborted) return resolve();
      this.signal.addEventListener('abort', () => resolve(), { once: true });
    });
  }
}

/** True when `node` is `ancestor` or reaches it through backing/file links. */
function isInBackingChain(node: BlockNode, ancestor: BlockNode): boolean {
  const seen = new Set<BlockNode>();
  const pending = [node];
  while (pending.length > 0) {
    const current = pending.pop()!;
    if (current === ancestor) return true;
    if (seen.has(current)) continue;
    seen.add(current);
    for (const link of current.children()) pending.push(link.node);
  }
  return false;
}
