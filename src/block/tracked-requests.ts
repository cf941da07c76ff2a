/**
 * The set of requests in flight on one node. A request can be marked
 * serialising (read-modify-write of an unaligned write): requests that
 * overlap a serialising one wait for it, and it waits for them.
 *
 * Guarded by the single JavaScript thread; every mutation is synchronous.
 */

export interface TrackedRequest {
  readonly offset: number;
  /** One past the last byte of the request. */
  readonly endOffset: number;
  readonly isWrite: boolean;
  /** True while this request must not overlap any other in-flight request. */
  serialising: boolean;
  /**
   * For range locks: requests carrying the same token are not blocked by
   * this serialising request (they are the lock holder's own I/O).
   */
  readonly lockToken?: symbol;
  /** Resolves when the request has finished (successfully or not). */
  readonly finished: Promise<void>;
}

interface MutableTrackedRequest extends TrackedRequest {
  resolveFinished(): void;
}

export class TrackedRequests {
  private readonly inFlight = new Set<MutableTrackedRequest>();

  /** Number of requests in flight. */
  get size(): number {
    return this.inFlight.size;
  }

  /**
   * Register a request over [offset, offset + bytes). If it overlaps a
   * serialising request, or `serialising` is true and it overlaps anything,
   * this waits until those requests have finished. A request
   * whose `lockToken` equals a serialising request's token is not blocked by it. The caller must call
   * `end()` on the returned request exactly once.
   */
  async begin(
    offset: number,
    bytes: number,
    isWrite: boolean,
    serialising = false,
    lockToken?: symbol,
  ): Promise<TrackedRequest & { end(): void }> {
    let resolveFinished!: () => void;
    const finished = new Promise<void>((resolve) => (resolveFinished = resolve));
    const request: MutableTrackedRequest = { offset, endOffset: offset + bytes, isWrite, serialising, lockToken, finished, resolveFinished };
    for (;;) {
      const blocker = this.findBlocker(request);
      if (!blocker) break;
      await blocker.finished;
    }
    this.inFlight.add(request);
    const end = (): void => {
      if (this.inFlight.delete(request)) request.resolveFinished();
    };
    return Object.assign(request, { end });
  }

  /** Wait until no in-flight request overlaps [offset, offset + bytes). */
  async waitForOverlapping(offset: number, bytes: number): Promise<void> {
    const probe = { offset, endOffset: offset + bytes };
    for (;;) {
      let blocker: TrackedRequest | undefined;
      for (const other of this.inFlight) {
        if (overlaps(probe, other)) {
          blocker = other;
          break;
        }
      }
      if (!blocker) return;
      await blocker.finished;
    }
  }

  /** Wait until nothing is in flight. */
  async drain(): Promise<void> {
    while (this.inFlight.size > 0) {
      await Promise.all([...this.inFlight].map((request) => request.finished));
    }
  }

  private findBlocker(request: TrackedRequest): TrackedRequest | undefined {
    for (const other of this.inFlight) {
      if (!overlaps(request, other)) continue;
      // A lock holder's own requests pass its lock (but still respect other serialising requests).
      if (other.serialising && other.lockToken !== undefined && other.lockToken === request.lockToken) continue;
      if (request.serialising || other.serialising) return other;
    }
    return undefined;
  }
}

function overlaps(a: { offset: number; endOffset: number }, b: { offset: number; endOffset: number }): boolean {
  return a.offset < b.endOffset && b.offset < a.endOffset;
}
