/**
 * One fault storm, replayable from its seed: blkdebug nodes sit over or
 * under the source and target images; while a backup job runs (sync full,
 * top or none; on-source-error and on-target-error from report, ignore,
 * stop, enospc) and guests write to the source, a storm adds and removes
 * EIO or ENOSPC rules at random offsets. Then, with the rules gone:
 *  - every BLOCK_JOB_ERROR names the operation and the action its policy
 *    gives for the injected errno; a stop leaves the job paused with
 *    io-status failed or nospace until resume; a report ends the job failed
 *    with the errno's text;
 *  - a completed job's target equals the point in time (qemu-img compare);
 *    a sync=none target read live (during the storm and after) equals it too;
 *  - every resolved guest write reads back (GuestLedger);
 *  - every qcow2 image passes `qemu-img check` (leaks allowed);
 *  - no promise rejection goes unhandled.
 * Some storms also cancel the job midway (perhaps while it is stopped):
 * it must then end cancelled (or completed, if it got there first).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BlockGraph } from '../../src/block/block-graph.js';
import type { BlockNode } from '../../src/block/block-node.js';
import type { BlkdebugDriver, BlkdebugRule } from '../../src/block/drivers/blkdebug.js';
import { createImage, openImage } from '../../src/block/image-file.js';
import { startBackup } from '../../src/backup/start-backup.js';
import type { BackupSyncMode } from '../../src/backup/backup-job.js';
import type { BlockdevOnError, JobEvent } from '../../src/job/job.js';
import { errorActionFor } from '../../src/job/error-policy.js';
import { LivebackupError } from '../../src/errors.js';
import { SeededRandom } from '../helpers/random.js';
import { qemuImgCheck, run } from '../helpers/tools.js';
import { GuestLedger } from './guest-ledger.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const POLICIES: readonly BlockdevOnError[] = ['report', 'ignore', 'stop', 'enospc'];
const ERRNO_TEXT: Record<string, string> = { EIO: 'Input/output error', ENOSPC: 'No space left on device' };

/** Where a blkdebug node is inserted: over the format node, or between it and its file. */
export type DebugPlacement = 'over-format' | 'under-format';

export interface FaultStormChoice {
  sync?: BackupSyncMode;
  onSourceError?: BlockdevOnError;
  onTargetError?: BlockdevOnError;
  /**
   * Let persistent (not `once`) rules hit a side whose policy is `ignore`.
   * Off by default: the job then retries without yielding to the event
   * loop, so the process spins (a known defect, see SECURITY.md).
   */
  persistentIgnoredFaults?: boolean;
}

export interface FaultStormResult {
  readonly seed: number;
  readonly description: string;
  /** Empty when every rule held. */
  readonly failures: string[];
  readonly injected: number;
  readonly errorEvents: number;
  readonly stops: number;
  readonly jobStatus: string;
}

interface Side {
  readonly node: BlockNode;
  readonly debug: BlkdebugDriver;
  readonly errno: 'EIO' | 'ENOSPC';
  readonly path: string;
  readonly format: 'qcow2' | 'raw';
}

