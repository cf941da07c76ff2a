/**
 * BlockNode: one node of the block graph (QEMU's BlockDriverState). It wraps
 * a driver and is the single choke point for I/O: every request is checked
 * against the node's bounds and mode, aligned (read-modify-write where
 * needed), split to the driver's maxTransfer, tracked while in flight, and
 * shown to the before-write notifiers (copy-before-write) before it is
 * allowed to modify data.
 */
import type { BlockDriver, ChildLink, WriteFlags, WriteZeroesFlags } from './block-driver.js';
import { TrackedRequests } from './tracked-requests.js';
import { LivebackupError } from '../errors.js';

/** What the node does with discard requests (QAPI BlockdevDiscardOptions). */
export type DiscardMode = 'ignore' | 'unmap';

/** A write-type request as shown to before-write notifiers. */
export interface WriteIntent {
  readonly kind: 'write' | 'write-zeroes' | 'discard';
  readonly offset: number;
  readonly bytes: number;
}

/**
 * Called before a write-type request modifies [offset, offset + bytes).
 * The request waits for the returned promise; a rejection fails the request
 * with that error and nothing is written.
 */
export type BeforeWriteNotifier = (intent: WriteIntent) => Promise<void>;

/** An exclusive lock on a byte range of a node; see BlockNode.lockRange. */
export interface RangeLock {
  /** Pass this as `lockToken` on the holder's own requests inside the range. */
  readonly token: symbol;
  /** Release the lock; idempotent. */
  release(): void;
}

/** Options of a read request. */
export interface ReadFlags {
  /** Token of a range lock the caller holds (see RangeLock). */
  lockToken?: symbol;
}

/** Status of a run of bytes as seen through the whole backing chain. */
export interface BlockStatus {
  /** First byte of the run. */
  offset: number;
  /** Length of the run: 1 <= bytes <= requested. */
  bytes: number;
  /** The bytes are stored somewhere in the chain (not known zero by absence). */
  data: boolean;
  /** The bytes read as zeroes. */
  zero: boolean;
  /** Allocated in this node's own layer (QEMU's is_allocated: does not fall through to backing). */
  allocated: boolean;
  /** Allocated in some layer of the chain. */
  present: boolean;
  /** 0 = this node's layer, 1 = its backing, ... For runs absent everywhere: the last layer looked at. */
  depth: number;
  /** Where the bytes lie in hostNode, when contiguous and uncompressed. */
  hostOffset?: number;
  /** The node (usually a `file` node) hostOffset refers to. */
  hostNode?: BlockNode;
}

export interface BlockNodeParams {
  readonly nodeName: string;
  readonly driver: BlockDriver;
  readonly readOnly: boolean;
  readonly discard: DiscardMode;
  /** cache.no-flush: flush requests succeed without doing anything. */
  readonly noFlush: boolean;
  readonly length: number;
  /** The options the node was opened with (for query-named-block-nodes). */
  readonly options: Readonly<Record<string, unknown>>;
}

const ZERO_CHUNK = 1024 * 1024;
let sharedZeroes: Uint8Array | undefined;
function zeroBuffer(bytes: number): Uint8Array {
  sharedZeroes ??= new Uint8Array(ZERO_CHUNK);
  return sharedZeroes.subarray(0, Math.min(bytes, ZERO_CHUNK));
}

export class BlockNode {
  readonly nodeName: string;
  readonly driver: BlockDriver;
  readonly readOnly: boolean;
  readonly discardMode: DiscardMode;
  readonly noFlush: boolean;
  readonly options: Readonly<Record<string, unknown>>;
  /** Nodes that have this node as a child. Maintained by the graph code. */
  readonly parents = new Set<BlockNode>();

  private lengthBytes: number;
  private readonly tracked = new TrackedRequests();
  private readonly notifiers = new Set<BeforeWriteNotifier>();
  private readonly blockers = new Map<symbol, string>();
  private closed = false;

