/**
 * How a structured READ reply is split: zero runs the node reports
 * (through its backing chain) become NBD_REPLY_TYPE_OFFSET_HOLE chunks, the
 * rest NBD_REPLY_TYPE_OFFSET_DATA. Only done when cheap: small holes are
 * sent as data, and after a bounded number of status calls the remainder is
 * one data run.
 */
import type { BlockNode } from '../block/block-node.js';

/** One piece of a READ reply. */
export interface ReadSegment {
  readonly offset: number;
  readonly length: number;
  /** True: reads as zeroes, sent as a hole chunk (no data read). */
  readonly hole: boolean;
}

/** Zero runs shorter than this are sent as data (a hole chunk would save almost nothing). */
export const MIN_HOLE = 4096;
/** Block status calls spent on one READ at most. */
const MAX_STATUS_CALLS = 64;

/**
 * Split [offset, offset + length) into alternating data and hole
 * segments, in order, covering the range exactly. Caller guarantees the
 * range lies inside the node and length > 0.
 */
export async function planRead(node: BlockNode, offset: number, length: number): Promise<ReadSegment[]> {
  const segments: ReadSegment[] = [];
  const end = offset + length;
  let position = offset;
  for (let calls = 0; position < end; calls++) {
    let runLength: number;
    let hole: boolean;
    if (calls >= MAX_STATUS_CALLS) {
      runLength = end - position;
      hole = false;
    } else {
      const status = await node.blockStatus(position, end - position);
      runLength = status.bytes;
      hole = status.zero && runLength >= MIN_HOLE;
    }
    const last = segments[segments.length - 1];
    if (last && last.hole === hole) segments[segments.length - 1] = { offset: last.offset, length: last.length + runLength, hole };
    else segments.push({ offset: position, length: runLength, hole });
    position += runLength;
  }
  return segments;
}