/** Run one storm in `dir` (empty, private to this run). */
export async function runFaultStorm(seed: number, dir: string, choice: FaultStormChoice = {}): Promise<FaultStormResult> {
  const random = new SeededRandom(seed);
  const sync = choice.sync ?? random.pick<BackupSyncMode>(['full', 'top', 'none']);
  const onSourceError = choice.onSourceError ?? random.pick(POLICIES);
  const onTargetError = choice.onTargetError ?? random.pick(POLICIES);
  const size = random.pick([2, 3, 4]) * MiB + random.pick([0, 64 * KiB]);
  const sourceFormat = sync === 'top' ? 'qcow2' : random.pick<'qcow2' | 'raw'>(['qcow2', 'qcow2', 'raw']);
  // sync=top needs the source's backing link visible, so its blkdebug goes under the format node;
  // a fleecing target (sync=none) must keep the source in its chain, so its blkdebug goes under too.
  // A qcow2 under blkdebug is created with preallocation=metadata, so its file never grows: when an
  // injected error fails a growing write, the blkdebug node keeps the grown length but its file does
  // not, and later writes there are refused (a known defect). An image with a backing file cannot be
  // preallocated (its clusters would hide the backing), so sync=top and a fleecing target (sync=none)
  // keep blkdebug over their format nodes.
  const sourcePlacement: DebugPlacement = sourceFormat === 'raw' ? 'under-format' : sync === 'top' ? 'over-format' : random.pick<DebugPlacement>(['over-format', 'under-format']);
  const targetPlacement: DebugPlacement = sync !== 'full' ? 'over-format' : random.pick<DebugPlacement>(['over-format', 'under-format']);
  const sourceErrno = random.pick<'EIO' | 'ENOSPC'>(['EIO', 'ENOSPC']);
  const targetErrno = random.pick<'EIO' | 'ENOSPC'>(['EIO', 'ENOSPC']);
  const writers = random.int(1, 3);
  const maxWorkers = random.int(1, 8);
  const maxChunk = random.pick([64 * KiB, 256 * KiB, 1 * MiB]);
  const stormSteps = random.int(5, 40);
  // Sometimes the user cancels the job in the middle of the storm (perhaps while it is stopped on an error).
  const cancelAtStep = sync !== 'none' && random.chance(0.15) ? random.int(0, stormSteps - 1) : -1;
  // A rate limit stretches the job over the storm (a 4 MiB disk at 16 MiB/s takes about 250 ms).
  const speed = random.pick([0, 0, 16 * MiB, 64 * MiB]);
  const description =
    `seed=${seed} sync=${sync} on-source-error=${onSourceError} on-target-error=${onTargetError} size=${size} ` +
    `source=${sourceFormat}/${sourcePlacement}/${sourceErrno} target=${targetPlacement}/${targetErrno} writers=${writers} speed=${speed} workers=${maxWorkers} chunk=${maxChunk} storm=${stormSteps}${cancelAtStep >= 0 ? ` cancel-at=${cancelAtStep}` : ''}`;
  if (process.env.STORM_TRACE) process.stderr.write(`${description}\n`);
  const failures: string[] = [];
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  const graph = new BlockGraph();
  let injected = 0;
  let errorEvents = 0;
  let stops = 0;
  let jobStatus = 'not started';
  try {
    let backingPath: string | undefined;
    if (sync === 'top') {
      backingPath = join(dir, 'base.qcow2');
      await createImage(backingPath, 'qcow2', size);
      const base = await openImage(backingPath, { graph, format: 'qcow2', nodeName: 'base-writer' });
      await fillRandomly(base, random);
      await graph.remove('base-writer');
    }
    const sourcePath = join(dir, `source.${sourceFormat}`);
    await createImage(sourcePath, sourceFormat, size, createOptions(sourceFormat, sourcePlacement, backingPath));
    const source = await openSide(graph, 'source', sourcePath, sourceFormat, sourcePlacement, sourceErrno, {});
    await fillRandomly(source.node, random);

    const pointInTime = new Uint8Array(size);
    await source.node.read(0, pointInTime);
    const referencePath = join(dir, 'reference.raw');
    await writeFile(referencePath, pointInTime);
    const ledger = new GuestLedger(pointInTime);

    const targetPath = join(dir, 'target.qcow2');
    let targetExtra: Record<string, unknown> = {};
    await createImage(targetPath, 'qcow2', size, createOptions('qcow2', targetPlacement, sync === 'top' ? backingPath : undefined));
    if (sync === 'none') targetExtra = { backing: source.node.nodeName };
    const target = await openSide(graph, 'target', targetPath, 'qcow2', targetPlacement, targetErrno, targetExtra);

    const events: JobEvent[] = [];
    const job = startBackup({
      source: source.node,
      target: target.node,
      sync,
      onSourceError,
      onTargetError,
      maxWorkers,
      maxChunk,
      speed,
      targetZeroInitialized: sync === 'full',
      jobId: 'storm0',
      onEvent: (event) => {
        events.push(event);
        checkEvent(event);
      },
    });

    let pendingErrorAction: string | undefined;
    let stopped = 0;
    let storming = true;
    function checkEvent(event: JobEvent): void {
      if (event.event === 'BLOCK_JOB_ERROR') {
        const side = event.data.operation === 'read' ? source : target;
        const policy = event.data.operation === 'read' ? onSourceError : onTargetError;
        const expected = errorActionFor(policy, new LivebackupError('IO_ERROR', 'injected', { errno: side.errno }));
        if (event.data.action !== expected) {
          failures.push(`BLOCK_JOB_ERROR ${event.data.operation}: action ${event.data.action}, policy ${policy} with ${side.errno} wants ${expected}`);
        }
        pendingErrorAction = event.data.action;
        if (event.data.action === 'stop') stopped++;
      } else if (event.event === 'JOB_STATUS_CHANGE' && event.data.status === 'paused' && pendingErrorAction === 'stop') {
        const side = events.filter((e) => e.event === 'BLOCK_JOB_ERROR').at(-1)!;
        const errno = (side as Extract<JobEvent, { event: 'BLOCK_JOB_ERROR' }>).data.operation === 'read' ? source.errno : target.errno;
        const wanted = errno === 'ENOSPC' ? 'nospace' : 'failed';
        if (job.ioStatus !== wanted) failures.push(`stopped on ${errno}: io-status ${job.ioStatus}, expected ${wanted}`);
        pendingErrorAction = undefined;
        // Resume after a while; the storm may still be raging.
        setTimeout(() => resumeIfStopped(), random.int(0, 3));
      }
    }

    const sides = [source, target];
    let cancelRequested = false;
    /** Resume a job stopped on an error; a job that moved on meanwhile (cancelled, resumed) is left alone. */
    function resumeIfStopped(): void {
      if (job.status !== 'paused' || job.ioStatus === 'ok' || cancelRequested) return;
      job.resume();
    }
    // Sometimes the storm is already raging when the job starts.
    for (const side of sides) if (random.chance(0.3)) addRandomRule(side);
    const tracer = process.env.STORM_TRACE
      ? setInterval(() => process.stderr.write(`status=${job.status} io=${job.ioStatus} rules=${JSON.stringify(sides.map((x) => x.debug.rules))} injected=${source.debug.injected}/${target.debug.injected} storming=${storming} events=${events.length}\n`), 500)
      : undefined;
    function addRandomRule(side: Side): void {
      const rule: BlkdebugRule = {
        event: random.pick(['read_aio', 'read_aio', 'write_aio', 'write_aio', 'flush_to_disk']),
        errno: side.errno === 'ENOSPC' ? 28 : 5,
        once: random.chance(0.6),
      };
      const policy = side === source ? onSourceError : onTargetError;
      if (policy === 'ignore' && !choice.persistentIgnoredFaults) rule.once = true;
      if (rule.event !== 'flush_to_disk' && random.chance(0.8)) rule.sector = random.int(0, Math.floor(size / 512) - 1);
      side.debug.rules.push(rule);
    }

    const storm = (async () => {
      for (let step = 0; step < stormSteps && !jobEnded(job.status); step++) {
        await new Promise((resolve) => setTimeout(resolve, random.int(0, 4)));
        if (step === cancelAtStep && !jobEnded(job.status) && job.status !== 'pending' && job.status !== 'waiting') {
          cancelRequested = true;
          job.cancel();
        }
        const side = random.pick(sides);
        if (side.debug.rules.length > 0 && random.chance(0.35)) {
          side.debug.rules.splice(random.int(0, side.debug.rules.length - 1), 1);
          continue;
        }
        addRandomRule(side);
      }
      storming = false;
      for (const side of sides) side.debug.rules.length = 0;
      // A job stopped on an error while the storm ended must be resumed to finish.
      resumeIfStopped();
    })();

    const writerTasks = Array.from({ length: writers }, (_, index) => {
      const regionBytes = Math.floor(size / writers / 512) * 512;
      const regionStart = index * regionBytes;
      return guestWriter(source.node, ledger, new SeededRandom(seed * 7919 + index), regionStart, regionBytes, () => !storming || jobEnded(job.status));
    });

    if (sync === 'none') {
      // Read the fleecing target while the storm rages (a read may fail on an injected error)
      // and once more after it: every read that succeeds must see the point in time.
      const checkFleece = async (when: string) => {
        const seen = new Uint8Array(size);
        try {
          await target.node.read(0, seen);
        } catch (error) {
          if (!(error instanceof LivebackupError)) throw error;
          return;
        }
        const at = firstDifference(seen, pointInTime);
        if (at >= 0) failures.push(`fleecing target read ${when} differs from the point in time at offset ${at}`);
      };
      await new Promise((resolve) => setTimeout(resolve, random.int(0, 20)));
      await checkFleece('during the storm');
      await storm;
      await Promise.all(writerTasks);
      await checkFleece('after the storm');
      if (!jobEnded(job.status)) job.cancel();
    } else {
      await storm;
      await Promise.all(writerTasks);
    }
    const result = await job.done.finally(() => clearInterval(tracer));
    jobStatus = result.status;
    const errors = events.filter((e): e is Extract<JobEvent, { event: 'BLOCK_JOB_ERROR' }> => e.event === 'BLOCK_JOB_ERROR');
    const reported = errors.filter((e) => e.data.action === 'report');
    if (cancelRequested && reported.length === 0) {
      if (result.status !== 'cancelled' && result.status !== 'completed') failures.push(`cancelled job ended ${result.status} (${result.error ?? ''})`);
    } else if (reported.length > 0) {
      const last = reported.at(-1)!;
      const errno = last.data.operation === 'read' ? source.errno : target.errno;
      // A cancel may win the race with the error.
      const cancelWon = cancelRequested && result.status === 'cancelled';
      if (!cancelWon && result.status !== 'failed') failures.push(`an error was reported but the job ended ${result.status}`);
      else if (!cancelWon && result.error !== ERRNO_TEXT[errno]) failures.push(`job failed with '${result.error}', expected '${ERRNO_TEXT[errno]}'`);
      if (reported.length > 1) failures.push(`${reported.length} errors reported; the first must end the job`);
    } else if (sync === 'none') {
      if (result.status !== 'cancelled') failures.push(`sync=none job ended ${result.status}, expected cancelled`);
    } else if (result.status !== 'completed') {
      failures.push(`job ended ${result.status} (${result.error ?? ''}) without a reported error`);
    }
    if (stopped > 0 && result.status === 'completed' && job.ioStatus !== 'ok') failures.push(`io-status ${job.ioStatus} after completion`);
    injected = source.debug.injected + target.debug.injected;
    errorEvents = errors.length;
    stops = stopped;

    // Every resolved guest write must read back.
    const now = new Uint8Array(size);
    await source.node.read(0, now);
    const lost = ledger.firstLostByte(now);
    if (lost >= 0) failures.push(`a resolved guest write is lost at offset ${lost}`);

    await graph.closeAll();
    if (result.status === 'completed') {
      const compare = await run('qemu-img', ['compare', '-U', '-f', 'raw', '-F', 'qcow2', referencePath, targetPath]);
      if (compare.code !== 0) failures.push(`qemu-img compare: completed target differs from the point-in-time reference: ${(compare.stdout + compare.stderr).trim()}`);
    }
    for (const side of sides) {
      if (side.format !== 'qcow2') continue;
      const check = await qemuImgCheck(side.path);
      if (check.corruptions > 0 || check.checkErrors > 0 || (check.code !== 0 && check.code !== 3)) {
        failures.push(`qemu-img check ${side.path}: exit ${check.code}: ${check.raw.trim()}`);
      }
    }
  } catch (error) {
    failures.push(`exception: ${error instanceof Error ? error.stack ?? error.message : String(error)}`);
  } finally {
    await graph.closeAll().catch(() => undefined);
    await new Promise((resolve) => setImmediate(resolve));
    process.off('unhandledRejection', onUnhandled);
  }
  for (const reason of unhandled) failures.push(`unhandled rejection: ${reason instanceof Error ? reason.stack : String(reason)}`);
  return { seed, description, failures, injected, errorEvents, stops, jobStatus };
}

