import assert from 'node:assert/strict';
import { test } from 'node:test';
import { extentOffsets, GiB, MiB, SeededStream } from '../../bench/lib/images.js';
import { parseTimeVerbose, parseVmHwm } from '../../bench/lib/processes.js';
import { fittingScale, requiredBytes, SCALES } from '../../bench/lib/scale.js';
import { parseQemuImgBench } from '../../bench/scenarios/guest-writes.js';

test('peak RSS and CPU seconds from time -v and from /proc VmHWM, in bytes', () => {
  const timeOutput =
    '\tCommand being timed: "node x"\n\tUser time (seconds): 2.16\n\tSystem time (seconds): 8.78\n\tMaximum resident set size (kbytes): 121092\n\tExit status: 0\n';
  const parsed = parseTimeVerbose(timeOutput);
  assert.equal(parsed.peakRssBytes, 121092 * 1024);
  assert.ok(Math.abs(parsed.cpuSeconds! - 10.94) < 1e-9);
  assert.deepEqual(parseTimeVerbose('nothing here'), { peakRssBytes: undefined, cpuSeconds: undefined });
  assert.equal(parseVmHwm('VmPeak:\t  200 kB\nVmHWM:\t   5120 kB\nVmRSS:\t 4000 kB\n'), 5120 * 1024);
});

test('qemu-img bench run time', () => {
  assert.equal(parseQemuImgBench('Sending 100 write requests...\nRun completed in 0.030 seconds.\n'), 0.03);
  assert.throws(() => parseQemuImgBench('qemu-img: error'), /no run time/);
});

test('extents are spread evenly from offset 0 and refused when they do not fit', () => {
  assert.deepEqual(extentOffsets({ virtualBytes: 4 * GiB, extentBytes: 64 * MiB, count: 4 }), [0, GiB, 2 * GiB, 3 * GiB]);
  assert.throws(() => extentOffsets({ virtualBytes: 64 * MiB, extentBytes: 64 * MiB, count: 2 }), /do not fit/);
});

test('the seeded stream repeats for a seed and differs between seeds', () => {
  const a = new SeededStream(7, 4096).next();
  assert.deepEqual(new SeededStream(7, 4096).next(), a);
  assert.notDeepEqual(new SeededStream(8, 4096).next(), a);
});

test('the scale shrinks to what the free space allows, or none fits', () => {
  assert.equal(fittingScale('spec', Number.MAX_SAFE_INTEGER)?.name, 'spec');
  assert.equal(fittingScale('spec', requiredBytes(SCALES.default))?.name, 'default');
  assert.equal(fittingScale('default', requiredBytes(SCALES.quick))?.name, 'quick');
  assert.equal(fittingScale('quick', requiredBytes(SCALES.quick) - 1), undefined);
});
