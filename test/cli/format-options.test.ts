import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFormatOptions } from '../../src/cli/format-options.js';
import { LivebackupError } from '../../src/errors.js';

test('parseFormatOptions: comma-separated key=value, ",," for a comma, later -o wins', () => {
  assert.deepEqual(parseFormatOptions([]), {});
  assert.deepEqual(parseFormatOptions(['cluster_size=4096,lazy_refcounts=on']), { cluster_size: '4096', lazy_refcounts: 'on' });
  assert.deepEqual(parseFormatOptions(['backing_file=a,,b.qcow2,backing_fmt=qcow2']), { backing_file: 'a,b.qcow2', backing_fmt: 'qcow2' });
  assert.deepEqual(parseFormatOptions(['cluster_size=4096', 'cluster_size=512,']), { cluster_size: '512' });
  assert.deepEqual(parseFormatOptions(['key=']), { key: '' });
  assert.deepEqual(parseFormatOptions(['key=a=b']), { key: 'a=b' });
});

test('parseFormatOptions rejects items without a key or an =, naming them', () => {
  for (const [arg, item] of [
    ['lazy_refcounts', 'lazy_refcounts'],
    ['a=1,=2', '=2'],
  ]) {
    assert.throws(
      () => parseFormatOptions([arg!]),
      (error: unknown) => error instanceof LivebackupError && error.code === 'INVALID_ARGUMENT' && error.message.includes(`'${item}'`),
    );
  }
});
