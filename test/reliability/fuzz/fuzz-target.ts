/**
 * The shape of a fuzz target and the loop that drives one: mutate a random
 * seed (mutator.ts), run the case, collect failures with the case's seed
 * and bytes so it can be replayed and turned into a regression test.
 */
import { SeededRandom } from '../../helpers/random.js';
import { Mutator, type MutationHints } from './mutator.js';

/** A valid input to start mutating from. */
export interface FuzzSeed {
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly hints?: MutationHints;
}

export interface FuzzTarget {
  readonly name: string;
  /** Valid inputs, generated (not stored). */
  seeds(): Promise<FuzzSeed[]>;
  /** Run one input; resolve with a failure text, or undefined when the target behaved. */
  run(bytes: Uint8Array, random: SeededRandom): Promise<string | undefined>;
  /** Release what setup made (servers, sockets). */
  close?(): Promise<void>;
}

/** One failing case, replayable from (seed, index). */
export interface FuzzFailure {
  readonly target: string;
  readonly seed: number;
  readonly caseIndex: number;
  readonly failure: string;
  readonly bytes: Uint8Array;
}

export interface FuzzReport {
  readonly target: string;
  readonly cases: number;
  readonly failures: FuzzFailure[];
  readonly milliseconds: number;
}

/** The bytes of case `caseIndex` of a run with `seed`: deterministic, so a failure replays alone. */
export function caseInput(seed: number, caseIndex: number, seeds: readonly FuzzSeed[]): { bytes: Uint8Array; random: SeededRandom } {
  const random = new SeededRandom((Math.imul(seed, 0x9e3779b1) ^ Math.imul(caseIndex + 1, 0x85ebca6b)) >>> 0);
  const base = random.pick(seeds);
  const mutator = new Mutator(random);
  const bytes = random.chance(0.03) ? base.bytes : mutator.mutate(base.bytes, seeds.map((s) => s.bytes), base.hints);
  return { bytes, random };
}

/** Run `cases` cases of `target` from `seed`; stops collecting after 20 failures. */
export function fuzz(target: FuzzTarget, seed: number, cases: number, onProgress?: (done: number) => void): Promise<FuzzReport> {
  return fuzzRange(target, seed, 0, cases, onProgress);
}

/** Run cases `from` .. `from + cases - 1` of `target` with `seed` (replaying one is `cases` = 1). */
export async function fuzzRange(target: FuzzTarget, seed: number, from: number, cases: number, onProgress?: (done: number) => void): Promise<FuzzReport> {
  const seeds = await target.seeds();
  const failures: FuzzFailure[] = [];
  const started = Date.now();
  for (let caseIndex = from; caseIndex < from + cases; caseIndex++) {
    const { bytes, random } = caseInput(seed, caseIndex, seeds);
    const failure = await target.run(bytes, random);
    if (failure !== undefined && failures.length < 20) failures.push({ target: target.name, seed, caseIndex, failure, bytes });
    const done = caseIndex - from + 1;
    if (onProgress && done % 1000 === 0) onProgress(done);
  }
  return { target: target.name, cases, failures, milliseconds: Date.now() - started };
}
