/**
 * Random write/writeZeroes/discard workloads on qcow2 images, checked
 * against an in-memory reference, then verified by qemu-img check (no
 * leaks, no corruption) and qemu-img compare against a raw dump of the
 * reference. Overlapping operations run in issue order, disjoint ones
 * concurrently (up to 64 in flight).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '../../helpers/temp-dir.js';
import { SeededRandom } from '../../helpers/random.js';
import { qemuImgCheck, qemuImgCompare, runOk, skipUnlessTools } from '../../helpers/tools.js';
import { copyFile } from 'node:fs/promises';
import { createImage } from '../../../src/block/image-file.js';
import type { BlockNode } from '../../../src/block/block-node.js';
import { applyToReference, assertCleanCheck, assertSameBytes, openQcow2, readAll, writeRaw, type ReferenceOp } from './qcow2-test-kit.js';

const MiB = 1024 * 1024;

interface OracleCase {
  name: string;
  clusterSize: number;
  size: number;
  ops: number;
  seed: number;
  /** Largest operation in bytes. */
  maxOp: number;
  withBacking?: boolean;
  createdBy: 'livebackup' | 'qemu-img';
  extraCreateOptions?: Record<string, string | number | boolean>;
  /** Extra blockdev options of the qcow2 node (cache sizes). */
  openOptions?: Record<string, unknown>;
}

type Op = ReferenceOp;

function randomOp(random: SeededRandom, size: number, maxOp: number, clusterSize: number): Op {
  const roll = random.int(0, 99);
  let bytes: number;
  if (roll < 50) bytes = random.int(1, Math.min(maxOp, 4 * clusterSize));
  else if (roll < 85) bytes = random.int(1, Math.min(maxOp, 256 * 1024));
  else bytes = random.int(1, maxOp);
  bytes = Math.min(bytes, size);
  let offset = random.int(0, size - bytes);
  if (random.chance(0.3)) offset -= offset % clusterSize; // cluster aligned starts are common
  const kindRoll = random.int(0, 99);
  const kind = kindRoll < 55 ? 'write' : kindRoll < 75 ? 'zero' : kindRoll < 90 ? 'discard' : 'read';
  return { kind, offset, bytes, data: kind === 'write' ? random.bytes(bytes) : undefined };
}

/** Start an op; a read checks its result against the reference as it was when the read was issued. */
function issue(node: BlockNode, op: Op, reference: Uint8Array, what: string): Promise<void> {
  if (op.kind === 'read') {
    const expected = reference.slice(op.offset, op.offset + op.bytes);
    const buf = new Uint8Array(op.bytes);
    return node.read(op.offset, buf).then(() => assertSameBytes(buf, expected, `${what}: concurrent read [${op.offset}, +${op.bytes})`));
  }
  if (op.kind === 'write') return node.write(op.offset, op.data!);
  if (op.kind === 'zero') return node.writeZeroes(op.offset, op.bytes, { mayUnmap: true });
  return node.discard(op.offset, op.bytes);
}

async function runOracle(t: { after: (fn: () => unknown) => void }, spec: OracleCase): Promise<void> {
  const dir = await tempDir(t);
  const image = join(dir, 'image.qcow2');
  const reference = new Uint8Array(spec.size);
  const random = new SeededRandom(spec.seed);
  const formatOptions: Record<string, string | number | boolean> = { cluster_size: spec.clusterSize, ...spec.extraCreateOptions };
  if (spec.withBacking) {
    const base = join(dir, 'base.raw');
    // Backing shorter than the overlay: the tail must read as zeroes.
    const baseBytes = random.bytes(spec.size - 3 * spec.clusterSize - 512);
    reference.set(baseBytes);
    await writeRaw(base, baseBytes);
    formatOptions.backing_file = 'base.raw';
    formatOptions.backing_fmt = 'raw';
  }
  if (spec.createdBy === 'livebackup') {
    await createImage(image, 'qcow2', spec.size, formatOptions);
  } else {
    const options = Object.entries(formatOptions).map(([key, value]) => `${key}=${value}`).join(',');
    await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', options, image, String(spec.size)]);
  }
  const { graph, node } = await openQcow2(image, { extra: spec.openOptions });
  try {
    let inFlight: Array<{ op: Op; done: Promise<void> }> = [];
    for (let index = 0; index < spec.ops; index++) {
      const op = randomOp(random, spec.size, spec.maxOp, spec.clusterSize);
      const overlaps = inFlight.some(({ op: other }) => op.offset < other.offset + other.bytes && other.offset < op.offset + op.bytes);
      if (overlaps || inFlight.length >= 64) {
        await Promise.all(inFlight.map(({ done }) => done));
        inFlight = [];
      }
      applyToReference(reference, op, spec.clusterSize);
      inFlight.push({ op, done: issue(node, op, reference, `seed ${spec.seed} op ${index}`) });
      if (index % 97 === 96) {
        await Promise.all(inFlight.map(({ done }) => done));
        inFlight = [];
        if (random.chance(0.5)) {
          // Copy the file just before the k-th file write of a flush (no other request runs):
          // every earlier step of the flush is complete and the flush waits, so the copy is a
          // possible crash state. It may leak clusters but must never be corrupt.
          const crashCopy = join(dir, 'crash-copy.qcow2');
          let writesLeft = random.int(1, 8);
          let copied = false;
          const remove = node.file!.addBeforeWriteNotifier(async () => {
            if (--writesLeft !== 0) return;
            await copyFile(image, crashCopy);
            copied = true;
          });
          try {
            await node.flush();
          } finally {
            remove();
          }
          if (copied) {
            const check = await qemuImgCheck(crashCopy);
            assert.equal(check.corruptions, 0, `seed ${spec.seed}: crash copy after op ${index} is corrupt:\n${check.raw}`);
          }
        } else if (random.chance(0.5)) {
          await node.flush();
        }
        const bytes = random.int(1, Math.min(spec.size, 3 * spec.maxOp));
        const offset = random.int(0, spec.size - bytes);
        const piece = new Uint8Array(bytes);
        await node.read(offset, piece);
        assertSameBytes(piece, reference.subarray(offset, offset + bytes), `seed ${spec.seed}: read [${offset}, +${bytes}) after op ${index}`);
      }
    }
    await Promise.all(inFlight.map(({ done }) => done));
    assertSameBytes(await readAll(node), reference, `seed ${spec.seed}: full read before close`);
  } finally {
    await graph.closeAll();
  }
  await assertCleanCheck(image);
  const raw = join(dir, 'reference.raw');
  await writeRaw(raw, reference);
  assert.ok(await qemuImgCompare(image, raw, 'qcow2', 'raw'), `seed ${spec.seed}: qemu-img compare found a difference`);
  // Reopen with our driver: the flushed metadata reads back the same.
  const reopened = await openQcow2(image, { readOnly: true });
  try {
    assertSameBytes(await readAll(reopened.node), reference, `seed ${spec.seed}: full read after reopen`);
  } finally {
    await reopened.graph.closeAll();
  }
}

