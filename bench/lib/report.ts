/**
 * The bench's result model: one row per comparison of livebackup against a
 * peer, with the per-pair ratio summary and the target it is judged by.
 * Rows are built from round measurements here; table.ts renders them.
 */
import type { Measurement, RoundResults } from './pairs.js';
import { pairRatios, summarize, type Summary } from './stats.js';

/** What a row compares, which decides its unit and which direction is better. */
export type Metric = 'time' | 'throughput' | 'rss';

/** A bound on the median ratio ours / peer. */
export interface Target {
  /** 'at-most': median ratio <= limit is met; 'at-least': >= limit. */
  readonly kind: 'at-most' | 'at-least';
  readonly limit: number;
  /** Extra words shown after the bound (e.g. "stretch"). */
  readonly note?: string;
}

/** One side of a row: its label and the summary of its metric. */
export interface SideResult {
  readonly label: string;
  /** Seconds, bytes per second or bytes, by the row's metric. */
  readonly value: Summary;
  /** Peak RSS of the measured process, when known. */
  readonly peakRss?: Summary;
  readonly rssMethod?: string;
  /** CPU seconds of the measured process, when known. */
  readonly cpuSeconds?: Summary;
}

export interface ComparisonRow {
  readonly scenario: string;
  readonly comparison: string;
  readonly metric: Metric;
  readonly ours: SideResult;
  readonly peer: SideResult;
  /** Per-pair ratio ours / peer of the metric. */
  readonly ratio: Summary;
  readonly target?: Target;
  /** undefined when there is no target. */
  readonly met?: boolean;
  readonly note?: string;
}

/** A single number judged against a target (used where no pairing exists, e.g. RSS limits). */
export interface CheckRow {
  readonly scenario: string;
  readonly check: string;
  readonly value: string;
  readonly met: boolean;
}

/** Everything one scenario reports. */
export interface ScenarioReport {
  readonly name: string;
  readonly title: string;
  readonly rows: readonly ComparisonRow[];
  readonly checks: readonly CheckRow[];
  readonly notes: readonly string[];
}

/** Whether `ratio` satisfies `target`. */
export function targetMet(target: Target, ratio: number): boolean {
  return target.kind === 'at-most' ? ratio <= target.limit : ratio >= target.limit;
}

/** How a row reads its metric out of one measurement. */
export type MetricReader = (measurement: Measurement) => number;

/** Seconds of the timed part. */
export const readSeconds: MetricReader = (measurement) => measurement.seconds;

/** Peak RSS in bytes; throws when the run did not measure it. */
export const readPeakRss: MetricReader = (measurement) => {
  if (measurement.peakRssBytes === undefined) throw new Error('peak RSS was not measured');
  return measurement.peakRssBytes;
};

/** `bytes` divided by the seconds of the run (or by the `extra` field named `secondsField`). */
export function readThroughput(bytes: number, secondsField?: string): MetricReader {
  return (measurement) => {
    const seconds = secondsField === undefined ? measurement.seconds : measurement.extra?.[secondsField];
    if (seconds === undefined || !(seconds > 0)) throw new Error(`no positive ${secondsField ?? 'seconds'} in measurement`);
    return bytes / seconds;
  };
}

export interface CompareOptions {
  readonly scenario: string;
  readonly comparison: string;
  readonly metric: Metric;
  /** Label of our contender in `results`, and of the peer. */
  readonly ours: string;
  readonly peer: string;
  /** Defaults to seconds for 'time', peak RSS for 'rss'; required for 'throughput'. */
  readonly read?: MetricReader;
  readonly target?: Target;
  readonly note?: string;
}

/** Build a row from the round results of two contenders. */
export function compareContenders(results: RoundResults, options: CompareOptions): ComparisonRow {
  const read = options.read ?? (options.metric === 'rss' ? readPeakRss : options.metric === 'time' ? readSeconds : undefined);
  if (!read) throw new Error(`compareContenders: metric ${options.metric} needs a reader`);
  const oursRuns = requireRuns(results, options.ours);
  const peerRuns = requireRuns(results, options.peer);
  const oursValues = oursRuns.map(read);
  const peerValues = peerRuns.map(read);
  const ratio = summarize(pairRatios(oursValues, peerValues));
  return {
    scenario: options.scenario,
    comparison: options.comparison,
    metric: options.metric,
    ours: sideResult(options.ours, oursValues, oursRuns),
    peer: sideResult(options.peer, peerValues, peerRuns),
    ratio,
    target: options.target,
    met: options.target ? targetMet(options.target, ratio.median) : undefined,
    note: options.note,
  };
}

function requireRuns(results: RoundResults, label: string): readonly Measurement[] {
  const runs = results.get(label);
  if (!runs || runs.length === 0) throw new Error(`no measurements for '${label}'`);
  return runs;
}

/** Summary of an optional field, when every run has it. */
function summaryOf(runs: readonly Measurement[], field: 'peakRssBytes' | 'cpuSeconds'): Summary | undefined {
  const values = runs.map((run) => run[field]).filter((value): value is number => value !== undefined);
  return values.length === runs.length ? summarize(values) : undefined;
}

function sideResult(label: string, values: number[], runs: readonly Measurement[]): SideResult {
  return {
    label,
    value: summarize(values),
    peakRss: summaryOf(runs, 'peakRssBytes'),
    rssMethod: runs.find((run) => run.rssMethod !== undefined)?.rssMethod,
    cpuSeconds: summaryOf(runs, 'cpuSeconds'),
  };
}
