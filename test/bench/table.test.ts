import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareContenders, readThroughput, targetMet, type ScenarioReport } from '../../bench/lib/report.js';
import { escapeCell, formatRatio, markdownTable, renderReport } from '../../bench/lib/table.js';

const MiB = 1024 * 1024;

test('markdownTable writes header, separator and rows, escaping pipes', () => {
  assert.equal(markdownTable(['a', 'b'], [['1', 'x|y']]), '| a | b |\n| --- | --- |\n| 1 | x\\|y |');
  assert.equal(escapeCell('two\nlines'), 'two lines');
  assert.throws(() => markdownTable(['a', 'b'], [['only one']]), /1 cells, header has 2/);
});

test('targets: at-most and at-least, inclusive', () => {
  assert.equal(targetMet({ kind: 'at-most', limit: 0.8 }, 0.8), true);
  assert.equal(targetMet({ kind: 'at-most', limit: 0.8 }, 0.81), false);
  assert.equal(targetMet({ kind: 'at-least', limit: 1 }, 0.99), false);
  assert.equal(targetMet({ kind: 'at-least', limit: 1 }, 1), true);
});

test('a time row: per-pair ratios, medians of each side, target judged on the median ratio', () => {
  const results = new Map([
    ['ours', [{ seconds: 1, peakRssBytes: 50 * MiB }, { seconds: 3, peakRssBytes: 60 * MiB }, { seconds: 2, peakRssBytes: 55 * MiB }]],
    ['qsd', [{ seconds: 2, peakRssBytes: 70 * MiB }, { seconds: 3, peakRssBytes: 70 * MiB }, { seconds: 4, peakRssBytes: 70 * MiB }]],
  ]);
  const row = compareContenders(results, { scenario: 's', comparison: 'c', metric: 'time', ours: 'ours', peer: 'qsd', target: { kind: 'at-most', limit: 0.8 } });
  assert.deepEqual(row.ratio, { median: 0.5, min: 0.5, max: 1, count: 3 });
  assert.equal(row.ours.value.median, 2);
  assert.equal(row.peer.value.median, 3);
  assert.equal(row.ours.peakRss?.median, 55 * MiB);
  assert.equal(row.met, true);
  assert.equal(formatRatio(row.ratio), '0.50 (0.50–1.00)');
});

test('a throughput row divides bytes by seconds, so a faster run has a higher ratio', () => {
  const results = new Map([
    ['ours', [{ seconds: 1 }]],
    ['peer', [{ seconds: 2 }]],
  ]);
  const row = compareContenders(results, { scenario: 's', comparison: 'c', metric: 'throughput', ours: 'ours', peer: 'peer', read: readThroughput(100 * MiB), target: { kind: 'at-least', limit: 0.9 } });
  assert.equal(row.ratio.median, 2);
  assert.equal(row.met, true);
  assert.throws(() => compareContenders(results, { scenario: 's', comparison: 'c', metric: 'time', ours: 'ours', peer: 'nobody' }), /no measurements for 'nobody'/);
});

test('renderReport has the machine facts, one comparison table, checks and notes', () => {
  const results = new Map([
    ['livebackup', [{ seconds: 1.5 }]],
    ['qemu-storage-daemon', [{ seconds: 2 }]],
  ]);
  const report: ScenarioReport = {
    name: 'full-qcow2',
    title: 't',
    rows: [compareContenders(results, { scenario: 'full-qcow2', comparison: 'backup time', metric: 'time', ours: 'livebackup', peer: 'qemu-storage-daemon', target: { kind: 'at-most', limit: 0.8 } })],
    checks: [{ scenario: 'memory', check: 'RSS ≤ 128 MiB', value: '80.0 MiB', met: true }],
    notes: ['image: 2 GiB'],
  };
  const text = renderReport([report], ['nproc: 2']);
  const lines = text.split('\n');
  assert.ok(lines.includes('- nproc: 2'));
  assert.ok(lines.includes('| full-qcow2 | backup time | 1.50 s | qemu-storage-daemon: 2.00 s | 0.75 (0.75–0.75) | ≤ 0.80 | yes | ? / ? | ? / ? |'), text);
  assert.ok(lines.includes('| memory | RSS ≤ 128 MiB | 80.0 MiB | yes |'), text);
  assert.ok(lines.includes('- full-qcow2: image: 2 GiB'), text);
});
