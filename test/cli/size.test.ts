import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatSize, parseSize } from '../../src/util/size.js';
import { LivebackupError } from '../../src/errors.js';

test('parseSize: bytes, binary suffixes in either case, fractions with a suffix', () => {
  const cases: [string, number][] = [
    ['0', 0],
    ['4096', 4096],
    ['100b', 100],
    ['512K', 512 * 1024],
    ['512k', 512 * 1024],
    ['100M', 100 * 1024 ** 2],
    ['10G', 10 * 1024 ** 3],
    ['2T', 2 * 1024 ** 4],
    ['1P', 1024 ** 5],
    ['1.5K', 1536],
    ['0.5G', 512 * 1024 ** 2],
    ['1.0001K', 1024],
    [' 64M ', 64 * 1024 ** 2],
  ];
  for (const [text, bytes] of cases) assert.equal(parseSize(text), bytes, text);
});

test('parseSize rejects malformed, negative, fractional-byte and too large sizes, naming the value', () => {
  for (const text of ['', 'G', '-1', '1.5', '10Q', '1e6', '0x10', '1..5K', '10 G B', '8E', '99999999999999999999']) {
    assert.throws(
      () => parseSize(text, 'speed'),
      (error: unknown) => error instanceof LivebackupError && error.code === 'INVALID_ARGUMENT' && error.message.includes(`speed '${text}'`),
      JSON.stringify(text),
    );
  }
});

test('formatSize prints like qemu-img (three significant digits, binary units)', () => {
  const cases: [number, string][] = [
    [0, '0 B'],
    [512, '512 B'],
    [999, '999 B'],
    [1000, '0.977 KiB'],
    [4096, '4 KiB'],
    [1314816, '1.25 MiB'],
    [67108864, '64 MiB'],
    [10485760, '10 MiB'],
    [3 * 1024 ** 3, '3 GiB'],
    [1024 ** 3 - 1, '1 GiB'],
    [1000000, '977 KiB'],
  ];
  for (const [bytes, text] of cases) assert.equal(formatSize(bytes), text, String(bytes));
});
