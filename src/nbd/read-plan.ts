/**
 * How a structured READ reply is split: zero runs the node reports
 * (through its backing chain) become NBD_REPLY_TYPE_OFFSET_HOLE chunks, the
 * rest NBD_REPLY_TYPE_OFFSET_DATA. Only done when cheap: small holes are
 * sent as data, and after a bounded number of status calls the remainder is
 * one data run.
 *
 * A ReadPlanner remembers the last run the node reported as plain data
 * (asking for status a little beyond each READ), so that a client reading
 * a data area sequentially costs one status call per run instead of one per
 * READ. Remembering only data is always safe: a data chunk carries what the
 * node returns when read, even if the run has since become zeroes; a hole
 * chunk is only ever sent from a fresh status answer.
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

/** How far beyond a READ the planner asks for status, to learn the data run ahead. */
export const STATUS_LOOKAHEAD = 64 * 1024 * 1024;

/** Plans READ replies for one node, remembering the last data run it learned about. */
export class ReadPlanner {
  private readonly node: BlockNode;
  /** [knownDataStart, knownDataEnd): bytes the node last reported as data that may not read as zeroes. */
  private knownDataStart = 0;
  private knownDataEnd = 0;

  constructor(node: BlockNode) {
    this.node = node;
  }

  /**
   * Segments of [offset, offset + length), as planRead; synchronous (no
   * status call) when the range lies in the remembered data run. Caller
   * guarantees the range lies inside the node and length > 0.
   */
  plan(offset: number, length: number): ReadSegment[] | Promise<ReadSegment[]> {
    if (offset >= this.knownDataStart && offset + length <= this.knownDataEnd) return [{ offset, length, hole: false }];
    return this.planAndLearn(offset, length);
  }

  private async planAndLearn(offset: number, length: number): Promise<ReadSegment[]> {
    const end = offset + length;
    const lookaheadEnd = Math.min(this.node.length, Math.max(end, offset + STATUS_LOOKAHEAD));
    const first = await this.node.blockStatus(offset, lookaheadEnd - offset);
    if (first.data && !first.zero) {
      this.knownDataStart = offset;
      this.knownDataEnd = offset + first.bytes;
      if (first.bytes >= length) return [{ offset, length, hole: false }];
    }
    return planRead(this.node, offset, length);
  }
}
