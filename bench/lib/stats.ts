/**
 * Summary statistics of benchmark samples: median, min and max, and the
 * per-pair ratios that the bench reports (ratio = livebackup / peer).
 */

/** Median, min and max of a set of numbers. */
export interface Summary {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly count: number;
}

/**
 * Median (mean of the two middle values for an even count), min and max of
 * `values`. Throws on an empty list or a non-finite value: a benchmark that
 * produced no number must not report one.
 */
export function summarize(values: readonly number[]): Summary {
  if (values.length === 0) throw new RangeError('summarize: no samples');
  for (const value of values) {
    if (!Number.isFinite(value)) throw new RangeError(`summarize: non-finite sample ${value}`);
  }
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, count: sorted.length };
}

/**
 * The ratio ours[i] / peer[i] of each pair, in pair order. Both lists must
 * have the same length (one sample per side per pair) and peer values must
 * be positive.
 */
export function pairRatios(ours: readonly number[], peer: readonly number[]): number[] {
  if (ours.length !== peer.length) throw new RangeError(`pairRatios: ${ours.length} samples against ${peer.length}`);
  return ours.map((value, index) => {
    const divisor = peer[index]!;
    if (!(divisor > 0)) throw new RangeError(`pairRatios: peer sample ${index} is ${divisor}, not positive`);
    return value / divisor;
  });
}

/** Summary of the per-pair ratios ours / peer. */
export function ratioSummary(ours: readonly number[], peer: readonly number[]): Summary {
  return summarize(pairRatios(ours, peer));
}
