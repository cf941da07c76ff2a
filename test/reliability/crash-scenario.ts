/**
 * One crash, replayable from its seed. A child process (crash-child.ts)
 * serves a qcow2 source over NBD and backs it up to a qcow2 target; an NBD
 * client writes with FLUSH and FUA meanwhile (one connection per writer; a
 * FLUSH covers every connection, as multi-conn promises), and the child is killed with
 * SIGKILL at a random moment (writes, write-zeroes and trims). Then:
 *  - `qemu-img check` finds no corruption in source or target (leaks are
 *    allowed and counted);
 *  - every write acknowledged before an acknowledged FLUSH (or acknowledged
 *    with FUA) reads back from the source, unless a later write to the same
 *    bytes may have replaced it (DurableLedger);
 *  - the source reopens read-write and keeps working (write, read back,
 *    close, check).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BlockGraph } from '../../src/block/block-graph.js';
import { createImage, openImage } from '../../src/block/image-file.js';
import { NbdClient } from '../../src/nbd/client.js';
import { SeededRandom } from '../helpers/random.js';
import { qemuImgCheck } from '../helpers/tools.js';
import { DurableLedger } from './durable-ledger.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const CHILD = fileURLToPath(new URL('./crash-child.js', import.meta.url));

export interface CrashResult {
  readonly seed: number;
  readonly description: string;
  /** Empty when the crash left everything as promised. */
  readonly failures: string[];
  readonly leaks: number;
  readonly durableWrites: number;
}