/** Format options: a backing file, or metadata preallocation when blkdebug sits under the format. */
function createOptions(format: string, placement: DebugPlacement, backingPath: string | undefined): Record<string, string> {
  if (backingPath) return { backing_file: backingPath, backing_fmt: 'qcow2' };
  return format === 'qcow2' && placement === 'under-format' ? { preallocation: 'metadata' } : {};
}

function jobEnded(status: string): boolean {
  return status === 'concluded' || status === 'null' || status === 'aborting';
}

/** Open one image with a blkdebug node over or under its format node. */
async function openSide(
  graph: BlockGraph,
  name: string,
  path: string,
  format: 'qcow2' | 'raw',
  placement: DebugPlacement,
  errno: 'EIO' | 'ENOSPC',
  extra: Record<string, unknown>,
): Promise<Side> {
  const file = { driver: 'file', filename: path };
  const debugName = `${name}-debug`;
  const node =
    placement === 'under-format'
      ? await graph.open({ driver: format, 'node-name': name, discard: 'unmap', file: { driver: 'blkdebug', 'node-name': debugName, image: file }, ...extra })
      : await graph.open({ driver: 'blkdebug', 'node-name': name, image: { driver: format, 'node-name': `${name}-format`, discard: 'unmap', file, ...extra } });
  const debug = graph.require(placement === 'under-format' ? debugName : name).driver as BlkdebugDriver;
  return { node, debug, errno, path, format };
}

