/**
 * A pool of reusable byte buffers in power-of-two size classes, so that
 * READ replies do not allocate (and page-fault in) fresh memory for every
 * request. A buffer goes back to the pool only when its last user is done
 * with it (for a reply: when the socket has taken the bytes).
 */

/** Smallest pooled size class; smaller requests use plain allocations. */
const MIN_CLASS = 64 * 1024;

/** Reusable buffers by size class; not thread-shared (one event loop). */
export class BufferPool {
  private readonly free = new Map<number, Buffer[]>();
  private pooledBytes = 0;

  /** `maxPooledBytes`: idle bytes kept at most; buffers released beyond it are dropped. */
  constructor(private readonly maxPooledBytes: number) {}

  /** A buffer of exactly `bytes` bytes (a view of a pooled block). Its contents are unspecified. */
  acquire(bytes: number): Buffer {
    if (bytes < MIN_CLASS) return Buffer.allocUnsafe(bytes);
    const size = sizeClass(bytes);
    const block = this.free.get(size)?.pop();
    if (block) {
      this.pooledBytes -= size;
      return block.subarray(0, bytes);
    }
    return Buffer.allocUnsafeSlow(size).subarray(0, bytes);
  }

  /** Give back a buffer from `acquire`; the caller must not touch it afterwards. */
  release(buffer: Buffer): void {
    if (buffer.length < MIN_CLASS) return;
    const block = Buffer.from(buffer.buffer, buffer.byteOffset, buffer.buffer.byteLength - buffer.byteOffset);
    const size = block.length;
    if (size !== sizeClass(size) || this.pooledBytes + size > this.maxPooledBytes) return;
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    list.push(block);
    this.pooledBytes += size;
  }

  /** Idle bytes held by the pool. */
  get idleBytes(): number {
    return this.pooledBytes;
  }
}

function sizeClass(bytes: number): number {
  let size = MIN_CLASS;
  while (size < bytes) size *= 2;
  return size;
}
