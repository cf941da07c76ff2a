/**
 * A first-come first-served asynchronous mutex. Guards state that is read
 * and modified across awaits (the qcow2 allocator, the metadata flusher).
 */
export class AsyncMutex {
  private tail: Promise<void> = Promise.resolve();

  /**
   * Run `critical` once every earlier holder has finished, and release the
   * mutex when it settles (fulfilled or rejected). Returns its result.
   */
  run<T>(critical: () => Promise<T>): Promise<T> {
    const result = this.tail.then(critical);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}
