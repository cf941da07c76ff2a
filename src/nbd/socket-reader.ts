/**
 * SocketReader: an incremental reader over a stream socket. Incoming chunks
 * are queued without copying; a caller asks for exactly N bytes (a header,
 * a payload), to fill a buffer it owns, or to skip N bytes. One request is
 * served at a time (the NBD connection and client each have one reading
 * loop). The socket is paused while enough unread data is queued, so a peer
 * that sends faster than we process cannot grow memory without bound.
 */
import type { Duplex } from 'node:stream';
import { LivebackupError } from '../errors.js';

/** Unread bytes above which the socket is paused when no reader is waiting for more. */
const HIGH_WATER = 4 * 1024 * 1024;

type Pending =
  | { kind: 'exact'; bytes: number; resolve: (buf: Buffer) => void; reject: (error: Error) => void }
  | { kind: 'into'; dest: Uint8Array; filled: number; resolve: () => void; reject: (error: Error) => void }
  | { kind: 'skip'; remaining: number; resolve: () => void; reject: (error: Error) => void };

export class SocketReader {
  private readonly chunks: Buffer[] = [];
  /** Offset of the first unread byte in chunks[0]. */
  private head = 0;
  private buffered = 0;
  private pending: Pending | undefined;
  private endError: Error | undefined;
  private paused = false;

  constructor(private readonly socket: Duplex) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd(new LivebackupError('PROTOCOL_ERROR', 'connection closed by peer')));
    socket.on('close', () => this.onEnd(new LivebackupError('PROTOCOL_ERROR', 'connection closed')));
    socket.on('error', (error: Error) => this.onEnd(new LivebackupError('IO_ERROR', `connection error: ${error.message}`, { cause: error })));
  }

  /** Bytes received and not yet consumed. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** True once the peer closed (or the socket failed) and every queued byte is consumed. */
  get isAtEnd(): boolean {
    return this.endError !== undefined && this.buffered === 0;
  }

  /**
   * Resolve with exactly `bytes` bytes (a view into the received chunk when
   * it holds them all, else one copy). Rejects with PROTOCOL_ERROR when the
   * connection ends first. Only one read may be outstanding.
   */
  read(bytes: number): Promise<Buffer> {
    return new Promise((resolve, reject) => this.start({ kind: 'exact', bytes, resolve, reject }));
  }

  /**
   * Synchronous fast path of `read`: exactly `bytes` bytes when they are
   * already queued and no read is outstanding, else undefined (nothing
   * consumed).
   */
  tryRead(bytes: number): Buffer | undefined {
    if (this.pending || this.buffered < bytes) return undefined;
    const out = this.take(bytes);
    this.flowControl();
    return out;
  }

  /**
   * Synchronous fast path of `readInto`: fills `dest` and returns true when
   * enough bytes are queued and no read is outstanding, else returns false
   * (nothing consumed).
   */
  tryReadInto(dest: Uint8Array): boolean {
    if (this.pending || this.buffered < dest.length) return false;
    this.copyOut(dest);
    this.flowControl();
    return true;
  }

  /** Fill all of `dest` with the next bytes, consuming them as they arrive. */
  readInto(dest: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => this.start({ kind: 'into', dest, filled: 0, resolve, reject }));
  }

  /** Discard the next `bytes` bytes as they arrive, without buffering them. */
  skip(bytes: number): Promise<void> {
    return new Promise((resolve, reject) => this.start({ kind: 'skip', remaining: bytes, resolve, reject }));
  }

  private start(pending: Pending): void {
    if (this.pending) {
      pending.reject(new LivebackupError('INVALID_STATE', 'SocketReader: a read is already outstanding'));
      return;
    }
    this.pending = pending;
    this.serve();
  }

  private onData(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    this.serve();
  }

  private onEnd(error: Error): void {
    this.endError ??= error;
    this.serve();
  }

  /** Satisfy the pending request as far as the queued bytes allow, then apply flow control. */
  private serve(): void {
    const pending = this.pending;
    if (pending) {
      switch (pending.kind) {
        case 'exact':
          if (this.buffered >= pending.bytes) {
            this.pending = undefined;
            pending.resolve(this.take(pending.bytes));
          }
          break;
        case 'into':
          while (pending.filled < pending.dest.length && this.buffered > 0) {
            pending.filled += this.copyOut(pending.dest.subarray(pending.filled));
          }
          if (pending.filled === pending.dest.length) {
            this.pending = undefined;
            pending.resolve();
          }
          break;
        case 'skip':
          pending.remaining -= this.drop(pending.remaining);
          if (pending.remaining === 0) {
            this.pending = undefined;
            pending.resolve();
          }
          break;
      }
      if (this.pending && this.endError) {
        this.pending = undefined;
        pending.reject(this.endError);
      }
    }
    this.flowControl();
  }

  private flowControl(): void {
    const wanted = this.pending?.kind === 'exact' ? this.pending.bytes : 0;
    const shouldPause = this.buffered >= HIGH_WATER && this.buffered >= wanted && this.pending?.kind !== 'into' && this.pending?.kind !== 'skip';
    if (shouldPause && !this.paused) {
      this.paused = true;
      this.socket.pause();
    } else if (!shouldPause && this.paused) {
      this.paused = false;
      this.socket.resume();
    }
  }

  /** Remove exactly `bytes` queued bytes (caller checked they are buffered). */
  private take(bytes: number): Buffer {
    const first = this.chunks[0];
    if (bytes === 0) return Buffer.alloc(0);
    if (first && first.length - this.head >= bytes) {
      const view = first.subarray(this.head, this.head + bytes);
      this.advance(bytes);
      return view;
    }
    const out = Buffer.allocUnsafe(bytes);
    let filled = 0;
    while (filled < bytes) filled += this.copyOut(out.subarray(filled));
    return out;
  }

  /** Copy queued bytes into dest (up to its length); returns how many. */
  private copyOut(dest: Uint8Array): number {
    let copied = 0;
    while (copied < dest.length && this.chunks.length > 0) {
      const first = this.chunks[0]!;
      const count = Math.min(dest.length - copied, first.length - this.head);
      dest.set(first.subarray(this.head, this.head + count), copied);
      copied += count;
      this.advance(count);
    }
    return copied;
  }

  /** Drop up to `bytes` queued bytes; returns how many. */
  private drop(bytes: number): number {
    let dropped = 0;
    while (dropped < bytes && this.chunks.length > 0) {
      const first = this.chunks[0]!;
      const count = Math.min(bytes - dropped, first.length - this.head);
      dropped += count;
      this.advance(count);
    }
    return dropped;
  }

  private advance(count: number): void {
    this.head += count;
    this.buffered -= count;
    if (this.head === this.chunks[0]!.length) {
      this.chunks.shift();
      this.head = 0;
    }
  }
}
