/**
 * Copy-before-write: before any write, writeZeroes or discard reaches a
 * source range whose point-in-time data has not been copied yet, copy that
 * data to the target. Attached as a before-write notifier on the source
 * node, so every writer (NBD export, library user, guest) passes through it.
 *
 * A failed copy fails the guest write with EIO and leaves the snapshot
 * valid (QEMU's default on-cbw-error=break-guest-write): the write did not
 * happen, and the range stays dirty for a later copy.
 */
import { channel } from 'node:diagnostics_channel';
import type { BlockNode, WriteIntent } from '../block/block-node.js';
import { LivebackupError, messageOf } from '../errors.js';
import type { BlockCopy } from './block-copy.js';

const cowEnter = channel('livebackup:backup:cow-enter');
const cowReturn = channel('livebackup:backup:cow-return');

export interface CopyBeforeWriteStats {
  /** Guest requests that had to wait for a copy. */
  copies: number;
}

/**
 * Attach copy-before-write to `source`. Returns a function that detaches it
 * (idempotent). Writes already waiting on a copy keep waiting for it.
 */
export function attachCopyBeforeWrite(source: BlockNode, blockCopy: BlockCopy, stats: CopyBeforeWriteStats = { copies: 0 }): () => void {
  return source.addBeforeWriteNotifier(async (intent: WriteIntent) => {
    if (blockCopy.remaining === 0) return;
    if (cowEnter.hasSubscribers) cowEnter.publish({ node: source.nodeName, ...intent });
    try {
      if ((await blockCopy.copyRange(intent.offset, intent.bytes)) > 0) stats.copies++;
    } catch (error) {
      throw new LivebackupError('IO_ERROR', `copy-before-write failed, ${intent.kind} refused: ${messageOf(error)}`, {
        cause: error,
        errno: 'EIO',
      });
    } finally {
      if (cowReturn.hasSubscribers) cowReturn.publish({ node: source.nodeName, ...intent });
    }
  });
}
