import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DriverBlockStatus } from '../../src/block/block-driver.js';
import { BlockNode } from '../../src/block/block-node.js';
import { ReadPlanner, type ReadSegment } from '../../src/nbd/read-plan.js';
import { MemoryDriver } from '../helpers/memory-driver.js';

const MiB = 1024 * 1024;

/** A memory driver whose block status comes from a map of zero ranges, counting status calls. */
class ZeroMapDriver extends MemoryDriver {
  /** Ranges [start, end) reported as unallocated zeroes; everything else is data. */
  zeroRanges: Array<[number, number]> = [];
  statusCalls = 0;

  override async blockStatus(offset: number, bytes: number): Promise<DriverBlockStatus> {
    this.statusCalls++;
    const end = offset + bytes;
    for (const [start, stop] of this.zeroRanges) {
      if (offset >= start && offset < stop) return { bytes: Math.min(stop, end) - offset, state: 'zero' };
    }
    const nextZero = Math.min(end, ...this.zeroRanges.map(([start]) => start).filter((start) => start > offset));
    return { bytes: nextZero - offset, state: 'data' };
  }
}

function zeroMapNode(size: number): { node: BlockNode; driver: ZeroMapDriver } {
  const driver = new ZeroMapDriver(size);
  const node = new BlockNode({ nodeName: 'map', driver, readOnly: false, discard: 'unmap', noFlush: false, length: size, options: {} });
  return { node, driver };
}

async function plan(planner: ReadPlanner, offset: number, length: number): Promise<ReadSegment[]> {
  return planner.plan(offset, length);
}

test('ReadPlanner: reads inside a learned data run need no status call; holes are planned fresh', async () => {
  const { node, driver } = zeroMapNode(8 * MiB);
  driver.zeroRanges = [[4 * MiB, 8 * MiB]];
  const planner = new ReadPlanner(node);
  assert.deepEqual(await plan(planner, 0, 65536), [{ offset: 0, length: 65536, hole: false }]);
  const callsAfterFirst = driver.statusCalls;
  assert.ok(callsAfterFirst >= 1);
  // Sequential reads in the data run: answered without asking the node.
  for (let offset = 65536; offset < 4 * MiB; offset += 65536) {
    const planned = planner.plan(offset, 65536);
    assert.ok(Array.isArray(planned), `read at ${offset} should be planned synchronously`);
    assert.deepEqual(planned, [{ offset, length: 65536, hole: false }]);
  }
  assert.equal(driver.statusCalls, callsAfterFirst);
  // A read crossing into the zero area gets a hole chunk.
  assert.deepEqual(await plan(planner, 4 * MiB - 8192, 16384), [
    { offset: 4 * MiB - 8192, length: 8192, hole: false },
    { offset: 4 * MiB, length: 8192, hole: true },
  ]);
});

test('ReadPlanner: a hole that becomes data is planned as data; data that becomes zero is still read (safe)', async () => {
  const { node, driver } = zeroMapNode(8 * MiB);
  driver.zeroRanges = [[2 * MiB, 8 * MiB]];
  const planner = new ReadPlanner(node);
  assert.deepEqual(await plan(planner, 2 * MiB, 65536), [{ offset: 2 * MiB, length: 65536, hole: true }]);
  // Holes are never remembered: once the area holds data, the plan says so.
  driver.zeroRanges = [];
  assert.deepEqual(await plan(planner, 2 * MiB, 65536), [{ offset: 2 * MiB, length: 65536, hole: false }]);
  // The remembered data run may since have become zeroes: the plan reads it as data, which is correct.
  driver.zeroRanges = [[0, 8 * MiB]];
  assert.deepEqual(await plan(planner, 2 * MiB + 65536, 65536), [{ offset: 2 * MiB + 65536, length: 65536, hole: false }]);
});
