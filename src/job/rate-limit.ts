/**
 * RateLimit: keeps a stream of work at a given number of bytes per second by
 * accounting bytes in time slices (100 ms by default, like QEMU's block job
 * rate limit). Within a slice, work proceeds without delay until the slice's
 * quota is used up; then the slice is stretched to cover all bytes
 * dispatched so far and the caller is told how long to wait until it ends.
 * Once the current slice has ended, accounting starts afresh.
 *
 * Pure bookkeeping: the caller supplies the clock (`now`, in milliseconds)
 * or gets performance.now(), and does the waiting itself.
 */
import { LivebackupError } from '../errors.js';
import { performance } from 'node:perf_hooks';

/** Length of one accounting slice in milliseconds. */
export const RATE_LIMIT_SLICE_MS = 100;

export class RateLimit {
  /** Length of one accounting slice, in milliseconds. */
  readonly sliceMs: number;
  private bytesPerSecond = 0;
  /** Bytes allowed per slice; 0 = unlimited. */
  private sliceQuota = 0;
  private sliceStart = 0;
  private sliceEnd = Number.NEGATIVE_INFINITY;
  private dispatched = 0;

  /** A limiter at `bytesPerSecond` (0 = unlimited); throws INVALID_ARGUMENT for a negative or non-integer speed. */
  constructor(bytesPerSecond: number, sliceMs: number = RATE_LIMIT_SLICE_MS) {
    if (!(sliceMs > 0)) throw new LivebackupError('INVALID_ARGUMENT', `RateLimit slice must be positive, got ${sliceMs}`);
    this.sliceMs = sliceMs;
    this.setSpeed(bytesPerSecond);
  }

  /** The current limit in bytes per second; 0 means unlimited. */
  get speed(): number {
    return this.bytesPerSecond;
  }

  /**
   * Change the limit; takes effect for the next delayFor call, keeping the
   * bytes already accounted in the current slice. Throws INVALID_ARGUMENT
   * ("Parameter 'speed' expects a non-negative value") for a negative or
   * non-integer value.
   */
  setSpeed(bytesPerSecond: number): void {
    if (!Number.isSafeInteger(bytesPerSecond) || bytesPerSecond < 0) {
      throw new LivebackupError('INVALID_ARGUMENT', "Parameter 'speed' expects a non-negative value");
    }
    this.bytesPerSecond = bytesPerSecond;
    this.sliceQuota = bytesPerSecond === 0 ? 0 : Math.max(1, (bytesPerSecond * this.sliceMs) / 1000);
  }

  /**
   * Account `bytes` (>= 0) of work done at time `now` and return how many
   * milliseconds the caller should wait before doing more: 0 while the
   * current slice's quota is not used up (or when unlimited). Calling with
   * 0 bytes asks for the remaining wait without accounting anything.
   */
  delayFor(bytes: number, now: number = performance.now()): number {
    if (this.sliceQuota === 0) return 0;
    if (this.sliceEnd < now) {
      this.sliceStart = now;
      this.sliceEnd = now + this.sliceMs;
      this.dispatched = 0;
    }
    this.dispatched += bytes;
    if (this.dispatched < this.sliceQuota) return 0;
    this.sliceEnd = this.sliceStart + (this.dispatched / this.sliceQuota) * this.sliceMs;
    return Math.max(0, this.sliceEnd - now);
  }
}
