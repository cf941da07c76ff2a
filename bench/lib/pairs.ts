/**
 * Running contenders in alternating rounds: every round runs each contender
 * once, the starting contender rotating from round to round so that drift
 * (page cache, writeback, thermal) falls evenly on every side. Warm-up
 * rounds run first and are discarded.
 */

/** One measured run of a contender. */
export interface Measurement {
  /** Wall-clock seconds of the timed part. */
  readonly seconds: number;
  /** Peak resident set size in bytes, when measured. */
  readonly peakRssBytes?: number;
  /** User plus system CPU seconds of the measured process, when known. */
  readonly cpuSeconds?: number;
  /** How peakRssBytes was obtained (see processes.ts). */
  readonly rssMethod?: string;
  /** Scenario-specific numbers (throughput, secondary timings). */
  readonly extra?: Readonly<Record<string, number>>;
}

/** A side of a comparison: a label and a way to run it once. */
export interface Contender {
  readonly label: string;
  /** Run once and measure; throws when the run failed (a failed run has no time). */
  run(): Promise<Measurement>;
}

export interface RoundOptions {
  /** Measured rounds (>= 1). */
  readonly rounds: number;
  /** Rounds run first and discarded. */
  readonly warmup: number;
  /** Progress lines go here. */
  readonly log?: (line: string) => void;
}

/** The measurements of each contender, by label, in round order (warm-up excluded). */
export type RoundResults = ReadonlyMap<string, readonly Measurement[]>;

/**
 * The order contenders run in during round `round`: rotated by the round
 * number, so each contender starts a round equally often.
 */
export function roundOrder<T>(contenders: readonly T[], round: number): T[] {
  const shift = contenders.length === 0 ? 0 : round % contenders.length;
  return [...contenders.slice(shift), ...contenders.slice(0, shift)];
}

/** Run `warmup + rounds` rounds of every contender and return the measured ones. */
export async function runRounds(contenders: readonly Contender[], options: RoundOptions): Promise<RoundResults> {
  if (!Number.isInteger(options.rounds) || options.rounds < 1) throw new RangeError(`rounds must be a positive integer, not ${options.rounds}`);
  const labels = new Set(contenders.map((contender) => contender.label));
  if (labels.size !== contenders.length) throw new RangeError('contender labels must be unique');
  const results = new Map<string, Measurement[]>(contenders.map((contender) => [contender.label, []]));
  const total = options.warmup + options.rounds;
  for (let round = 0; round < total; round++) {
    const warm = round < options.warmup;
    const parts: string[] = [];
    for (const contender of roundOrder(contenders, round)) {
      const measurement = await contender.run();
      if (!warm) results.get(contender.label)!.push(measurement);
      parts.push(`${contender.label} ${measurement.seconds.toFixed(2)}s`);
    }
    options.log?.(`  ${warm ? 'warm-up' : `round ${round - options.warmup + 1}/${options.rounds}`}: ${parts.join(', ')}`);
  }
  return results;
}
