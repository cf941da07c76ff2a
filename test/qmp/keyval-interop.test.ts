/**
 * Command-line option errors: each `--blockdev` argument in the shared
 * table is given to a real qemu-storage-daemon, whose message must be the
 * one the table records (and keyval.test.ts checks ours against it).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { run, skipUnlessTools } from '../helpers/tools.js';
import { BLOCKDEV_OPTION_REFUSALS } from './blockdev-test-schema.js';

test('qemu-storage-daemon refuses each --blockdev argument with the recorded message', { skip: skipUnlessTools('qemu-storage-daemon') }, async () => {
  const results = await Promise.all(
    BLOCKDEV_OPTION_REFUSALS.map(async ([argument]) =>
      run('qemu-storage-daemon', ['--blockdev', 'null-co,node-name=n0', '--blockdev', argument], { timeoutMs: 30_000 }),
    ),
  );
  BLOCKDEV_OPTION_REFUSALS.forEach(([argument, message], index) => {
    const result = results[index]!;
    assert.equal(result.code, 1, `${argument}: ${result.stderr}`);
    assert.equal(result.stderr.trim().split('\n').at(-1), `qemu-storage-daemon: --blockdev ${argument}: ${message}`);
  });
});
