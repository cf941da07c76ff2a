/**
 * Command-line option errors: each `--blockdev` and `--export` argument in
 * the shared tables is given to a real qemu-storage-daemon, whose message
 * must be the one the table records (keyval.test.ts checks ours against
 * the same tables).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { run, skipUnlessTools } from '../helpers/tools.js';
import { BLOCKDEV_OPTION_REFUSALS, EXPORT_OPTION_REFUSALS } from './qapi-test-schema.js';

const cases = [
  ...BLOCKDEV_OPTION_REFUSALS.map(([argument, message]) => ({ option: '--blockdev', argument, message })),
  ...EXPORT_OPTION_REFUSALS.map(([argument, message]) => ({ option: '--export', argument, message })),
];

test('qemu-storage-daemon refuses each option argument with the recorded message', { skip: skipUnlessTools('qemu-storage-daemon') }, async () => {
  const results = await Promise.all(
    cases.map(({ option, argument }) =>
      run('qemu-storage-daemon', ['--blockdev', 'null-co,node-name=n0', option, argument], { timeoutMs: 30_000 }),
    ),
  );
  cases.forEach(({ option, argument, message }, index) => {
    const result = results[index]!;
    assert.equal(result.code, 1, `${option} ${argument}: ${result.stderr}`);
    assert.equal(result.stderr.trim().split('\n').at(-1), `qemu-storage-daemon: ${option} ${argument}: ${message}`);
  });
});
