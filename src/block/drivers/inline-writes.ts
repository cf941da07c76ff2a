/**
 * When the `file` driver writes a small buffer synchronously on the event
 * loop instead of through libuv's thread pool.
 *
 * A buffered write of a few KiB into the page cache takes microseconds.
 * Handing it to the thread pool costs far more: waking a worker thread (on
 * a virtual machine an inter-processor interrupt), then the completion's
 * trip back to the event loop. For small-write loads, such as 4 KiB guest
 * writes over NBD, that overhead is most of the time spent per request.
 *
 * But a write can block in the kernel (dirty-page throttling, a slow or
 * failing disk). A write that took longer than SLOW_WRITE_MS sends the
 * following writes to the thread pool for BACKOFF_MS, so the event loop is
 * never held up for long by a disk that cannot keep up.
 */

/** Largest write done inline. */
export const INLINE_WRITE_MAX_BYTES = 64 * 1024;
/** An inline write slower than this means the kernel made it wait. */
const SLOW_WRITE_MS = 2;
/** How long writes go to the thread pool after a slow inline write. */
const BACKOFF_MS = 1000;

export class InlineWritePolicy {
  private threadPoolUntil = 0;

  /** True when a write of `bytes` bytes should be done synchronously now. */
  shouldInline(bytes: number): boolean {
    return bytes <= INLINE_WRITE_MAX_BYTES && (this.threadPoolUntil === 0 || performance.now() >= this.threadPoolUntil);
  }

  /** Tell the policy an inline write that started at `startedAt` (performance.now()) has returned. */
  finished(startedAt: number): void {
    const now = performance.now();
    this.threadPoolUntil = now - startedAt > SLOW_WRITE_MS ? now + BACKOFF_MS : 0;
  }
}
