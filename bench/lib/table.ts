/**
 * The Markdown report: one table of comparisons (absolute values of both
 * sides, the median per-pair ratio with its min and max, the target and
 * whether it is met), one table of single-value checks, then notes.
 */
import type { CheckRow, ComparisonRow, Metric, ScenarioReport, Target } from './report.js';
import type { Summary } from './stats.js';

const MiB = 1024 * 1024;

/** A value of `metric` in its unit, e.g. "2.31 s", "812 MiB/s", "45.2 MiB". */
export function formatValue(metric: Metric, value: number): string {
  switch (metric) {
    case 'time':
      return `${value.toFixed(2)} s`;
    case 'throughput':
      return `${(value / MiB).toFixed(0)} MiB/s`;
    case 'rss':
      return `${(value / MiB).toFixed(1)} MiB`;
  }
}

/** "0.74 (0.70–0.81)": median ratio with min and max. */
export function formatRatio(ratio: Summary): string {
  return `${ratio.median.toFixed(2)} (${ratio.min.toFixed(2)}–${ratio.max.toFixed(2)})`;
}

/** "≤ 0.80", "≥ 1.00 stretch", or "—". */
export function formatTarget(target: Target | undefined): string {
  if (!target) return '—';
  return `${target.kind === 'at-most' ? '≤' : '≥'} ${target.limit.toFixed(2)}${target.note ? ` ${target.note}` : ''}`;
}

/** "yes", "**no**" or "—" (no target). */
export function formatMet(met: boolean | undefined): string {
  return met === undefined ? '—' : met ? 'yes' : '**no**';
}

/** Escape a table cell: pipes would split it, newlines would end the row. */
export function escapeCell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

/** A Markdown table from a header and rows of cells. */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]) => `| ${cells.map(escapeCell).join(' | ')} |`;
  for (const row of rows) {
    if (row.length !== header.length) throw new RangeError(`table row has ${row.length} cells, header has ${header.length}`);
  }
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** "ours / peer" medians of an optional per-process figure; '?' where unknown. */
function bothSides(row: ComparisonRow, pick: (side: ComparisonRow['ours']) => Summary | undefined, metric: Metric): string {
  const cell = (summary: Summary | undefined) => (summary ? formatValue(metric, summary.median) : '?');
  return `${cell(pick(row.ours))} / ${cell(pick(row.peer))}`;
}

/** The comparisons table. Absolute columns are medians; CPU is user + system seconds of the measured process. */
export function comparisonTable(rows: readonly ComparisonRow[]): string {
  return markdownTable(
    ['Scenario', 'Comparison', 'livebackup', 'Peer', 'Ratio median (min–max)', 'Target', 'Met', 'Peak RSS (ours / peer)', 'CPU (ours / peer)'],
    rows.map((row) => [
      row.scenario,
      row.note ? `${row.comparison} (${row.note})` : row.comparison,
      formatValue(row.metric, row.ours.value.median),
      `${row.peer.label}: ${formatValue(row.metric, row.peer.value.median)}`,
      formatRatio(row.ratio),
      formatTarget(row.target),
      formatMet(row.met),
      bothSides(row, (side) => side.peakRss, 'rss'),
      bothSides(row, (side) => side.cpuSeconds, 'time'),
    ]),
  );
}

/** The single-value checks table. */
export function checkTable(checks: readonly CheckRow[]): string {
  return markdownTable(
    ['Scenario', 'Check', 'Value', 'Met'],
    checks.map((check) => [check.scenario, check.check, check.value, formatMet(check.met)]),
  );
}

/** The whole Markdown report of a bench run. */
export function renderReport(reports: readonly ScenarioReport[], facts: readonly string[]): string {
  const rows = reports.flatMap((report) => report.rows);
  const checks = reports.flatMap((report) => report.checks);
  const notes = reports.flatMap((report) => report.notes.map((note) => `- ${report.name}: ${note}`));
  const parts = ['## Machine', facts.map((fact) => `- ${fact}`).join('\n'), '## Results (ratio = livebackup / peer)'];
  if (rows.length > 0) parts.push(comparisonTable(rows));
  if (checks.length > 0) parts.push(checkTable(checks));
  if (notes.length > 0) parts.push('## Notes', notes.join('\n'));
  return `${parts.join('\n\n')}\n`;
}
