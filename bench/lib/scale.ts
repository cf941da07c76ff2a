/**
 * How big the bench runs. The sizes (4 GiB images with 2 GiB of
 * data, 1 GiB in the sparse disk) are `spec`; `default` is a quarter of
 * that so the whole bench fits in ten minutes on 2 cores and a disk that
 * syncs a few hundred MiB/s; `quick` is a smoke run. Ratios, not absolute
 * times, are what the bench judges.
 */
import { GiB, MiB, TiB, type ImageLayout } from './images.js';

export type ScaleName = 'spec' | 'default' | 'quick';

export interface BenchScale {
  readonly name: ScaleName;
  /** Measured rounds per scenario and warm-up rounds before them. */
  readonly rounds: number;
  readonly warmup: number;
  /** Scenarios 1, 2, 4, 5: a mostly-allocated disk. */
  readonly full: ImageLayout;
  /** Scenario 3: a big, mostly empty qcow2. */
  readonly sparse: ImageLayout;
  /**
   * Scenario 3, raw source: a sparse raw file. Smaller than `sparse`
   * because our file driver reads every hole (no SEEK_DATA in Node).
   */
  readonly sparseRaw: ImageLayout;
  /** Scenario 6: a huge sparse qcow2 for the flat-memory check. */
  readonly huge: ImageLayout;
  /** Scenario 4: 4 KiB guest writes per run. */
  readonly guestWrites: number;
}

const EXTENT = 64 * MiB;

export const SCALES: Readonly<Record<ScaleName, BenchScale>> = {
  spec: {
    name: 'spec',
    rounds: 5,
    warmup: 1,
    full: { virtualBytes: 4 * GiB, extentBytes: EXTENT, count: 32 },
    sparse: { virtualBytes: 64 * GiB, extentBytes: EXTENT, count: 16 },
    sparseRaw: { virtualBytes: 8 * GiB, extentBytes: EXTENT, count: 2 },
    huge: { virtualBytes: TiB, extentBytes: EXTENT, count: 16 },
    guestWrites: 30_000,
  },
  default: {
    name: 'default',
    rounds: 5,
    warmup: 1,
    full: { virtualBytes: GiB, extentBytes: EXTENT, count: 8 },
    sparse: { virtualBytes: 64 * GiB, extentBytes: EXTENT, count: 4 },
    sparseRaw: { virtualBytes: GiB, extentBytes: EXTENT, count: 1 },
    huge: { virtualBytes: TiB, extentBytes: EXTENT, count: 4 },
    guestWrites: 10_000,
  },
  quick: {
    name: 'quick',
    rounds: 5,
    warmup: 1,
    full: { virtualBytes: 256 * MiB, extentBytes: EXTENT, count: 2 },
    sparse: { virtualBytes: 8 * GiB, extentBytes: EXTENT, count: 1 },
    sparseRaw: { virtualBytes: 512 * MiB, extentBytes: EXTENT, count: 1 },
    huge: { virtualBytes: 64 * GiB, extentBytes: EXTENT, count: 1 },
    guestWrites: 3_000,
  },
};

/**
 * Disk space a run at `scale` needs in its workspace: the data of each
 * image in its raw and qcow2 form, plus two backup targets at a time.
 */
export function requiredBytes(scale: BenchScale): number {
  const data = (layout: ImageLayout) => layout.count * layout.extentBytes;
  const images = 2 * (data(scale.full) + data(scale.sparse) + data(scale.huge)) + data(scale.full) + data(scale.sparseRaw);
  return images + 2 * data(scale.full) + GiB;
}

/** The biggest scale no bigger than `wanted` that fits in `freeBytes`, or undefined. */
export function fittingScale(wanted: ScaleName, freeBytes: number): BenchScale | undefined {
  const order: ScaleName[] = ['spec', 'default', 'quick'];
  return order.slice(order.indexOf(wanted)).map((name) => SCALES[name]).find((scale) => requiredBytes(scale) <= freeBytes);
}
