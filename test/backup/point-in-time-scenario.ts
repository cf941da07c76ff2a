/**
 * One randomized point-in-time backup scenario, replayable from its seed:
 * a source image (raw, qcow2, or qcow2 over a backing file) with random
 * content; a backup job (sync full/top/none, random speed, workers, chunk);
 * several async writers doing random writes, writeZeroes and discards
 * meanwhile; then the target (for top: with the shared backing; for none:
 * read while the job still runs) must equal the source as it was when the
 * job started, by `qemu-img compare`, and a qcow2 target must pass
 * `qemu-img check`.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BlockGraph } from '../../src/block/block-graph.js';
import type { BlockNode } from '../../src/block/block-node.js';
import { createImage, openImage } from '../../src/block/image-file.js';
import { startBackup } from '../../src/backup/start-backup.js';
import type { BackupSyncMode } from '../../src/backup/backup-job.js';
import { SeededRandom } from '../helpers/random.js';
import { qemuImgCheck, qemuImgCompare } from '../helpers/tools.js';

export type SourceKind = 'raw' | 'qcow2' | 'qcow2-backing';

export interface ScenarioChoice {
  sync?: BackupSyncMode;
  source?: SourceKind;
}

export interface ScenarioResult {
  seed: number;
  description: string;
  /** Empty when the scenario held; otherwise what went wrong. */
  failures: string[];
  cowCopies: number;
  guestOps: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;

/** Run one scenario in `dir` (which must be empty and private to this run). */
export async function runPointInTimeScenario(seed: number, dir: string, choice: ScenarioChoice = {}): Promise<ScenarioResult> {
  const random = new SeededRandom(seed);
  const sync = choice.sync ?? random.pick<BackupSyncMode>(['full', 'top', 'none']);
  const sourceKind = choice.source ?? random.pick<SourceKind>(['raw', 'qcow2', 'qcow2-backing']);
  const size = random.pick([4, 8, 12]) * MiB + random.pick([0, 0, 64 * KiB, 512]);
  const speed = random.pick([0, 0, 0, 32 * MiB, 64 * MiB]);
  const maxWorkers = random.int(1, 16);
  const maxChunk = random.pick([64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB]);
  const writers = random.int(1, 4);
  const writebackInterval = random.pick([64 * KiB, 1 * MiB, undefined]);
  const description = `seed=${seed} sync=${sync} source=${sourceKind} size=${size} speed=${speed} workers=${maxWorkers} chunk=${maxChunk} writers=${writers} writeback=${writebackInterval ?? 'default'}`;
  const failures: string[] = [];
  const graph = new BlockGraph();
  let guestOps = 0;
  let cowCopies = 0;
  try {
    const { source, backingPath, sourceFormat } = await makeSource(graph, dir, sourceKind, size, random);
    const pointInTime = new Uint8Array(size);
    await source.read(0, pointInTime);
    const referencePath = join(dir, 'reference.raw');
    await writeFile(referencePath, pointInTime);

    const targetPath = join(dir, 'target.qcow2');
    const { target, targetFormat, zeroInitialized } = await makeTarget(graph, targetPath, sync, sourceKind, sourceFormat, source, backingPath, size, random);
    const job = startBackup({ source, target, sync, speed, maxWorkers, maxChunk, writebackInterval, targetZeroInitialized: zeroInitialized, jobId: 'backup0' });

    let stop = false;
    const writerTasks = Array.from({ length: writers }, (_, index) =>
      guestWriter(source, new SeededRandom(seed * 31 + index), () => stop).then((ops) => (guestOps += ops)),
    );
    if (sync === 'none') {
      // Let the writers change the source, then read the live target image while they still run.
      await new Promise((resolve) => setTimeout(resolve, random.int(5, 60)));
      const seen = new Uint8Array(size);
      await target.read(0, seen);
      const mismatch = firstDifference(seen, pointInTime);
      if (mismatch >= 0) failures.push(`live target differs from the point in time at offset ${mismatch}`);
      stop = true;
      await Promise.all(writerTasks);
      job.cancel();
      const result = await job.done;
      if (result.status !== 'cancelled') failures.push(`sync=none job ended ${result.status}, expected cancelled`);
    } else {
      const result = await job.done;
      stop = true;
      await Promise.all(writerTasks);
      if (result.status !== 'completed') failures.push(`job ended ${result.status}: ${result.error ?? ''}`);
    }
    cowCopies = job.cowStats.copies;
    await graph.closeAll();

    if (sync !== 'none') {
      const same = await qemuImgCompare(referencePath, targetPath, 'raw', targetFormat);
      if (!same) failures.push('qemu-img compare: target differs from the point-in-time reference');
    } else {
      // After cancel the fleecing target must still read as the point in time? No: its backing
      // (the source) has moved on. Only the live read above counts; check the image's health.
    }
    if (targetFormat === 'qcow2') {
      const check = await qemuImgCheck(targetPath);
      if (check.code !== 0) failures.push(`qemu-img check of target: exit ${check.code}: ${check.raw.trim()}`);
    }
    if (sourceFormat === 'qcow2') {
      const check = await qemuImgCheck(join(dir, 'source.qcow2'));
      if (check.code !== 0) failures.push(`qemu-img check of source: exit ${check.code}: ${check.raw.trim()}`);
    }
  } catch (error) {
    failures.push(`exception: ${error instanceof Error ? error.stack ?? error.message : String(error)}`);
  } finally {
    await graph.closeAll().catch(() => undefined);
  }
  return { seed, description, failures, cowCopies, guestOps };
}

