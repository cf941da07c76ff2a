/**
 * HBitmap: a hierarchical bitmap over a byte range, one bit per granule of
 * `granularity` bytes (the idea of QEMU's hbitmap, written for typed arrays).
 *
 * Level 0 holds one bit per granule in 32-bit words. Each higher level holds
 * one bit per word of the level below, set when that word is non-zero; the
 * top level is a single word. Range updates cost O(words touched) plus the
 * same again, shrinking 32-fold per level, for the summaries. nextSet skips
 * empty regions through the summaries; nextClear scans leaf words 32 granules
 * at a time. A running count of set granules makes count() O(1).
 *
 * Memory: one bit per granule plus about 1/31 of that for the summaries; a
 * 4 TiB range at 64 KiB granularity takes about 8.3 MiB.
 *
 * Not safe against concurrent mutation from several owners; whoever owns the
 * bitmap (a DirtyBitmap, the copy engine) guards it.
 */
import { LivebackupError } from '../errors.js';

const WORD_BITS = 32;
/** Most granules one bitmap can hold, so that bit indices stay 32-bit. */
export const HBITMAP_MAX_GRANULES = 2 ** 31;

/** A run of set granules found by nextDirtyArea. */
export interface DirtyArea {
  /** First byte of the run. */
  offset: number;
  /** Length of the run in bytes; always > 0. */
  bytes: number;
}

export class HBitmap {
  /** The byte range covered: [0, length). */
  readonly length: number;
  /** Bytes per bit; a power of two. */
  readonly granularity: number;
  /** Number of granules (bits): ceil(length / granularity). */
  readonly granules: number;
  /** levels[0] are the leaves; levels[levels.length - 1] is one summary word. */
  private readonly levels: readonly Uint32Array[];
  /** Number of set bits in the leaves. */
  private setGranules = 0;

  /**
   * A bitmap over [0, length) with every granule clear. `length` is any
   * non-negative integer; `granularity` is a power of two >= 1. Throws
   * INVALID_ARGUMENT for other values or when the range needs more than
   * HBITMAP_MAX_GRANULES granules.
   */
  constructor(length: number, granularity: number) {
    if (!Number.isSafeInteger(length) || length < 0) {
      throw new LivebackupError('INVALID_ARGUMENT', `HBitmap length must be a non-negative integer, got ${length}`);
    }
    if (!Number.isSafeInteger(granularity) || granularity < 1 || !Number.isInteger(Math.log2(granularity))) {
      throw new LivebackupError('INVALID_ARGUMENT', `HBitmap granularity must be a power of two >= 1, got ${granularity}`);
    }
    const granules = Math.ceil(length / granularity);
    if (granules > HBITMAP_MAX_GRANULES) {
      throw new LivebackupError(
        'INVALID_ARGUMENT',
        `HBitmap of ${length} bytes at granularity ${granularity} needs ${granules} granules (at most ${HBITMAP_MAX_GRANULES}); use a coarser granularity`,
      );
    }
    this.length = length;
    this.granularity = granularity;
    this.granules = granules;
    const levels: Uint32Array[] = [];
    let bits = granules;
    for (;;) {
      const words = Math.max(1, Math.ceil(bits / WORD_BITS));
      levels.push(new Uint32Array(words));
      if (words === 1) break;
      bits = words;
    }
    this.levels = levels;
  }

  /** Bytes of typed-array storage the bitmap uses (all levels). */
  get memoryBytes(): number {
    let total = 0;
    for (const level of this.levels) total += level.byteLength;
    return total;
  }

  /** Mark every granule touched by [offset, offset + bytes). Throws OUT_OF_BOUNDS past length. */
  set(offset: number, bytes: number): void {
    this.checkRange('set', offset, bytes);
    if (bytes === 0) return;
    this.setBits(this.granuleOf(offset), this.granuleOf(offset + bytes - 1));
  }

