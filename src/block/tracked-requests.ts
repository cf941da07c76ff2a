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
  readonly serialising: boolean;
  /**
   * For range locks: requests carrying the same token are not blocked by
   * this serialising request (they are the lock holder's own I/O).
   */
  readonly lockToken?: symbol;
  /** Resolves when the request has finished (successfully or not). */
  readonly finished: Promise<void>;
}

/** A registered request; the caller ends it exactly once. */
export interface ActiveRequest extends TrackedRequest {
  /** Mark the request finished and wake whoever waits for it. Idempotent. */
  end(): void;
}

/**
 * One request in flight. The `finished` promise is made only when somebody
 * waits: nearly every request ends without anyone having looked.
 */
class InFlightRequest implements ActiveRequest {
  private done = false;
  private finishedPromise: Promise<void> | undefined;
  private resolveFinished: (() => void) | undefined;

  constructor(
    private readonly onEnd: (request: InFlightRequest) => void,
    readonly offset: number,
    readonly endOffset: number,
    readonly isWrite: boolean,
    readonly serialising: boolean,
    readonly lockToken: symbol | undefined,
  ) {}

  get finished(): Promise<void> {
    if (this.done) return Promise.resolve();
    this.finishedPromise ??= new Promise<void>((resolve) => (this.resolveFinished = resolve));
    return this.finishedPromise;
  }

  end(): void {
    if (this.done) return;
    this.done = true;
    this.onEnd(this);
    this.resolveFinished?.();
  }
}

export class TrackedRequests {
  private readonly inFlight = new Set<InFlightRequest>();
  /** How many of inFlight are serialising: while none is, plain requests never wait. */
  private serialisingInFlight = 0;
  private readonly release = (request: InFlightRequest): void => {
    if (this.inFlight.delete(request) && request.serialising) this.serialisingInFlight--;
  };

  /** Number of requests in flight. */
  get size(): number {
    return this.inFlight.size;
  }

  /**
   * Register a request over [offset, offset + bytes). If it overlaps a
   * serialising request, or `serialising` is true and it overlaps anything,
   * this waits until those requests have finished. A request
   * whose `lockToken` equals a serialising request's token is not blocked by it. The caller must call
   * `end()` on the returned request exactly once. When nothing blocks it,
   * the request is registered before this returns (the common case costs no
   * promise).
   */
  begin(offset: number, bytes: number, isWrite: boolean, serialising = false, lockToken?: symbol): ActiveRequest | Promise<ActiveRequest> {
    const request = new InFlightRequest(this.release, offset, offset + bytes, isWrite, serialising, lockToken);
    if (!this.findBlocker(request)) {
      this.add(request);
      return request;
    }
    return this.beginWhenUnblocked(request);
  }

  private async beginWhenUnblocked(request: InFlightRequest): Promise<ActiveRequest> {
    for (;;) {
      const blocker = this.findBlocker(request);
      if (!blocker) break;
      await blocker.finished;
    }
    this.add(request);
    return request;
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

  /** Resolves when every write in flight now has finished; later requests are not waited for. */
  async writesSettled(): Promise<void> {
    await Promise.all([...this.inFlight].filter((request) => request.isWrite).map((request) => request.finished));
  }

  /** Wait until nothing is in flight. */
  async drain(): Promise<void> {
    while (this.inFlight.size > 0) {
      await Promise.all([...this.inFlight].map((request) => request.finished));
    }
  }

  private add(request: InFlightRequest): void {
    this.inFlight.add(request);
    if (request.serialising) this.serialisingInFlight++;
  }

  private findBlocker(request: TrackedRequest): TrackedRequest | undefined {
    if (!request.serialising && this.serialisingInFlight === 0) return undefined;
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
