/**
 * qcow2 images built by qemu-img and qemu-io, one per read feature: cluster
 * sizes, refcount widths, compat levels, zero clusters, compressed
 * clusters, backing chains, preallocation, lazy refcounts, extended L2
 * entries, internal snapshots. Each builder returns the top image's path.
 */
import { join } from 'node:path';
import { SeededRandom } from '../../helpers/random.js';
import { runOk } from '../../helpers/tools.js';
import { createImage } from '../../../src/block/image-file.js';
import { writeRaw } from './qcow2-test-kit.js';

const MiB = 1024 * 1024;

/** A set of random pattern files for `qemu-io write -s FILE`. */
export async function patternFiles(dir: string, seed: number, count = 4, bytes = 4 * MiB): Promise<string[]> {
  const random = new SeededRandom(seed);
  const files: string[] = [];
  for (let index = 0; index < count; index++) {
    const path = join(dir, `pattern-${seed}-${index}.bin`);
    await writeRaw(path, random.bytes(bytes));
    files.push(path);
  }
  return files;
}

export async function qemuImg(...args: string[]): Promise<void> {
  await runOk('qemu-img', args);
}

/** Run qemu-io commands on an image (format given, so backing chains are followed as written). */
export async function qemuIo(image: string, commands: string[], format = 'qcow2'): Promise<void> {
  const args = ['-f', format];
  for (const command of commands) args.push('-c', command);
  await runOk('qemu-io', [...args, image]);
}

/**
 * A mixed workload of qemu-io commands: random data at unaligned offsets,
 * zero writes with and without unmap, discards, all within `size`.
 */
export function mixedCommands(random: SeededRandom, patterns: string[], size: number, clusterSize: number, count: number): string[] {
  const commands: string[] = [];
  for (let index = 0; index < count; index++) {
    const bytes = random.int(1, Math.min(size / 4, 6 * clusterSize));
    const offset = random.int(0, size - bytes);
    const roll = random.int(0, 9);
    if (roll < 6) commands.push(`write -q -s ${random.pick(patterns)} ${offset} ${bytes}`);
    else if (roll < 8) {
      // zero writes must be sector aligned in qemu-io
      const start = offset - (offset % 512);
      const length = Math.max(512, bytes - (bytes % 512));
      commands.push(`write -q -z${roll === 7 ? ' -u' : ''} ${start} ${Math.min(length, size - start)}`);
    } else {
      const start = offset - (offset % 512);
      const length = Math.max(512, bytes - (bytes % 512));
      commands.push(`discard -q ${start} ${Math.min(length, size - start)}`);
    }
  }
  return commands;
}

export interface ImageCase {
  readonly name: string;
  /** Build the image in dir; returns the path of the image to open. */
  build(dir: string): Promise<string>;
}

function simpleCase(name: string, size: number, options: string, seed: number, ops = 40): ImageCase {
  return {
    name,
    async build(dir) {
      const image = join(dir, 'image.qcow2');
      await qemuImg('create', '-q', '-f', 'qcow2', '-o', options, image, String(size));
      const clusterSize = Number(/cluster_size=(\d+)/.exec(options)?.[1] ?? 65536);
      const random = new SeededRandom(seed);
      await qemuIo(image, mixedCommands(random, await patternFiles(dir, seed), size, clusterSize, ops));
      return image;
    },
  };
}

