/**
 * Coalesces the replies completed during one turn of the event loop into a
 * single corked socket write (one writev), instead of one system call per
 * reply. Each reply's buffers stay contiguous and in order, so chunks of
 * different replies never interleave. Replies are flushed in the check
 * phase (setImmediate), right after the I/O completions that produced them.
 */
import type { Socket } from 'node:net';

/** Called once the socket has taken a reply's bytes, or at once when the socket is gone. */
export type ReplySent = () => void;

export class ReplyBatcher {
  private readonly socket: Socket;
  /** Buffers waiting for the next flush, replies back to back. */
  private queuedBuffers: Uint8Array[] = [];
  /** For each queued reply that wants to know: index of its last buffer in queuedBuffers, and its callback. */
  private queuedCallbacks: Array<{ readonly lastBuffer: number; readonly sent: ReplySent }> = [];
  private flushScheduled = false;
  private readonly flushBound = (): void => this.flush();

  constructor(socket: Socket) {
    this.socket = socket;
  }

  /**
   * Queue one reply (its buffers are sent back to back, unchanged until
   * `sent` runs). `sent` runs once the socket has taken the bytes, or
   * without sending when the socket is already gone.
   */
  send(buffers: readonly Uint8Array[], sent?: ReplySent): void {
    if (this.socket.destroyed || !this.socket.writable) {
      sent?.();
      return;
    }
    for (const buffer of buffers) this.queuedBuffers.push(buffer);
    if (sent) this.queuedCallbacks.push({ lastBuffer: this.queuedBuffers.length - 1, sent });
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushBound);
    }
  }

  /** Hand every queued reply to the socket now, as one corked batch. */
  flush(): void {
    this.flushScheduled = false;
    const buffers = this.queuedBuffers;
    const callbacks = this.queuedCallbacks;
    if (buffers.length === 0) return;
    this.queuedBuffers = [];
    this.queuedCallbacks = [];
    if (this.socket.destroyed || !this.socket.writable) {
      for (const callback of callbacks) callback.sent();
      return;
    }
    this.socket.cork();
    let next = 0;
    for (let i = 0; i < buffers.length; i++) {
      const callback = callbacks[next];
      if (callback && callback.lastBuffer === i) {
        next++;
        this.socket.write(buffers[i]!, () => callback.sent());
      } else {
        this.socket.write(buffers[i]!);
      }
    }
    this.socket.uncork();
  }
}
