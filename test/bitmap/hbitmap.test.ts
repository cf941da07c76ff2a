import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HBitmap } from '../../src/bitmap/hbitmap.js';
import { LivebackupError } from '../../src/errors.js';
import { SeededRandom } from '../helpers/random.js';

/** The obvious model: one boolean per granule, every query a linear scan. */
class NaiveBitmap {
  readonly bits: boolean[];
  constructor(readonly length: number, readonly granularity: number) {
    this.bits = new Array<boolean>(Math.ceil(length / granularity)).fill(false);
  }
  private fill(offset: number, bytes: number, value: boolean): void {
    if (bytes === 0) return;
    const first = Math.floor(offset / this.granularity);
    const last = Math.floor((offset + bytes - 1) / this.granularity);
    for (let i = first; i <= last; i++) this.bits[i] = value;
  }
  set(offset: number, bytes: number): void { this.fill(offset, bytes, true); }
  reset(offset: number, bytes: number): void { this.fill(offset, bytes, false); }
  get(offset: number): boolean { return this.bits[Math.floor(offset / this.granularity)]!; }
  granuleBytes(index: number): number {
    return Math.min(this.length, (index + 1) * this.granularity) - index * this.granularity;
  }
  count(): number {
    let total = 0;
    this.bits.forEach((bit, index) => { if (bit) total += this.granuleBytes(index); });
    return total;
  }
  next(offset: number, end: number, value: boolean): number {
    for (let at = offset; at < Math.min(end, this.length); at++) if (this.get(at) === value) return at;
    return -1;
  }
  nextDirtyArea(offset: number, end: number, maxBytes: number): { offset: number; bytes: number } | null {
    const start = this.next(offset, end, true);
    if (start < 0) return null;
    let stop = start;
    const limit = Math.min(end, this.length, start + maxBytes);
    while (stop < limit && this.get(stop)) stop++;
    return { offset: start, bytes: stop - start };
  }
  countRange(offset: number, bytes: number): number {
    const end = Math.min(offset + bytes, this.length);
    if (offset >= end) return 0;
    let total = 0;
    for (let i = Math.floor(offset / this.granularity); i <= Math.floor((end - 1) / this.granularity); i++) {
      if (this.bits[i]) total += this.granuleBytes(i);
    }
    return total;
  }
}

/**
 * Byte-level scans of the naive model are O(length), so the lengths stay
 * modest; the granule counts (up to ~40k) still exercise four summary levels.
 */
const GEOMETRIES: Array<{ length: number; granularity: number }> = [
  { length: 0, granularity: 512 },
  { length: 1, granularity: 1 },
  { length: 31, granularity: 1 },
  { length: 33, granularity: 1 },
  { length: 1000, granularity: 1 },
  { length: 40_000, granularity: 1 },
  { length: 5_000, granularity: 2 },
  { length: 65_536 + 7, granularity: 64 },
  { length: 1_048_576, granularity: 4096 },
  { length: 1_000_001, granularity: 512 },
  { length: 3 * 65_536 + 100, granularity: 65_536 },
];

function randomRange(random: SeededRandom, length: number): [number, number] {
  const offset = random.int(0, length);
  const maxBytes = random.chance(0.2) ? length - offset : Math.min(length - offset, random.int(0, 3000));
  return [offset, random.int(0, maxBytes)];
}

test('HBitmap matches a naive boolean model over seeded random operations', () => {
  const seed = Number(process.env.HBITMAP_SEED ?? 20261127);
  const random = new SeededRandom(seed);
  for (const { length, granularity } of GEOMETRIES) {
    const bitmap = new HBitmap(length, granularity);
    const model = new NaiveBitmap(length, granularity);
    const context = (step: number, what: string): string =>
      `seed ${seed}, length ${length}, granularity ${granularity}, step ${step}: ${what}`;
    for (let step = 0; step < 400; step++) {
      const choice = random.int(0, 99);
      if (choice < 30) {
        const [offset, bytes] = randomRange(random, length);
        bitmap.set(offset, bytes);
        model.set(offset, bytes);
      } else if (choice < 55) {
        const [offset, bytes] = randomRange(random, length);
        bitmap.reset(offset, bytes);
        model.reset(offset, bytes);
      } else if (choice < 57) {
        bitmap.setAll();
        model.set(0, length);
      } else if (choice < 58) {
        bitmap.resetAll();
        model.reset(0, length);
      } else if (length > 0) {
        const offset = random.int(0, length - 1);
        const end = random.chance(0.5) ? length : random.int(offset, length + 10);
        assert.equal(bitmap.get(offset), model.get(offset), context(step, `get(${offset})`));
        assert.equal(bitmap.nextSet(offset, end), model.next(offset, end, true), context(step, `nextSet(${offset}, ${end})`));
        assert.equal(bitmap.nextClear(offset, end), model.next(offset, end, false), context(step, `nextClear(${offset}, ${end})`));
        const maxBytes = random.int(1, 5000);
        assert.deepEqual(bitmap.nextDirtyArea(offset, end, maxBytes), model.nextDirtyArea(offset, end, maxBytes),
          context(step, `nextDirtyArea(${offset}, ${end}, ${maxBytes})`));
        const [rangeOffset, rangeBytes] = randomRange(random, length);
        assert.equal(bitmap.countRange(rangeOffset, rangeBytes + 17), model.countRange(rangeOffset, rangeBytes + 17),
          context(step, `countRange(${rangeOffset}, ${rangeBytes + 17})`));
      }
      assert.equal(bitmap.count(), model.count(), context(step, 'count()'));
      assert.equal(bitmap.isEmpty(), model.count() === 0, context(step, 'isEmpty()'));
    }
    // A full walk with nextDirtyArea must visit exactly the set granules.
    const walked = new NaiveBitmap(length, granularity);
    for (let area = bitmap.nextDirtyArea(0, length, 4096); area; area = bitmap.nextDirtyArea(area.offset + area.bytes, length, 4096)) {
      assert.ok(area.bytes > 0);
      walked.set(area.offset, area.bytes);
    }
    assert.deepEqual(walked.bits, model.bits, `seed ${seed}, length ${length}: dirty-area walk`);
  }
});