export const IMAGE_CASES: readonly ImageCase[] = [
  simpleCase('compat 1.1, 64 KiB clusters', 8 * MiB, 'compat=1.1,cluster_size=65536', 11),
  simpleCase('compat 0.10, 64 KiB clusters', 8 * MiB, 'compat=0.10,cluster_size=65536', 12),
  simpleCase('512 B clusters, refcount_bits=2', 2 * MiB, 'cluster_size=512,refcount_bits=2', 13),
  simpleCase('4 KiB clusters, refcount_bits=1', 4 * MiB, 'cluster_size=4096,refcount_bits=1', 14),
  simpleCase('16 KiB clusters, refcount_bits=4', 4 * MiB, 'cluster_size=16384,refcount_bits=4', 15),
  simpleCase('8 KiB clusters, refcount_bits=8', 4 * MiB, 'cluster_size=8192,refcount_bits=8', 16),
  simpleCase('128 KiB clusters, refcount_bits=32', 8 * MiB, 'cluster_size=131072,refcount_bits=32', 17),
  simpleCase('2 MiB clusters, refcount_bits=64', 16 * MiB, 'cluster_size=2097152,refcount_bits=64', 18, 20),
  simpleCase('lazy refcounts', 8 * MiB, 'lazy_refcounts=on,cluster_size=65536', 19),
  simpleCase('preallocation=metadata', 4 * MiB, 'preallocation=metadata,cluster_size=65536', 20),
  simpleCase('preallocation=falloc', 4 * MiB, 'preallocation=falloc,cluster_size=65536', 21),
  simpleCase('preallocation=full', 4 * MiB, 'preallocation=full,cluster_size=4096', 22),
  simpleCase('extended L2 entries, 64 KiB clusters', 8 * MiB, 'extended_l2=on,cluster_size=65536', 23),
  simpleCase('extended L2 entries, 2 MiB clusters', 16 * MiB, 'extended_l2=on,cluster_size=2097152', 24, 20),
  {
    name: 'compressed clusters (qemu-img convert -c), then partly overwritten',
    async build(dir) {
      const random = new SeededRandom(31);
      const raw = join(dir, 'source.raw');
      const content = new Uint8Array(6 * MiB);
      for (let offset = 0; offset < content.length; offset += 8192) {
        const kind = random.int(0, 3);
        if (kind === 0) content.set(random.bytes(8192), offset);
        else if (kind === 1) content.fill(random.int(1, 255), offset, offset + 8192);
        else if (kind === 2) for (let i = 0; i < 8192; i++) content[offset + i] = (i * 7 + offset) & 0xff;
      }
      await writeRaw(raw, content);
      const image = join(dir, 'image.qcow2');
      await qemuImg('convert', '-q', '-c', '-f', 'raw', '-O', 'qcow2', '-o', 'cluster_size=4096', raw, image);
      await qemuIo(image, mixedCommands(random, await patternFiles(dir, 31), content.length, 4096, 15));
      return image;
    },
  },
  {
    name: 'compressed clusters written by qemu-io write -c (64 KiB, v2)',
    async build(dir) {
      const image = join(dir, 'image.qcow2');
      await qemuImg('create', '-q', '-f', 'qcow2', '-o', 'compat=0.10', image, String(4 * MiB));
      const patterns = await patternFiles(dir, 32);
      const commands: string[] = [];
      for (let cluster = 0; cluster < 64; cluster += 3) commands.push(`write -q -c -P ${cluster + 1} ${cluster * 65536} 65536`);
      commands.push(`write -q -c -s ${patterns[0]} ${5 * 65536} 65536`);
      commands.push(`write -q -s ${patterns[1]} ${3 * 65536 + 1000} 5000`);
      await qemuIo(image, commands);
      return image;
    },
  },
  {
    name: 'internal snapshots, active layer diverged',
    async build(dir) {
      const image = join(dir, 'image.qcow2');
      const random = new SeededRandom(41);
      const patterns = await patternFiles(dir, 41);
      await qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=16384', image, String(4 * MiB));
      await qemuIo(image, mixedCommands(random, patterns, 4 * MiB, 16384, 30));
      await qemuImg('snapshot', '-c', 's1', image);
      await qemuIo(image, mixedCommands(random, patterns, 4 * MiB, 16384, 30));
      await qemuImg('snapshot', '-c', 's2', image);
      await qemuIo(image, mixedCommands(random, patterns, 4 * MiB, 16384, 20));
      return image;
    },
  },
  {
    name: 'backing chain: raw base (probed) <- qcow2 mid (backing_fmt) <- qcow2 top, shorter backing',
    async build(dir) {
      const random = new SeededRandom(51);
      const patterns = await patternFiles(dir, 51);
      await writeRaw(join(dir, 'base.raw'), random.bytes(3 * MiB + 512));
      const mid = join(dir, 'mid.qcow2');
      await qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=65536', '-b', 'base.raw', '-F', 'raw', mid, String(5 * MiB));
      await qemuIo(mid, mixedCommands(random, patterns, 5 * MiB, 65536, 25));
      const top = join(dir, 'top.qcow2');
      // No backing format in top's header: the reader must probe mid (qcow2).
      await createImage(top, 'qcow2', 8 * MiB, { cluster_size: 4096, backing_file: 'mid.qcow2' });
      await qemuIo(top, mixedCommands(random, patterns, 8 * MiB, 4096, 40));
      return top;
    },
  },
  {
    name: 'backing chain: qcow2 base with zero clusters under a v2 overlay',
    async build(dir) {
      const random = new SeededRandom(52);
      const patterns = await patternFiles(dir, 52);
      const base = join(dir, 'base.qcow2');
      await qemuImg('create', '-q', '-f', 'qcow2', base, String(4 * MiB));
      await qemuIo(base, [`write -q -s ${patterns[0]} 0 ${4 * MiB}`, `write -q -z 65536 131072`, `write -q -z -u ${MiB} ${MiB}`]);
      const top = join(dir, 'top.qcow2');
      await qemuImg('create', '-q', '-f', 'qcow2', '-o', 'compat=0.10', '-b', base, '-F', 'qcow2', top, String(4 * MiB));
      await qemuIo(top, mixedCommands(random, patterns, 4 * MiB, 65536, 25));
      return top;
    },
  },
  {
    name: 'extended L2 entries over a backing file (unallocated subclusters read through)',
    async build(dir) {
      const random = new SeededRandom(53);
      const patterns = await patternFiles(dir, 53);
      await writeRaw(join(dir, 'base.raw'), random.bytes(4 * MiB));
      const top = join(dir, 'top.qcow2');
      await qemuImg('create', '-q', '-f', 'qcow2', '-o', 'extended_l2=on,cluster_size=65536', '-b', 'base.raw', '-F', 'raw', top, String(4 * MiB));
      await qemuIo(top, mixedCommands(random, patterns, 4 * MiB, 65536, 40));
      return top;
    },
  },
];
