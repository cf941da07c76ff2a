/**
 * Bench images: sparse files holding extents of seeded pseudo-random data
 * (AES-128-CTR keystream from the seed: fast, incompressible and the same
 * on every run), as raw files or converted to qcow2 by qemu-img.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { open, rm, stat } from 'node:fs/promises';
import { runTool } from './processes.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;
export const TiB = 1024 * GiB;

/** Where the data lies in an image: `count` extents of `extentBytes`, the first at 0, spaced evenly. */
export interface ImageLayout {
  readonly virtualBytes: number;
  readonly extentBytes: number;
  readonly count: number;
}

/** Byte offsets of the layout's data extents (spread evenly from offset 0). */
export function extentOffsets(layout: ImageLayout): number[] {
  const { virtualBytes, extentBytes, count } = layout;
  if (count * extentBytes > virtualBytes) throw new RangeError(`${count} extents of ${extentBytes} do not fit in ${virtualBytes} bytes`);
  const stride = count > 0 ? Math.floor(virtualBytes / count / extentBytes) * extentBytes : 0;
  return Array.from({ length: count }, (_, index) => index * stride);
}

/** Bytes of data in the layout. */
export function dataBytes(layout: ImageLayout): number {
  return layout.count * layout.extentBytes;
}

/** A deterministic pseudo-random byte stream; `fill` continues where the last call stopped. */
export class SeededStream {
  private readonly cipher;
  private readonly zeroes: Buffer;

  constructor(seed: number, chunkBytes = 8 * MiB) {
    const key = createHash('sha256').update(`livebackup-bench-${seed}`).digest();
    this.cipher = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
    this.zeroes = Buffer.alloc(chunkBytes);
  }

  /** The next `zeroes.length` bytes of the stream (a fresh buffer). */
  next(): Buffer {
    return this.cipher.update(this.zeroes);
  }
}

/**
 * Write a sparse raw file of the layout: truncated to the virtual size, with
 * seeded random data in each extent. Overwrites `filename`.
 */
export async function writeRawImage(filename: string, layout: ImageLayout, seed: number): Promise<void> {
  const stream = new SeededStream(seed);
  const handle = await open(filename, 'w');
  try {
    await handle.truncate(layout.virtualBytes);
    for (const start of extentOffsets(layout)) {
      for (let offset = start; offset < start + layout.extentBytes; ) {
        const chunk = stream.next();
        const bytes = Math.min(chunk.length, start + layout.extentBytes - offset);
        await handle.write(chunk, 0, bytes, offset);
        offset += bytes;
      }
    }
    await handle.datasync();
  } finally {
    await handle.close();
  }
}

/** Convert a raw file to qcow2 (64 KiB clusters, holes stay unallocated). */
export async function convertToQcow2(rawFile: string, qcow2File: string): Promise<void> {
  await rm(qcow2File, { force: true });
  await runTool(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', '-t', 'writeback', rawFile, qcow2File]);
}

/** Bytes a file occupies on disk. */
export async function allocatedBytes(filename: string): Promise<number> {
  return (await stat(filename)).blocks * 512;
}