test('HBitmap: a 4 TiB bitmap at 64 KiB granularity takes a few MiB and scans sparse data quickly', () => {
  const length = 4 * 2 ** 40;
  const granularity = 65_536;
  const bitmap = new HBitmap(length, granularity);
  // One bit per granule (8 MiB) plus summaries of about 1/31 of that.
  assert.ok(bitmap.memoryBytes <= 8.5 * 2 ** 20, `uses ${bitmap.memoryBytes} bytes`);
  const random = new SeededRandom(7);
  const expected: number[] = [];
  for (let i = 0; i < 1000; i++) expected.push(random.int(0, bitmap.granules - 1) * granularity);
  const unique = [...new Set(expected)].sort((a, b) => a - b);
  for (const offset of unique) bitmap.set(offset, 1);
  const found: number[] = [];
  for (let at = bitmap.nextSet(0); at >= 0; at = bitmap.nextSet(at + granularity)) found.push(at);
  assert.deepEqual(found, unique);
  assert.equal(bitmap.count(), unique.length * granularity);

  bitmap.setAll();
  assert.equal(bitmap.count(), length);
  assert.equal(bitmap.nextClear(0), -1);
  bitmap.reset(2 ** 41, granularity);
  assert.equal(bitmap.nextClear(0), 2 ** 41);
  assert.deepEqual(bitmap.nextDirtyArea(2 ** 41 - 3 * granularity, length, 2 ** 30), { offset: 2 ** 41 - 3 * granularity, bytes: 3 * granularity });
  bitmap.resetAll();
  assert.ok(bitmap.isEmpty());
  assert.equal(bitmap.nextSet(0), -1);
});

test('HBitmap: offsets inside a granule, the partial last granule, and merge/clone', () => {
  const bitmap = new HBitmap(10_000, 4096);
  assert.equal(bitmap.granules, 3);
  bitmap.set(9000, 1000); // touches the last, partial granule [8192, 10000)
  assert.equal(bitmap.count(), 10_000 - 8192);
  assert.equal(bitmap.nextSet(0), 8192);
  assert.equal(bitmap.nextSet(9500), 9500);
  assert.equal(bitmap.nextClear(100), 100);
  assert.equal(bitmap.nextClear(8192), -1);
  assert.equal(bitmap.nextSet(0, 8192), -1);
  assert.equal(bitmap.countRange(0, 8193), 10_000 - 8192);
  const copy = bitmap.clone();
  bitmap.reset(8192, 10_000 - 8192);
  assert.ok(bitmap.isEmpty());
  assert.equal(copy.count(), 10_000 - 8192);
  bitmap.set(0, 1);
  bitmap.merge(copy);
  assert.equal(bitmap.count(), 4096 + 10_000 - 8192);
  assert.deepEqual(bitmap.nextDirtyArea(0, 10_000, 100_000), { offset: 0, bytes: 4096 });
});

test('HBitmap refuses bad geometry and out-of-range requests with clear errors', () => {
  const expectError = (fn: () => unknown, code: string, pattern: RegExp): void => {
    assert.throws(fn, (error: unknown) => error instanceof LivebackupError && error.code === code && pattern.test(error.message));
  };
  expectError(() => new HBitmap(-1, 512), 'INVALID_ARGUMENT', /length/);
  expectError(() => new HBitmap(1024, 3), 'INVALID_ARGUMENT', /power of two/);
  expectError(() => new HBitmap(1024, 0), 'INVALID_ARGUMENT', /power of two/);
  expectError(() => new HBitmap(2 ** 40, 1), 'INVALID_ARGUMENT', /coarser granularity/);
  const bitmap = new HBitmap(4096, 512);
  expectError(() => bitmap.set(4000, 200), 'OUT_OF_BOUNDS', /\[4000, 4200\) exceeds the length 4096/);
  expectError(() => bitmap.reset(-1, 2), 'INVALID_ARGUMENT', /offset/);
  expectError(() => bitmap.set(0, 1.5), 'INVALID_ARGUMENT', /bytes/);
  expectError(() => bitmap.get(4096), 'OUT_OF_BOUNDS', /beyond the length/);
  expectError(() => bitmap.nextDirtyArea(0, 4096, 0), 'INVALID_ARGUMENT', /maxBytes/);
  expectError(() => bitmap.merge(new HBitmap(4096, 1024)), 'INVALID_ARGUMENT', /geometry/);
  assert.equal(bitmap.nextSet(5000), -1);
  assert.equal(bitmap.nextClear(4096), -1);
});