async function fillRandomly(node: BlockNode, random: SeededRandom): Promise<void> {
  const extents = random.int(3, 12);
  for (let i = 0; i < extents; i++) {
    const bytes = random.int(1, 512 * KiB);
    const offset = random.int(0, node.length - bytes);
    if (random.chance(0.2)) await node.writeZeroes(offset, bytes);
    else await node.write(offset, random.bytes(bytes));
  }
}

/** A guest writing and zeroing inside its own region, recording every outcome in the ledger. */
async function guestWriter(
  node: BlockNode,
  ledger: GuestLedger,
  random: SeededRandom,
  regionStart: number,
  regionBytes: number,
  stopped: () => boolean,
): Promise<void> {
  for (let ops = 0; ops < 300 && !stopped(); ops++) {
    const bytes = Math.min(regionBytes, random.pick([random.int(1, 8 * KiB), random.int(1, 128 * KiB), random.int(512, 512 * KiB)]));
    const offset = regionStart + random.int(0, regionBytes - bytes);
    try {
      if (random.chance(0.8)) {
        const data = random.bytes(bytes);
        await node.write(offset, data);
        ledger.wrote(offset, data);
      } else {
        await node.writeZeroes(offset, bytes);
        ledger.zeroed(offset, bytes);
      }
    } catch (error) {
      if (!(error instanceof LivebackupError)) throw error;
      ledger.failed(offset, bytes);
    }
    if (random.chance(0.3)) await new Promise((resolve) => setTimeout(resolve, 0));
  }
}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length);
  for (let start = 0; start < length; start += 64 * KiB) {
    const end = Math.min(length, start + 64 * KiB);
    if (Buffer.compare(a.subarray(start, end), b.subarray(start, end)) === 0) continue;
    for (let i = start; i < end; i++) if (a[i] !== b[i]) return i;
  }
  return a.length === b.length ? -1 : length;
}