const CASES: OracleCase[] = [
  { name: '512 B clusters', clusterSize: 512, size: 6 * MiB, ops: 700, seed: 1001, maxOp: 1 * MiB, createdBy: 'livebackup' },
  { name: '4 KiB clusters, refcount_bits=1', clusterSize: 4096, size: 24 * MiB, ops: 700, seed: 1002, maxOp: 4 * MiB, createdBy: 'livebackup', extraCreateOptions: { refcount_bits: 1 } },
  { name: '64 KiB clusters (qemu-img created)', clusterSize: 65536, size: 64 * MiB, ops: 800, seed: 1003, maxOp: 8 * MiB, createdBy: 'qemu-img' },
  { name: '2 MiB clusters, refcount_bits=64', clusterSize: 2 * MiB, size: 64 * MiB, ops: 250, seed: 1004, maxOp: 8 * MiB, createdBy: 'livebackup', extraCreateOptions: { refcount_bits: 64 } },
  { name: '64 KiB clusters with a raw backing file', clusterSize: 65536, size: 32 * MiB, ops: 700, seed: 1005, maxOp: 4 * MiB, createdBy: 'livebackup', withBacking: true },
  {
    name: '512 B clusters, smallest caches (eviction and forced flushes)',
    clusterSize: 512,
    size: 4 * MiB,
    ops: 400,
    seed: 1007,
    maxOp: 512 * 1024,
    createdBy: 'livebackup',
    openOptions: { 'l2-cache-size': 0, 'refcount-cache-size': 0 },
  },
  { name: '4 KiB clusters, lazy refcounts', clusterSize: 4096, size: 16 * MiB, ops: 400, seed: 1006, maxOp: 2 * MiB, createdBy: 'qemu-img', extraCreateOptions: { lazy_refcounts: 'on' } },
];

for (const spec of CASES) {
  test(`random writes match the reference: ${spec.name} (seed ${spec.seed})`, { skip: skipUnlessTools('qemu-img') }, async (t) => {
    await runOracle(t, spec);
  });
}

test('concurrent writes into the same unallocated clusters allocate once and lose nothing', { skip: skipUnlessTools('qemu-img') }, async (t) => {
  const dir = await tempDir(t);
  const image = join(dir, 'race.qcow2');
  const clusterSize = 65536;
  await createImage(image, 'qcow2', 4 * MiB, { cluster_size: clusterSize });
  const reference = new Uint8Array(4 * MiB);
  const random = new SeededRandom(77);
  const { graph, node } = await openQcow2(image);
  try {
    for (let round = 0; round < 8; round++) {
      // 48 disjoint small writes, all inside two fresh clusters, issued at once.
      const base = round * 2 * clusterSize;
      const writes: Promise<void>[] = [];
      for (let piece = 0; piece < 48; piece++) {
        const offset = base + piece * 2730;
        const data = random.bytes(random.int(1, 2730));
        reference.set(data, offset);
        writes.push(node.write(offset, data));
      }
      await Promise.all(writes);
    }
    assertSameBytes(await readAll(node), reference, 'race content');
  } finally {
    await graph.closeAll();
  }
  await assertCleanCheck(image);
  const raw = join(dir, 'reference.raw');
  await writeRaw(raw, reference);
  assert.ok(await qemuImgCompare(image, raw, 'qcow2', 'raw'));
  const map = JSON.parse(await runOk('qemu-img', ['map', '--output=json', image])) as Array<{ data: boolean; length: number }>;
  const allocated = map.filter((entry) => entry.data).reduce((sum, entry) => sum + entry.length, 0);
  assert.equal(allocated, 16 * clusterSize, 'exactly the written clusters are allocated');
});