  /**
   * Clear every granule touched by [offset, offset + bytes), rounding
   * outward: pass granule-aligned ranges (or ranges ending at length) unless
   * clearing the partly covered granules is intended.
   */
  reset(offset: number, bytes: number): void {
    this.checkRange('reset', offset, bytes);
    if (bytes === 0) return;
    this.resetBits(this.granuleOf(offset), this.granuleOf(offset + bytes - 1));
  }

  /** Whether the granule containing `offset` is set; offset must lie in [0, length). */
  get(offset: number): boolean {
    this.checkOffset('get', offset);
    if (offset >= this.length) {
      throw new LivebackupError('OUT_OF_BOUNDS', `HBitmap get: offset ${offset} is beyond the length ${this.length}`);
    }
    return this.bitIsSet(this.granuleOf(offset));
  }

  /** Number of bytes covered by set granules; the last granule counts only up to length. */
  count(): number {
    return this.bytesOfGranules(this.setGranules, this.granules > 0 && this.bitIsSet(this.granules - 1));
  }

  /** True when no granule is set. */
  isEmpty(): boolean {
    return this.setGranules === 0;
  }

  /** Set every granule. */
  setAll(): void {
    if (this.granules === 0) return;
    const leaves = this.levels[0]!;
    leaves.fill(0xffffffff);
    const tailBits = this.granules % WORD_BITS;
    if (tailBits !== 0) leaves[leaves.length - 1] = lowBits(tailBits);
    this.setGranules = this.granules;
    this.refreshSummaries(0, leaves.length - 1);
  }

  /** Clear every granule. */
  resetAll(): void {
    for (const level of this.levels) level.fill(0);
    this.setGranules = 0;
  }

  /**
   * First byte offset in [offset, end) whose granule is set: `offset` itself
   * when its granule is set, else the start of the first set granule after
   * it; -1 when none. `end` defaults to (and is clipped to) length.
   */
  nextSet(offset: number, end: number = this.length): number {
    return this.nextMatching(offset, end, true);
  }

  /** Like nextSet, for clear granules. */
  nextClear(offset: number, end: number = this.length): number {
    return this.nextMatching(offset, end, false);
  }

