/**
 * Comparing the guest-visible content of two images, of any formats, the
 * way `qemu-img compare` does: byte for byte over the common length, and the
 * longer image's tail must read as zeroes. Reads large chunks of both images
 * at once and skips ranges block status says are zero in both.
 */
import type { BlockNode } from '../block/block-node.js';

/** Bytes read from each image per chunk. */
const COMPARE_CHUNK = 4 * 1024 * 1024;
/** Chunk pairs being read at the same time. */
const CHUNKS_IN_FLIGHT = 4;

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
  const mismatch = await firstMismatch(a, b, common);
  if (mismatch !== undefined) return { identical: false, mismatchOffset: mismatch, sizeMismatch };
  const longer = a.length > b.length ? a : b;
  const scratch = new Uint8Array(Math.min(COMPARE_CHUNK, longer.length - common));
  const nonZero = await firstNonZeroByte(longer, common, longer.length, scratch);
  if (nonZero !== undefined) return { identical: false, mismatchOffset: nonZero, sizeMismatch };
  return { identical: true, sizeMismatch };
}

/** A byte range to read from both images. */
interface ChunkRange {
  readonly offset: number;
  readonly bytes: number;
}

/** Two reusable read buffers, one per image. */
interface BufferPair {
  readonly a: Uint8Array;
  readonly b: Uint8Array;
}

/** A chunk read from both images. */
interface LoadedChunk {
  readonly offset: number;
  readonly a: Uint8Array;
  readonly b: Uint8Array;
  readonly buffers: BufferPair;
}

/**
 * The first offset in [0, end) where `a` and `b` read differently, or
 * undefined. Keeps CHUNKS_IN_FLIGHT chunk pairs reading while it compares
 * the oldest, in order, so the first difference found is the first one.
 */
async function firstMismatch(a: BlockNode, b: BlockNode, end: number): Promise<number | undefined> {
  const chunkBytes = Math.min(COMPARE_CHUNK, end);
  const free: BufferPair[] = Array.from({ length: CHUNKS_IN_FLIGHT }, () => ({
    a: new Uint8Array(chunkBytes),
    b: new Uint8Array(chunkBytes),
  }));
  const inFlight: Promise<LoadedChunk>[] = [];
  const ranges = rangesToCompare(a, b, end);
  let exhausted = false;
  try {
    for (;;) {
      while (!exhausted && free.length > 0) {
        const next = await ranges.next();
        if (next.done) {
          exhausted = true;
          break;
        }
        const loading = loadChunk(a, b, next.value, free.pop()!);
        // Awaited in order below; until then a rejection must not count as unhandled.
        loading.catch(() => undefined);
        inFlight.push(loading);
      }
      const oldest = inFlight.shift();
      if (!oldest) return undefined;
      const chunk = await oldest;
      const index = firstDifference(chunk.a, chunk.b);
      if (index >= 0) return chunk.offset + index;
      free.push(chunk.buffers);
    }
  } finally {
    await Promise.allSettled(inFlight);
  }
}

async function loadChunk(a: BlockNode, b: BlockNode, range: ChunkRange, buffers: BufferPair): Promise<LoadedChunk> {
  const chunkA = buffers.a.subarray(0, range.bytes);
  const chunkB = buffers.b.subarray(0, range.bytes);
  // Both reads must have ended before this settles, even when one fails: the buffers are reused.
  const [readA, readB] = await Promise.allSettled([a.read(range.offset, chunkA), b.read(range.offset, chunkB)]);
  if (readA.status === 'rejected') throw readA.reason;
  if (readB.status === 'rejected') throw readB.reason;
  return { offset: range.offset, a: chunkA, b: chunkB, buffers };
}

/**
 * The chunks of [0, end) to compare, in order: everything except runs that
 * block status says read as zeroes in both images. Asks for status again
 * only past the end of the last known non-zero run.
 */
async function* rangesToCompare(a: BlockNode, b: BlockNode, end: number): AsyncGenerator<ChunkRange> {
  // Up to here at least one image is known to hold non-zero data: no zero run to skip.
  let dataUntil = 0;
  for (let position = 0; position < end; ) {
    if (position >= dataUntil) {
      const [statusA, statusB] = await Promise.all([a.blockStatus(position, end - position), b.blockStatus(position, end - position)]);
      if (statusA.zero && statusB.zero) {
        position += Math.min(statusA.bytes, statusB.bytes);
        continue;
      }
      dataUntil = position + Math.max(statusA.zero ? 0 : statusA.bytes, statusB.zero ? 0 : statusB.bytes);
    }
    const bytes = Math.min(COMPARE_CHUNK, end - position);
    yield { offset: position, bytes };
    position += bytes;
  }
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
