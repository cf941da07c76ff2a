/**
 * Fuzz target (a): the qcow2 open, read and write paths fed mutated images
 * (ours, and QEMU's with compressed clusters, snapshots, bitmaps and
 * extended L2 entries).
 * Each case opens a mutated image from memory (guarded-memory-file.ts, so
 * every file access outside the image is caught), in a graph that refuses
 * backing files named inside images; then reads, asks block status, writes
 * and flushes a little, and closes. A case fails on any error that is not a
 * LivebackupError, on a file access outside the image (a violation, or an
 * OUT_OF_BOUNDS error a lower node had to raise), or on a hang.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlockGraph } from '../../../src/block/block-graph.js';
import { createImage, openImage } from '../../../src/block/image-file.js';
import { HeaderField } from '../../../src/block/qcow2/qcow2-format.js';
import { LivebackupError } from '../../../src/errors.js';
import { SeededRandom } from '../../helpers/random.js';
import { run, skipUnlessTools } from '../../helpers/tools.js';
import { GuardedMemoryFiles } from './guarded-memory-file.js';
import type { FuzzTarget, FuzzSeed } from './fuzz-target.js';

const KiB = 1024;
const CASE_TIMEOUT_MS = 10_000;
const IMAGE_NODE = 'fuzz-image';

/** Small valid images of several shapes, made with our own qcow2 writer. */
export async function qcow2Seeds(): Promise<FuzzSeed[]> {
  const dir = await mkdtemp(join(tmpdir(), 'livebackup-fuzz-seeds-'));
  const shapes: Array<Record<string, string | number>> = [
    { cluster_size: 4096 },
    { cluster_size: 512, refcount_bits: 1 },
    { cluster_size: 65536, lazy_refcounts: 'on' },
    { cluster_size: 4096, refcount_bits: 64, backing_file: 'base.qcow2', backing_fmt: 'qcow2' },
    { cluster_size: 4096, compat: '0.10' },
  ];
  const seeds: FuzzSeed[] = [];
  try {
    for (const [index, options] of shapes.entries()) {
      const path = join(dir, `seed${index}.qcow2`);
      await createImage(path, 'qcow2', 256 * KiB, options);
      const graph = new BlockGraph();
      const node = await openImage(path, { graph, format: 'qcow2', extra: { backing: null } });
      const random = new SeededRandom(index + 1);
      for (let i = 0; i < 4; i++) {
        const bytes = random.int(1, 24 * KiB);
        const offset = random.int(0, node.length - bytes);
        if (i === 3) await node.writeZeroes(offset, bytes);
        else await node.write(offset, random.bytes(bytes));
      }
      await graph.closeAll();
      const bytes = new Uint8Array(await readFile(path));
      seeds.push({ name: `qcow2-${index}`, bytes, hints: { fields: qcow2Fields(bytes), maxLength: bytes.length + 64 * KiB } });
    }
    for (const seed of await qemuMadeSeeds(dir)) seeds.push(seed);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return seeds;
}

/**
 * Images only QEMU writes here: compressed clusters, internal snapshots, a
 * persistent bitmap, extended L2 entries. Skipped when qemu-img is missing.
 */
async function qemuMadeSeeds(dir: string): Promise<FuzzSeed[]> {
  if (skipUnlessTools('qemu-img', 'qemu-io') !== false) return [];
  const recipes: Array<{ name: string; create: string[]; io: string[]; after?: string[][] }> = [
    { name: 'compressed', create: ['-o', 'cluster_size=4096'], io: ['write -c -P 0x11 0 16k', 'write -P 0x22 64k 8k'] },
    { name: 'snapshot', create: ['-o', 'cluster_size=4096'], io: ['write -P 0x33 0 8k'], after: [['snapshot', '-c', 'snap1'], ['snapshot', '-c', 'snap2']] },
    { name: 'bitmap', create: ['-o', 'cluster_size=4096'], io: ['write -P 0x44 4k 8k'], after: [['bitmap', '--add', 'bitmap0']] },
    { name: 'extended-l2', create: ['-o', 'cluster_size=16384,extended_l2=on'], io: ['write -P 0x55 1k 3k', 'write -z 32k 4k'] },
  ];
  const seeds: FuzzSeed[] = [];
  for (const recipe of recipes) {
    const path = join(dir, `${recipe.name}.qcow2`);
    const created = await run('qemu-img', ['create', '-q', '-f', 'qcow2', ...recipe.create, path, '256K']);
    if (created.code !== 0) continue;
    await run('qemu-io', ['-f', 'qcow2', ...recipe.io.flatMap((command) => ['-c', command]), path]);
    for (const step of recipe.after ?? []) {
      const [verb, ...rest] = step;
      await run('qemu-img', [verb!, ...rest, path]);
    }
    const bytes = new Uint8Array(await readFile(path));
    seeds.push({ name: `qemu-${recipe.name}`, bytes, hints: { fields: qcow2Fields(bytes), maxLength: bytes.length + 64 * KiB } });
  }
  return seeds;
}

/** Header fields plus the L1 and refcount table entries of an image: where lengths and offsets live. */
function qcow2Fields(bytes: Uint8Array): { offset: number; width: 4 | 8 }[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const fields: { offset: number; width: 4 | 8 }[] = [];
  for (const [name, offset] of Object.entries(HeaderField)) {
    const width = ['backingFileOffset', 'size', 'l1TableOffset', 'refcountTableOffset', 'snapshotsOffset', 'incompatibleFeatures', 'compatibleFeatures', 'autoclearFeatures'].includes(name) ? 8 : 4;
    fields.push({ offset, width });
  }
  const clusterSize = 2 ** view.getUint32(HeaderField.clusterBits);
  const l1 = Number(view.getBigUint64(HeaderField.l1TableOffset));
  const l1Size = view.getUint32(HeaderField.l1Size);
  for (let i = 0; i < Math.min(l1Size, 16); i++) {
    fields.push({ offset: l1 + 8 * i, width: 8 });
    const l2 = Number(view.getBigUint64(l1 + 8 * i) & 0x00fffffffffffe00n);
    for (let j = 0; l2 > 0 && j < 32 && l2 + 8 * j + 8 <= bytes.length; j++) fields.push({ offset: l2 + 8 * j, width: 8 });
  }
  const reftable = Number(view.getBigUint64(HeaderField.refcountTableOffset));
  for (let i = 0; i < 4; i++) {
    fields.push({ offset: reftable + 8 * i, width: 8 });
    const block = Number(view.getBigUint64(reftable + 8 * i));
    if (block > 0 && block + 16 <= bytes.length) fields.push({ offset: block, width: 8 }, { offset: block + 8, width: 8 });
  }
  // Header extensions start right after the header; their type and length words are fields too.
  const headerLength = view.getUint32(HeaderField.version) >= 3 ? view.getUint32(HeaderField.headerLength) : 72;
  for (let at = headerLength; at + 8 <= Math.min(bytes.length, clusterSize); ) {
    fields.push({ offset: at, width: 4 }, { offset: at + 4, width: 4 });
    const type = view.getUint32(at);
    const length = view.getUint32(at + 4);
    if (type === 0) break;
    at += 8 + Math.ceil(length / 8) * 8;
  }
  return fields.filter((field) => field.offset + field.width <= bytes.length);
}

/** Run one mutated image; resolves with a failure text or undefined. */
async function runCase(bytes: Uint8Array, random: SeededRandom): Promise<string | undefined> {
  const key = GuardedMemoryFiles.put(bytes, { maxGrowth: 16 * 1024 * KiB });
  const graph = new BlockGraph({ allowBackingFromImage: false });
  const readOnly = random.chance(0.5);
  let failure: string | undefined;
  const note = (error: unknown, during: string) => {
    if (!(error instanceof LivebackupError)) failure ??= `${during}: not a LivebackupError: ${error instanceof Error ? error.stack : String(error)}`;
    else if ((error.code === 'OUT_OF_BOUNDS' || /^invalid request offset/.test(error.message)) && !error.message.includes(`'${IMAGE_NODE}'`)) {
      // The format node asked its file for bytes outside it (or at a nonsense offset); BlockNode refused.
      failure ??= `${during}: the image made a lower node refuse an out-of-range access: ${error.message}`;
    }
  };
  try {
    const options: Record<string, unknown> = { driver: 'qcow2', 'node-name': IMAGE_NODE, 'read-only': readOnly, discard: 'unmap', file: { driver: 'fuzz-memory', key } };
    if (random.chance(0.5)) options.backing = null;
    if (random.chance(0.3)) options['l2-cache-size'] = random.pick([0, 4096, 65536]);
    let node;
    try {
      node = await graph.open(options);
    } catch (error) {
      note(error, 'open');
      return failure;
    }
    const length = node.length;
    const probes = random.int(1, 6);
    for (let i = 0; i < probes && length > 0; i++) {
      const bytesToRead = Math.min(length, random.pick([512, 4 * KiB, 64 * KiB, 256 * KiB]));
      const offset = random.chance(0.3) ? 0 : random.int(0, length - bytesToRead);
      try {
        await node.read(offset, new Uint8Array(bytesToRead));
      } catch (error) {
        note(error, `read ${offset}+${bytesToRead}`);
      }
      try {
        await node.blockStatus(offset, bytesToRead);
      } catch (error) {
        note(error, `block status ${offset}+${bytesToRead}`);
      }
      if (!readOnly) {
        try {
          if (random.chance(0.7)) await node.write(offset, random.bytes(Math.min(bytesToRead, 8 * KiB)));
          else await node.writeZeroes(offset, bytesToRead, { mayUnmap: random.chance(0.5) });
        } catch (error) {
          note(error, `write ${offset}`);
        }
      }
    }
    if (!readOnly) {
      try {
        await node.flush();
      } catch (error) {
        note(error, 'flush');
      }
    }
  } finally {
    try {
      await graph.closeAll();
    } catch (error) {
      note(error, 'close');
    }
    const violations = GuardedMemoryFiles.violations(key);
    if (violations.length > 0) failure ??= `file access outside the image: ${violations.join('; ')}`;
    GuardedMemoryFiles.drop(key);
  }
  return failure;
}

export const qcow2FuzzTarget: FuzzTarget = {
  name: 'qcow2',
  seeds: qcow2Seeds,
  async run(bytes, random) {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve(`hang: no result within ${CASE_TIMEOUT_MS} ms`), CASE_TIMEOUT_MS);
    });
    try {
      return await Promise.race([runCase(bytes, random), timeout]);
    } finally {
      clearTimeout(timer);
    }
  },
};