  /**
   * The first run of set granules at or after `offset`, clipped to `end`
   * (itself clipped to length) and to `maxBytes`; it starts at nextSet(offset).
   * Null when no granule in [offset, end) is set.
   */
  nextDirtyArea(offset: number, end: number, maxBytes: number): DirtyArea | null {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
      throw new LivebackupError('INVALID_ARGUMENT', `HBitmap nextDirtyArea: maxBytes must be a positive integer, got ${maxBytes}`);
    }
    const start = this.nextSet(offset, end);
    if (start < 0) return null;
    const limit = Math.min(end, this.length, start + maxBytes);
    const clear = this.nextClear(start, limit);
    return { offset: start, bytes: (clear < 0 ? limit : clear) - start };
  }

  /**
   * Bytes covered by set granules among those touched by [offset, offset + bytes)
   * (whole granules, the last one of the bitmap only up to length). The range
   * is clipped to length.
   */
  countRange(offset: number, bytes: number): number {
    this.checkOffset('countRange', offset);
    if (!Number.isSafeInteger(bytes) || bytes < 0) {
      throw new LivebackupError('INVALID_ARGUMENT', `HBitmap countRange: bytes must be a non-negative integer, got ${bytes}`);
    }
    const end = Math.min(offset + bytes, this.length);
    if (offset >= end) return 0;
    const first = this.granuleOf(offset);
    const last = this.granuleOf(end - 1);
    const leaves = this.levels[0]!;
    let setBits = 0;
    const lastWord = Math.floor(last / WORD_BITS);
    for (let word = Math.floor(first / WORD_BITS); word <= lastWord; word++) {
      setBits += popcount(leaves[word]! & this.wordMask(word, first, last));
    }
    return this.bytesOfGranules(setBits, last === this.granules - 1 && this.bitIsSet(last));
  }

  /** An independent copy with the same geometry and bits. */
  clone(): HBitmap {
    const copy = new HBitmap(this.length, this.granularity);
    copy.copyBitsFrom(this);
    return copy;
  }

  /** Set every granule that is set in `other` (same length and granularity). */
  merge(other: HBitmap): void {
    this.checkSameGeometry('merge', other);
    const leaves = this.levels[0]!;
    const otherLeaves = other.levels[0]!;
    let added = 0;
    for (let word = 0; word < leaves.length; word++) {
      const extra = otherLeaves[word]! & ~leaves[word]!;
      if (extra !== 0) {
        leaves[word] = leaves[word]! | extra;
        added += popcount(extra);
      }
    }
    this.setGranules += added;
    this.refreshSummaries(0, leaves.length - 1);
  }

  /** Make this bitmap's bits equal to `other`'s (same length and granularity). */
  copyBitsFrom(other: HBitmap): void {
    this.checkSameGeometry('copyBitsFrom', other);
    for (let level = 0; level < this.levels.length; level++) this.levels[level]!.set(other.levels[level]!);
    this.setGranules = other.setGranules;
  }

  // ---- internals ----

  private granuleOf(offset: number): number {
    return Math.floor(offset / this.granularity);
  }

  private bitIsSet(bit: number): boolean {
    return ((this.levels[0]![bit >>> 5]! >>> (bit & 31)) & 1) === 1;
  }

  /** Bytes of `setBits` whole granules, less the part of the last granule past length if it is among them. */
  private bytesOfGranules(setBits: number, includesLastGranule: boolean): number {
    const tail = this.granules * this.granularity - this.length;
    return setBits * this.granularity - (includesLastGranule ? tail : 0);
  }

  /** The bits of leaf word `word` that lie in granules [first, last]. */
  private wordMask(word: number, first: number, last: number): number {
    let mask = -1;
    if (word === first >>> 5) mask &= -1 << (first & 31);
    if (word === last >>> 5) mask &= lowBits((last & 31) + 1);
    return mask;
  }

  private setBits(first: number, last: number): void {
    const leaves = this.levels[0]!;
    const firstWord = first >>> 5;
    const lastWord = last >>> 5;
    let added = 0;
    for (let word = firstWord; word <= lastWord; word++) {
      const old = leaves[word]!;
      const fresh = this.wordMask(word, first, last) & ~old;
      if (fresh !== 0) {
        leaves[word] = old | fresh;
        added += popcount(fresh);
      }
    }
    this.setGranules += added;
    this.refreshSummaries(firstWord, lastWord);
  }

  private resetBits(first: number, last: number): void {
    const leaves = this.levels[0]!;
    const firstWord = first >>> 5;
    const lastWord = last >>> 5;
    let removed = 0;
    for (let word = firstWord; word <= lastWord; word++) {
      const old = leaves[word]!;
      const gone = this.wordMask(word, first, last) & old;
      if (gone !== 0) {
        leaves[word] = old & ~gone;
        removed += popcount(gone);
      }
    }
    this.setGranules -= removed;
    this.refreshSummaries(firstWord, lastWord);
  }

  /** Recompute the summary bits above leaf words [firstWord, lastWord], level by level. */
  private refreshSummaries(firstWord: number, lastWord: number): void {
    let low = firstWord;
    let high = lastWord;
    for (let level = 1; level < this.levels.length; level++) {
      const below = this.levels[level - 1]!;
      const summary = this.levels[level]!;
      for (let bit = low; bit <= high; bit++) {
        const index = bit >>> 5;
        const flag = 1 << (bit & 31);
        summary[index] = below[bit]! !== 0 ? summary[index]! | flag : summary[index]! & ~flag;
      }
      low >>>= 5;
      high >>>= 5;
    }
  }

  /** nextSet / nextClear on bytes, through the bit searches. */
  private nextMatching(offset: number, end: number, wantSet: boolean): number {
    this.checkOffset(wantSet ? 'nextSet' : 'nextClear', offset);
    if (typeof end !== 'number' || Number.isNaN(end)) {
      throw new LivebackupError('INVALID_ARGUMENT', `HBitmap ${wantSet ? 'nextSet' : 'nextClear'}: end must be a number, got ${end}`);
    }
    const limit = Math.min(end, this.length);
    if (offset >= limit) return -1;
    const endBit = this.granuleOf(limit - 1) + 1;
    const first = this.granuleOf(offset);
    const bit = wantSet ? this.nextSetBit(first, endBit) : this.nextClearBit(first, endBit);
    return bit < 0 ? -1 : Math.max(bit * this.granularity, offset);
  }

  /** First set bit in [from, endBit), climbing the summaries over empty regions; -1 if none. */
  private nextSetBit(from: number, endBit: number): number {
    if (from >= endBit) return -1;
    const top = this.levels.length - 1;
    let level = 0;
    let position = from;
    let span = 1; // granules covered by one bit at `level`
    for (;;) {
      const words = this.levels[level]!;
      const index = position >>> 5;
      if (index >= words.length) return -1;
      const word = words[index]! & (-1 << (position & 31));
      if (word !== 0) {
        position = index * WORD_BITS + countTrailingZeros(word);
        break;
      }
      if (level === top) return -1;
      position = index + 1;
      level++;
      span *= WORD_BITS;
      if (position * span >= endBit) return -1;
    }
    while (level > 0) {
      level--;
      position = position * WORD_BITS + countTrailingZeros(this.levels[level]![position]!);
    }
    return position < endBit ? position : -1;
  }

  /** First clear bit in [from, endBit); -1 if none. Bits past `granules` read as clear, and endBit <= granules. */
  private nextClearBit(from: number, endBit: number): number {
    if (from >= endBit) return -1;
    const leaves = this.levels[0]!;
    let index = from >>> 5;
    let word = ~leaves[index]! & (-1 << (from & 31));
    for (;;) {
      if (word !== 0) {
        const bit = index * WORD_BITS + countTrailingZeros(word);
        return bit < endBit ? bit : -1;
      }
      index++;
      if (index * WORD_BITS >= endBit) return -1;
      word = ~leaves[index]!;
    }
  }

  private checkOffset(operation: string, offset: number): void {
    if (!Number.isSafeInteger(offset) || offset < 0) {
      throw new LivebackupError('INVALID_ARGUMENT', `HBitmap ${operation}: offset must be a non-negative integer, got ${offset}`);
    }
  }

  private checkRange(operation: string, offset: number, bytes: number): void {
    this.checkOffset(operation, offset);
    if (!Number.isSafeInteger(bytes) || bytes < 0) {
      throw new LivebackupError('INVALID_ARGUMENT', `HBitmap ${operation}: bytes must be a non-negative integer, got ${bytes}`);
    }
    if (offset + bytes > this.length) {
      throw new LivebackupError(
        'OUT_OF_BOUNDS',
        `HBitmap ${operation}: range [${offset}, ${offset + bytes}) exceeds the length ${this.length}`,
      );
    }
  }

  private checkSameGeometry(operation: string, other: HBitmap): void {
    if (other.length !== this.length || other.granularity !== this.granularity) {
      throw new LivebackupError(
        'INVALID_ARGUMENT',
        `HBitmap ${operation}: geometry differs (length ${other.length}/${this.length}, granularity ${other.granularity}/${this.granularity})`,
      );
    }
  }
}

/** A 32-bit word with the low `count` bits set (count in 1..32). */
function lowBits(count: number): number {
  return -1 >>> (WORD_BITS - count);
}

/** Index of the lowest set bit of a non-zero 32-bit word. */
function countTrailingZeros(word: number): number {
  return 31 - Math.clz32(word & -word);
}

/** Number of set bits in a 32-bit word. */
function popcount(word: number): number {
  let v = word - ((word >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24);
}
