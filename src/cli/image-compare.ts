/**
 * Comparing the guest-visible content of two images, of any formats, the
 * way `qemu-img compare` does: byte for byte over the common length, and the
 * longer image's tail must read as zeroes. Reads large chunks of both images
 * at once and skips ranges block status says are zero in both.
 */
import type { BlockNode } from '../block/block-node.js';

/** Bytes read from each image per step. */
const COMPARE_CHUNK = 4 * 1024 * 1024;

/** The outcome of a comparison. */
export interface CompareResult {
  /** True when every guest-visible byte matches (a longer image's tail reading as zeroes). */
  identical: boolean;
  /** The offset of the first differing byte, when not identical. */
  mismatchOffset?: number;
  /** True when the images have different virtual sizes. */
  sizeMismatch: boolean;
}

/**
 * Compare the content of `a` and `b`. Stops at the first differing byte.
 * Rejects with the error of a failed read.
 */
export async function compareImages(a: BlockNode, b: BlockNode): Promise<CompareResult> {
  const common = Math.min(a.length, b.length);
  const sizeMismatch = a.length !== b.length;
  const bufferA = new Uint8Array(Math.min(COMPARE_CHUNK, Math.max(a.length, b.length)));
  const bufferB = new Uint8Array(Math.min(COMPARE_CHUNK, common));
  // Up to here at least one image is known to hold non-zero data: no zero skipping to look for.
  let dataUntil = 0;
  for (let position = 0; position < common; ) {
    if (position >= dataUntil) {
      const [statusA, statusB] = await Promise.all([
        a.blockStatus(position, common - position),
        b.blockStatus(position, common - position),
      ]);
      if (statusA.zero && statusB.zero) {
        position += Math.min(statusA.bytes, statusB.bytes);
        continue;
      }
      dataUntil = position + Math.max(statusA.zero ? 0 : statusA.bytes, statusB.zero ? 0 : statusB.bytes);
    }
    const bytes = Math.min(COMPARE_CHUNK, common - position);
    const chunkA = bufferA.subarray(0, bytes);
    const chunkB = bufferB.subarray(0, bytes);
    await Promise.all([a.read(position, chunkA), b.read(position, chunkB)]);
    const differs = firstDifference(chunkA, chunkB);
    if (differs >= 0) return { identical: false, mismatchOffset: position + differs, sizeMismatch };
    position += bytes;
  }
  const longer = a.length > b.length ? a : b;
  const nonZero = await firstNonZeroByte(longer, common, longer.length, bufferA);
  if (nonZero !== undefined) return { identical: false, mismatchOffset: nonZero, sizeMismatch };
  return { identical: true, sizeMismatch };
}

/**
 * The offset of the first byte in [start, end) of `node` that does not read
 * as zero, or undefined when all do. `buffer` is scratch space (non-empty
 * unless the range is).
 */
export async function firstNonZeroByte(node: BlockNode, start: number, end: number, buffer: Uint8Array): Promise<number | undefined> {
  for (let position = start; position < end; ) {
    const status = await node.blockStatus(position, end - position);
    if (status.zero) {
      position += status.bytes;
      continue;
    }
    const chunk = buffer.subarray(0, Math.min(buffer.length, end - position));
    await node.read(position, chunk);
    const index = firstNonZero(chunk);
    if (index >= 0) return position + index;
    position += chunk.length;
  }
  return undefined;
}

/** Bytes compared at once before looking for the exact differing byte. */
const SCAN_BLOCK = 64 * 1024;

/** Index of the first byte where a and b (same length) differ, or -1. */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const viewA = Buffer.from(a.buffer, a.byteOffset, a.length);
  const viewB = Buffer.from(b.buffer, b.byteOffset, b.length);
  for (let block = 0; block < a.length; block += SCAN_BLOCK) {
    const end = Math.min(a.length, block + SCAN_BLOCK);
    if (viewA.subarray(block, end).equals(viewB.subarray(block, end))) continue;
    for (let index = block; index < end; index++) if (a[index] !== b[index]) return index;
  }
  return -1;
}

/** Index of the first non-zero byte of buf, or -1. */
export function firstNonZero(buf: Uint8Array): number {
  sharedZeroBlock ??= new Uint8Array(SCAN_BLOCK);
  for (let block = 0; block < buf.length; block += SCAN_BLOCK) {
    const end = Math.min(buf.length, block + SCAN_BLOCK);
    const index = firstDifference(buf.subarray(block, end), sharedZeroBlock.subarray(0, end - block));
    if (index >= 0) return block + index;
  }
  return -1;
}

let sharedZeroBlock: Uint8Array | undefined;
