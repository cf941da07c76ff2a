/**
 * Exclusive locks on ranges of guest clusters. A qcow2 write-type request
 * holds the clusters it touches, so two requests never allocate, copy or
 * free the same cluster at the same time; requests on disjoint clusters
 * run in parallel.
 *
 * Guarded by the single JavaScript thread: the held set is only changed
 * synchronously.
 */
interface HeldRange {
  readonly first: number;
  readonly end: number;
  readonly released: Promise<void>;
}

export class RangeLocks {
  private readonly held = new Set<HeldRange>();

  /**
   * Wait until no held range overlaps clusters [first, end), then hold it.
   * Returns the release function, which must be called exactly once.
   */
  async acquire(first: number, end: number): Promise<() => void> {
    for (;;) {
      let blocker: HeldRange | undefined;
      for (const range of this.held) {
        if (range.first < end && first < range.end) {
          blocker = range;
          break;
        }
      }
      if (!blocker) break;
      await blocker.released;
    }
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const range: HeldRange = { first, end, released };
    this.held.add(range);
    return () => {
      if (this.held.delete(range)) release();
    };
  }
}
