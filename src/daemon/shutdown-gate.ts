/**
 * ShutdownGate: keeps shutdown from overtaking the operations that change
 * the daemon's state (startup options, QMP commands). An operation that
 * was let in runs to its end before shutdown tears anything down, so a
 * listener, node or job it creates is always seen and closed by shutdown;
 * once the gate is closed, new operations are refused.
 *
 *   const gate = new ShutdownGate();
 *   await gate.run(() => exports.startServer(address));   // INVALID_STATE once closing
 *   await gate.close();                                    // no new operations; the running ones settled
 */
import { LivebackupError } from '../errors.js';

export class ShutdownGate {
  private readonly running = new Set<Promise<unknown>>();
  private closing = false;

  /** True once close() was called. */
  get isClosing(): boolean {
    return this.closing;
  }

  /**
   * Run `operation` (its synchronous part runs at once) and resolve or
   * reject as it does. Refused with INVALID_STATE once close() was called.
   */
  run<T>(operation: () => T | Promise<T>): Promise<T> {
    if (this.closing) return Promise.reject(new LivebackupError('INVALID_STATE', 'The storage daemon is shutting down'));
    const result = (async () => operation())();
    this.running.add(result);
    const forget = () => {
      this.running.delete(result);
    };
    result.then(forget, forget);
    return result;
  }

  /** Refuse new operations from now on; resolves once every running one has settled (whatever its outcome). */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.allSettled([...this.running]);
  }
}