/** Run one crash in `dir` (empty, private to this run). */
export async function runCrash(seed: number, dir: string): Promise<CrashResult> {
  const random = new SeededRandom(seed);
  const size = random.pick([4, 8]) * MiB;
  const clusterSize = random.pick([512, 4096, 65536]);
  const targetClusterSize = random.pick([4096, 65536]);
  const killAfterMs = random.int(5, 250);
  const writers = random.int(1, 4);
  const speed = random.pick([4, 16, 64]) * MiB;
  const description = `seed=${seed} size=${size} cluster=${clusterSize} target-cluster=${targetClusterSize} kill-after=${killAfterMs}ms writers=${writers} speed=${speed}`;
  const failures: string[] = [];
  const sourcePath = join(dir, 'source.qcow2');
  const targetPath = join(dir, 'target.qcow2');
  const socketPath = join(dir, 'nbd.sock');
  let leaks = 0;
  let durableWrites = 0;
  let child: ChildProcess | undefined;
  try {
    await createImage(sourcePath, 'qcow2', size, { cluster_size: clusterSize });
    await createImage(targetPath, 'qcow2', size, { cluster_size: targetClusterSize });
    const initial = new Uint8Array(size);
    {
      const graph = new BlockGraph();
      const node = await openImage(sourcePath, { graph, format: 'qcow2' });
      for (let i = 0; i < 6; i++) {
        const bytes = random.int(1, 512 * KiB);
        const offset = random.int(0, size - bytes);
        const data = random.bytes(bytes);
        await node.write(offset, data);
        initial.set(data, offset);
      }
      await graph.closeAll();
    }
    const ledger = new DurableLedger(initial);

    child = spawn(process.execPath, [CHILD, sourcePath, targetPath, socketPath, String(speed)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let childErr = '';
    child.stderr!.on('data', (chunk: Buffer) => (childErr += chunk.toString()));
    await waitForLine(child, 'ready', () => childErr);

    const killed = new Promise<void>((resolve) => child!.once('exit', () => resolve()));
    // Each writer has its own connection: the export announces multi-conn, so a FLUSH on one
    // connection must cover the writes acknowledged on all of them (the ledger assumes so).
    const clients = await Promise.all(
      Array.from({ length: writers }, () => NbdClient.connect({ type: 'unix', path: socketPath }, { exportName: 'disk' })),
    );
    let alive = true;
    const killTimer = setTimeout(() => {
      alive = false;
      child!.kill('SIGKILL');
    }, killAfterMs);
    const writerTasks = Array.from({ length: writers }, (_, index) => {
      const regionBytes = size / writers;
      return nbdWriter(clients[index]!, ledger, new SeededRandom(seed * 104729 + index), index * regionBytes, regionBytes, () => alive);
    });
    await Promise.allSettled(writerTasks);
    clearTimeout(killTimer);
    if (alive) {
      alive = false;
      child.kill('SIGKILL');
    }
    await killed;
    for (const client of clients) client.close();
    durableWrites = ledger.durableCount;

    for (const path of [sourcePath, targetPath]) {
      const check = await qemuImgCheck(path);
      leaks += check.leaks;
      if (check.corruptions > 0 || check.checkErrors > 0 || (check.code !== 0 && check.code !== 3)) {
        failures.push(`qemu-img check ${path} after the kill: exit ${check.code}: ${check.raw.trim()}`);
      }
    }

    const graph = new BlockGraph();
    try {
      const reopened = await openImage(sourcePath, { graph, format: 'qcow2', nodeName: 'reopened' });
      const now = new Uint8Array(size);
      await reopened.read(0, now);
      const lost = ledger.firstLostByte(now);
      if (lost >= 0) failures.push(`a flushed or FUA write is lost at offset ${lost} (${ledger.describe(lost, now[lost]!)})`);
      const probe = random.bytes(random.int(1, 256 * KiB));
      const at = random.int(0, size - probe.length);
      await reopened.write(at, probe);
      await reopened.flush();
      const back = new Uint8Array(probe.length);
      await reopened.read(at, back);
      if (Buffer.compare(back, probe) !== 0) failures.push(`reopened source does not read back a new write at ${at}`);
    } finally {
      await graph.closeAll();
    }
    const after = await qemuImgCheck(sourcePath);
    if (after.corruptions > 0 || after.checkErrors > 0 || (after.code !== 0 && after.code !== 3)) {
      failures.push(`qemu-img check of the source after reuse: exit ${after.code}: ${after.raw.trim()}`);
    }
  } catch (error) {
    failures.push(`exception: ${error instanceof Error ? error.stack ?? error.message : String(error)}`);
  } finally {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  return { seed, description, failures, leaks, durableWrites };
}

/** Resolve when the child prints `line`; reject if it exits first. */
function waitForLine(child: ChildProcess, line: string, stderr: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      if (out.split('\n').includes(line)) {
        child.stdout!.off('data', onData);
        child.off('exit', onExit);
        resolve();
      }
    };
    const onExit = (code: number | null) => reject(new Error(`crash child exited (${code}) before '${line}': ${stderr()}`));
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
  });
}

/**
 * Writes in its own region over NBD until the server dies: some with FUA,
 * and a FLUSH now and then; every outcome goes into the ledger.
 */
async function nbdWriter(
  client: NbdClient,
  ledger: DurableLedger,
  random: SeededRandom,
  regionStart: number,
  regionBytes: number,
  alive: () => boolean,
): Promise<void> {
  while (alive()) {
    const bytes = random.pick([random.int(1, 4 * KiB), random.int(1, 64 * KiB), random.int(512, 256 * KiB)]);
    const offset = regionStart + random.int(0, regionBytes - bytes);
    const fua = random.chance(0.2);
    const kind = random.int(0, 9);
    // Mostly data writes; some write-zeroes (data of zeroes) and trims (content unknown afterwards).
    const data = kind < 8 ? random.bytes(bytes) : kind === 8 ? new Uint8Array(bytes) : null;
    const id = ledger.sent(offset, data, bytes);
    try {
      if (kind < 8) await client.write(offset, data!, { fua });
      else if (kind === 8) await client.writeZeroes(offset, bytes, { fua, noHole: random.chance(0.5) });
      else await client.trim(offset, bytes, { fua });
    } catch {
      return;
    }
    ledger.acknowledged(id, fua);
    if (random.chance(0.25)) {
      const covered = ledger.flushSent();
      try {
        await client.flush();
      } catch {
        return;
      }
      ledger.flushAcknowledged(covered);
    }
  }
}
