/**
 * A job whose error policy is `ignore` retries a failing request; while it
 * does, the rest of the process (timers, sockets, QMP, cancel) must keep
 * running. Counted, not timed: at the first error the test asks for one
 * setImmediate callback and fails if the job reports many more errors
 * before that callback gets to run.
 * (The listener then removes the fault, so a starving job still ends.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { BlockGraph } from '../../src/block/block-graph.js';
import type { BlkdebugDriver } from '../../src/block/drivers/blkdebug.js';
import { createImage } from '../../src/block/image-file.js';
import { startBackup } from '../../src/backup/start-backup.js';
import { tempDir } from '../helpers/temp-dir.js';

/** More errors than this before one turn of the event loop means the retries never yield. */
const STARVING_ERRORS = 10_000;

for (const side of ['source', 'target'] as const) {
  test(
    `on-${side}-error=ignore with a persistent ${side} fault leaves the event loop running`,
    async (t) => {
      const dir = await tempDir(t);
      const graph = new BlockGraph();
      t.after(() => graph.closeAll());
      const open = async (name: string) => {
        const path = join(dir, `${name}.raw`);
        await createImage(path, 'raw', 1024 * 1024);
        return graph.open({ driver: 'blkdebug', 'node-name': name, image: { driver: 'raw', file: { driver: 'file', filename: path } } });
      };
      const source = await open('source');
      const target = await open('target');
      const faulty = (side === 'source' ? source : target).driver as BlkdebugDriver;
      faulty.rules.push(side === 'source' ? { event: 'read_aio', errno: 5 } : { event: 'flush_to_disk', errno: 5 });
      let loopTurned = false;
      let errorsBeforeTurn = 0;
      let starved = false;
      const job = startBackup({
        source,
        target,
        sync: 'full',
        onSourceError: 'ignore',
        onTargetError: 'ignore',
        jobId: `ignore-${side}`,
        onEvent: (event) => {
          if (event.event !== 'BLOCK_JOB_ERROR' || loopTurned) return;
          // From the first error on, one turn of the event loop ends the fault.
          if (errorsBeforeTurn === 0) {
            setImmediate(() => {
              loopTurned = true;
              faulty.rules.length = 0;
            });
          }
          if (++errorsBeforeTurn >= STARVING_ERRORS) {
            starved = true;
            faulty.rules.length = 0;
          }
        },
      });
      const result = await job.done;
      assert.equal(result.status, 'completed');
      assert.equal(starved, false, `${errorsBeforeTurn} errors were retried before the event loop could turn once`);
    },
  );
}