async function makeSource(
  graph: BlockGraph,
  dir: string,
  kind: SourceKind,
  size: number,
  random: SeededRandom,
): Promise<{ source: BlockNode; backingPath?: string; sourceFormat: string }> {
  if (kind === 'raw') {
    const path = join(dir, 'source.raw');
    await createImage(path, 'raw', size);
    const source = await openImage(path, { graph, format: 'raw', nodeName: 'source' });
    await fillRandomly(source, random);
    return { source, sourceFormat: 'raw' };
  }
  let backingPath: string | undefined;
  const options: Record<string, string | number> = { cluster_size: random.pick([4096, 65536]) };
  if (kind === 'qcow2-backing') {
    backingPath = join(dir, 'base.qcow2');
    await createImage(backingPath, 'qcow2', size);
    const base = await openImage(backingPath, { graph, format: 'qcow2', nodeName: 'base-writer' });
    await fillRandomly(base, random);
    await graph.remove('base-writer');
    options.backing_file = backingPath;
    options.backing_fmt = 'qcow2';
  }
  const path = join(dir, 'source.qcow2');
  await createImage(path, 'qcow2', size, options);
  const source = await openImage(path, { graph, format: 'qcow2', nodeName: 'source' });
  await fillRandomly(source, random);
  return { source, backingPath, sourceFormat: 'qcow2' };
}

async function makeTarget(
  graph: BlockGraph,
  targetPath: string,
  sync: BackupSyncMode,
  sourceKind: SourceKind,
  sourceFormat: string,
  source: BlockNode,
  backingPath: string | undefined,
  size: number,
  random: SeededRandom,
): Promise<{ target: BlockNode; targetFormat: string; zeroInitialized: boolean }> {
  if (sync === 'none') {
    // Fleecing: a qcow2 overlay whose backing is the live source node.
    await createImage(targetPath, 'qcow2', size);
    const target = await openImage(targetPath, { graph, format: 'qcow2', nodeName: 'target', extra: { backing: source.nodeName } });
    return { target, targetFormat: 'qcow2', zeroInitialized: false };
  }
  if (sync === 'top' && sourceKind === 'qcow2-backing') {
    await createImage(targetPath, 'qcow2', size, { backing_file: backingPath!, backing_fmt: 'qcow2' });
    const target = await openImage(targetPath, { graph, format: 'qcow2', nodeName: 'target' });
    return { target, targetFormat: 'qcow2', zeroInitialized: false };
  }
  const targetFormat = sourceFormat === 'raw' && random.chance(0.5) ? 'raw' : 'qcow2';
  await createImage(targetPath, targetFormat, size);
  const target = await openImage(targetPath, { graph, format: targetFormat, nodeName: 'target' });
  // Sometimes pretend not to know the target is zeroed, so explicit zero writes are exercised.
  return { target, targetFormat, zeroInitialized: random.chance(0.5) };
}

/** Random initial content: data extents, zero extents and untouched (unallocated) areas. */
async function fillRandomly(node: BlockNode, random: SeededRandom): Promise<void> {
  const extents = random.int(4, 24);
  for (let i = 0; i < extents; i++) {
    const bytes = random.int(1, 1024 * 1024);
    const offset = random.int(0, node.length - bytes);
    if (random.chance(0.2)) await node.writeZeroes(offset, bytes);
    else await node.write(offset, random.bytes(bytes));
  }
}

/** A guest: random writes, writeZeroes and discards until told to stop (or a cap). Returns the op count. */
async function guestWriter(node: BlockNode, random: SeededRandom, stopped: () => boolean): Promise<number> {
  let ops = 0;
  while (!stopped() && ops < 400) {
    const bytes = random.pick([random.int(512, 8192), random.int(1, 256 * 1024), random.int(512, 4 * 1024 * 1024)]);
    const offset = random.int(0, node.length - Math.min(bytes, node.length));
    const length = Math.min(bytes, node.length - offset);
    const kind = random.int(0, 9);
    if (kind < 7) await node.write(offset, random.bytes(length));
    else if (kind < 9) await node.writeZeroes(offset, length);
    else await node.discard(offset, length);
    ops++;
    if (random.chance(0.3)) await new Promise((resolve) => setImmediate(resolve));
  }
  return ops;
}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length);
  const chunk = 64 * 1024;
  for (let offset = 0; offset < length; offset += chunk) {
    const end = Math.min(length, offset + chunk);
    if (Buffer.compare(a.subarray(offset, end), b.subarray(offset, end)) !== 0) {
      for (let i = offset; i < end; i++) if (a[i] !== b[i]) return i;
    }
  }
  return a.length === b.length ? -1 : length;
}
