/**
 * A free list of equally sized I/O buffers, so the copy loop does not
 * allocate one buffer per chunk. Buffers are handed out whole; callers use
 * subarray views. Single-threaded: no locking needed.
 */
export class BufferPool {
  private readonly free: Uint8Array[] = [];

  constructor(
    /** Size of every buffer in bytes. */
    readonly bufferSize: number,
    /** At most this many idle buffers are kept. */
    private readonly maxIdle: number,
  ) {}

  /** A buffer of bufferSize bytes with unspecified content. */
  acquire(): Uint8Array {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.bufferSize);
  }

  /** Give a buffer obtained from acquire() back. */
  release(buffer: Uint8Array): void {
    if (this.free.length < this.maxIdle && buffer.length === this.bufferSize) this.free.push(buffer);
  }
}