  constructor(params: BlockNodeParams) {
    this.nodeName = params.nodeName;
    this.driver = params.driver;
    this.readOnly = params.readOnly;
    this.discardMode = params.discard;
    this.noFlush = params.noFlush;
    this.lengthBytes = params.length;
    this.options = params.options;
  }

  /** Guest-visible size in bytes. */
  get length(): number {
    return this.lengthBytes;
  }

  /** Number of requests in flight on this node. */
  get inFlight(): number {
    return this.tracked.size;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Child links (file, backing, ...). */
  children(): readonly ChildLink[] {
    return this.driver.children();
  }

  /** The backing node, if the driver has one. */
  get backing(): BlockNode | undefined {
    return this.children().find((link) => link.role === 'backing')?.node;
  }

  /** True for protocol nodes (file, nbd, null-co): neither an image format nor a filter. */
  private get isProtocol(): boolean {
    return !this.driver.isFormat && !this.driver.isFilter;
  }

  /** The `file` child, if any. */
  get file(): BlockNode | undefined {
    return this.children().find((link) => link.role === 'file')?.node;
  }

  /** Read [offset, offset + buf.length) into buf. */
  async read(offset: number, buf: Uint8Array, flags: ReadFlags = {}): Promise<void> {
    this.checkOpen();
    this.checkRange(offset, buf.length);
    if (buf.length === 0) return;
    const begun = this.tracked.begin(offset, buf.length, false, false, flags.lockToken);
    const request = begun instanceof Promise ? await begun : begun;
    try {
      const alignment = this.driver.requestAlignment;
      if (isAligned(offset, alignment) && isAligned(buf.length, alignment)) {
        await this.readSplit(offset, buf);
      } else {
        const start = alignDown(offset, alignment);
        const end = alignUp(offset + buf.length, alignment);
        const bounce = new Uint8Array(end - start);
        await this.readSplit(start, bounce);
        buf.set(bounce.subarray(offset - start, offset - start + buf.length));
      }
    } finally {
      request.end();
    }
  }

  /** Write buf at offset. With flags.fua the data is durable on resolve. */
  async write(offset: number, buf: Uint8Array, flags: WriteFlags = {}): Promise<void> {
    this.checkWritable();
    this.checkRange(offset, buf.length, flags.mayGrow);
    if (buf.length === 0) return;
    if (this.hasNotifiers) await this.notify({ kind: 'write', offset, bytes: buf.length });
    this.growTo(offset + buf.length, flags.mayGrow);
    const alignment = this.driver.requestAlignment;
    if (isAligned(offset, alignment) && isAligned(buf.length, alignment)) {
      const request = await this.tracked.begin(offset, buf.length, true, false, flags.lockToken);
      try {
        await this.writeSplit(offset, buf, flags);
      } finally {
        request.end();
      }
      return;
    }
    await this.readModifyWrite(offset, buf.length, (aligned, start) => aligned.set(buf, offset - start), flags);
  }

  /** Make [offset, offset + bytes) read as zeroes. */
  async writeZeroes(offset: number, bytes: number, flags: WriteZeroesFlags = {}): Promise<void> {
    this.checkWritable();
    this.checkRange(offset, bytes, flags.mayGrow);
    if (bytes === 0) return;
    if (this.hasNotifiers) await this.notify({ kind: 'write-zeroes', offset, bytes });
    this.growTo(offset + bytes, flags.mayGrow);
    const alignment = this.driver.requestAlignment;
    const end = offset + bytes;
    const innerStart = alignUp(offset, alignment);
    const innerEnd = alignDown(end, alignment);
    const zeroPart = (from: number, to: number) =>
      this.readModifyWrite(from, to - from, (aligned, start) => aligned.fill(0, from - start, to - start), flags);
    if (innerStart >= innerEnd) return zeroPart(offset, end);
    if (offset < innerStart) await zeroPart(offset, innerStart);
    const request = await this.tracked.begin(innerStart, innerEnd - innerStart, true, false, flags.lockToken);
    try {
      await this.zeroAligned(innerStart, innerEnd - innerStart, flags);
    } finally {
      request.end();
    }
    if (innerEnd < end) await zeroPart(innerEnd, end);
  }

  /**
   * Discard [offset, offset + bytes). Does nothing on a node opened with
   * discard=ignore (the QEMU default); otherwise the aligned inside of the
   * range is passed to the driver. Afterwards the range reads unspecified data.
   */
  async discard(offset: number, bytes: number): Promise<void> {
    this.checkWritable();
    this.checkRange(offset, bytes);
    if (bytes === 0 || this.discardMode === 'ignore' || !this.driver.discard) return;
    const alignment = this.driver.requestAlignment;
    const start = alignUp(offset, alignment);
    const end = alignDown(offset + bytes, alignment);
    if (end <= start) return;
    if (this.hasNotifiers) await this.notify({ kind: 'discard', offset: start, bytes: end - start });
    const request = await this.tracked.begin(start, end - start, true);
    try {
      for (let position = start; position < end; ) {
        const chunk = Math.min(end - position, this.driver.maxTransfer);
        await this.driver.discard(position, chunk);
        position += chunk;
      }
    } finally {
      request.end();
    }
  }

  /** Make all completed writes durable, down to the file. */
  async flush(): Promise<void> {
    this.checkOpen();
    if (this.noFlush) return;
    await this.driver.flush();
    for (const link of this.children()) {
      if (link.role !== 'backing' && !link.node.readOnly) await link.node.flush();
    }
  }

  /**
   * Hint: start writing completed writes out to stable storage, down to the
   * file, without waiting (see BlockDriver.startWriteback). A long copy calls
   * it now and then so that its final flush does not have to write
   * everything at once. Never throws; errors surface at the next flush.
   */
  startWriteback(): void {
    if (this.closed || this.readOnly || this.noFlush) return;
    this.driver.startWriteback?.();
    for (const link of this.children()) {
      if (link.role !== 'backing') link.node.startWriteback();
    }
  }

  /**
   * Status of the run starting at offset (at most `bytes` long), looking
   * through the backing chain for bytes this layer does not hold.
   */
  async blockStatus(offset: number, bytes: number): Promise<BlockStatus> {
    this.checkOpen();
    this.checkRange(offset, bytes);
    if (bytes === 0) throw new LivebackupError('INVALID_ARGUMENT', 'block status of an empty range');
    const own = await this.driver.blockStatus(offset, bytes);
    const run = Math.max(1, Math.min(own.bytes, bytes));
    if (own.state !== 'unallocated') {
      return {
        offset,
        bytes: run,
        data: own.state === 'data',
        zero: own.state === 'zero',
        allocated: true,
        present: true,
        depth: 0,
        // A protocol node's bytes lie in itself, at their own offset (QEMU's protocol drivers say so too).
        hostOffset: own.hostOffset ?? (this.isProtocol ? offset : undefined),
        hostNode: own.hostNode ?? (this.isProtocol ? this : undefined),
      };
    }
    const backing = this.backing;
    if (!backing || offset >= backing.length) {
      // Past the end of the backing node (or without one) the bytes read as zeroes from this layer: depth 0, as qemu-img map says.
      return { offset, bytes: run, data: false, zero: true, allocated: false, present: false, depth: 0 };
    }
    const below = await backing.blockStatus(offset, Math.min(run, backing.length - offset));
    return { ...below, offset, allocated: false, depth: below.depth + 1 };
  }

  /**
   * Register a before-write notifier. Every write, writeZeroes and discard
   * waits for it before touching data. Returns a function that removes it.
   */
  addBeforeWriteNotifier(notifier: BeforeWriteNotifier): () => void {
    this.notifiers.add(notifier);
    return () => {
      this.notifiers.delete(notifier);
    };
  }

  /**
   * Take an exclusive lock on [offset, offset + bytes): waits for the
   * overlapping requests in flight, then every new overlapping request waits
   * until release(), except the holder's own requests that pass
   * `lockToken: lock.token`. Used to make a copy-before-write atomic for
   * readers of a fleecing target.
   */
  async lockRange(offset: number, bytes: number): Promise<RangeLock> {
    this.checkOpen();
    const token = Symbol('range-lock');
    const request = await this.tracked.begin(offset, bytes, true, true, token);
    return { token, release: () => request.end() };
  }

  /**
   * Resolves when every write in flight on this node at the moment of the
   * call has finished (writes started later are not waited for).
   */
  writesSettled(): Promise<void> {
    return this.tracked.writesSettled();
  }

  /** Wait until no request overlapping the range is in flight. */
  waitForOverlapping(offset: number, bytes: number): Promise<void> {
    return this.tracked.waitForOverlapping(offset, bytes);
  }

  /** Wait until no request is in flight. */
  drain(): Promise<void> {
    return this.tracked.drain();
  }

  /**
   * Mark the node as in use (by a job or export). Returns the function that
   * releases it. While any blocker is held, `busyReason` names the first.
   */
  addBlocker(reason: string): () => void {
    const key = Symbol(reason);
    this.blockers.set(key, reason);
    return () => {
      this.blockers.delete(key);
    };
  }

  /** Why the node is busy, or undefined. */
  get busyReason(): string | undefined {
    for (const reason of this.blockers.values()) return reason;
    return undefined;
  }

  /**
   * Resize the node to `length` bytes (drivers with truncate only). New
   * bytes read as zeroes.
   */
  async truncate(length: number): Promise<void> {
    this.checkWritable();
    if (!Number.isSafeInteger(length) || length < 0) {
      throw new LivebackupError('INVALID_ARGUMENT', `invalid length ${length} for node '${this.nodeName}'`);
    }
    if (!this.driver.truncate) {
      throw new LivebackupError('UNSUPPORTED', `node '${this.nodeName}' (${this.driver.driverName}) cannot be resized`);
    }
    if (length < this.lengthBytes) await this.tracked.waitForOverlapping(length, this.lengthBytes - length);
    await this.driver.truncate(length);
    this.lengthBytes = length;
  }

  /** Re-read the length from the driver (after a resize). */
  async refreshLength(): Promise<number> {
    this.lengthBytes = await this.driver.getLength();
    return this.lengthBytes;
  }

  /**
   * Close the node: wait for requests in flight, flush if writable, close
   * the driver, then close the children it owns. Idempotent.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.tracked.drain();
    this.closed = true;
    const links = this.children();
    try {
      if (!this.readOnly && !this.noFlush) await this.driver.flush();
    } finally {
      await this.driver.close();
      for (const link of links) {
        link.node.parents.delete(this);
        if (link.owned) await link.node.close();
      }
    }
  }

  private async notify(intent: WriteIntent): Promise<void> {
    for (const notifier of [...this.notifiers]) await notifier(intent);
  }

  /** True when a write must first run the before-write notifiers. */
  private get hasNotifiers(): boolean {
    return this.notifiers.size > 0;
  }

  private readSplit(offset: number, buf: Uint8Array): Promise<void> {
    const max = this.driver.maxTransfer;
    if (buf.length <= max) return this.driver.read(offset, buf);
    return this.readInPieces(offset, buf, max);
  }

  private async readInPieces(offset: number, buf: Uint8Array, max: number): Promise<void> {
    for (let done = 0; done < buf.length; done += max) {
      await this.driver.read(offset + done, buf.subarray(done, Math.min(buf.length, done + max)));
    }
  }

  private async writeSplit(offset: number, buf: Uint8Array, flags: WriteFlags): Promise<void> {
    const max = this.driver.maxTransfer;
    if (buf.length <= max) return this.driver.write(offset, buf, flags);
    for (let done = 0; done < buf.length; done += max) {
      await this.driver.write(offset + done, buf.subarray(done, Math.min(buf.length, done + max)), flags);
    }
  }

  /** Zero an aligned range with the driver's writeZeroes, falling back to writing zero buffers. */
  private async zeroAligned(offset: number, bytes: number, flags: WriteZeroesFlags): Promise<void> {
    if (this.driver.writeZeroes) {
      try {
        for (let done = 0; done < bytes; ) {
          const chunk = Math.min(bytes - done, this.driver.maxTransfer);
          await this.driver.writeZeroes(offset + done, chunk, flags);
          done += chunk;
        }
        return;
      } catch (error) {
        if (!(error instanceof LivebackupError && error.code === 'UNSUPPORTED') || flags.noFallback) throw error;
      }
    } else if (flags.noFallback) {
      throw new LivebackupError('UNSUPPORTED', `node '${this.nodeName}' cannot write zeroes efficiently`, { errno: 'ENOTSUP' });
    }
    const chunkLimit = alignDown(Math.min(ZERO_CHUNK, this.driver.maxTransfer), this.driver.requestAlignment);
    for (let done = 0; done < bytes; ) {
      const chunk = Math.min(bytes - done, chunkLimit);
      await this.driver.write(offset + done, zeroBuffer(chunk), flags);
      done += chunk;
    }
  }

  /**
   * Read the aligned cover of [offset, offset + bytes), let `modify` change
   * it, and write it back, serialised against overlapping requests.
   */
  private async readModifyWrite(
    offset: number,
    bytes: number,
    modify: (aligned: Uint8Array, alignedStart: number) => void,
    flags: WriteFlags,
  ): Promise<void> {
    const alignment = this.driver.requestAlignment;
    const start = alignDown(offset, alignment);
    const end = Math.min(alignUp(offset + bytes, alignment), alignUp(this.lengthBytes, alignment));
    const request = await this.tracked.begin(start, end - start, true, true, flags.lockToken);
    try {
      const aligned = new Uint8Array(end - start);
      await this.readSplit(start, aligned);
      modify(aligned, start);
      await this.writeSplit(start, aligned, flags);
    } finally {
      request.end();
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new LivebackupError('INVALID_STATE', `node '${this.nodeName}' is closed`);
  }

  private checkWritable(): void {
    this.checkOpen();
    if (this.readOnly) {
      throw new LivebackupError('READ_ONLY', `node '${this.nodeName}' is read-only`, { errno: 'EPERM' });
    }
  }

  /** Extend the length over a growing write before it is issued, so that concurrent requests see it. */
  private growTo(end: number, mayGrow: boolean | undefined): void {
    if (mayGrow && end > this.lengthBytes) this.lengthBytes = end;
  }

  private checkRange(offset: number, bytes: number, mayGrow = false): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(bytes) || offset < 0 || bytes < 0) {
      throw new LivebackupError('INVALID_ARGUMENT', `invalid request offset=${offset} bytes=${bytes} on node '${this.nodeName}'`, {
        errno: 'EINVAL',
      });
    }
    if (mayGrow && !this.driver.truncate) {
      throw new LivebackupError('UNSUPPORTED', `node '${this.nodeName}' (${this.driver.driverName}) cannot grow`);
    }
    if (offset + bytes > this.lengthBytes && !mayGrow) {
      throw new LivebackupError(
        'OUT_OF_BOUNDS',
        `request [${offset}, ${offset + bytes}) is outside node '${this.nodeName}' of ${this.lengthBytes} bytes`,
        { errno: 'EINVAL' },
      );
    }
  }
}

export function isAligned(value: number, alignment: number): boolean {
  return value % alignment === 0;
}

export function alignDown(value: number, alignment: number): number {
  return value - (value % alignment);
}

export function alignUp(value: number, alignment: number): number {
  const rest = value % alignment;
  return rest === 0 ? value : value + alignment - rest;
}
