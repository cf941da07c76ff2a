/**
 * The block driver vtable. A driver implements one node type (file, raw,
 * qcow2, null-co, ...). Drivers never see unchecked requests: BlockNode is
 * the single choke point that validates, aligns, splits and tracks every
 * request before it reaches a driver.
 */
import type { BlockNode } from './block-node.js';

/** Flags of a write-type request. */
export interface WriteFlags {
  /** Force unit access: the data is durable when the promise resolves. */
  fua?: boolean;
  /**
   * The write may extend the node past its current end (formats growing
   * their file; only drivers with `truncate` honour it). The node's length
   * grows to cover the write.
   */
  mayGrow?: boolean;
  /**
   * BlockNode level, drivers ignore it: the token of a range lock the caller
   * holds on this node (see BlockNode.lockRange); the request passes that lock.
   */
  lockToken?: symbol;
}

/** Flags of a writeZeroes request. */
export interface WriteZeroesFlags extends WriteFlags {
  /** The driver may deallocate (punch a hole) instead of writing zeroes. */
  mayUnmap?: boolean;
  /** Fail with UNSUPPORTED instead of writing a zero buffer when zeroing is not fast. */
  noFallback?: boolean;
}

/**
 * What one layer (this driver only, not its backing chain) says about a run
 * of bytes.
 * - `data`: this layer holds the bytes.
 * - `zero`: this layer holds them and they read as zeroes.
 * - `unallocated`: this layer does not hold them; reads fall through to the
 *   backing node, or read as zeroes when there is none.
 */
export type LayerState = 'data' | 'zero' | 'unallocated';

export interface DriverBlockStatus {
  /** Length of the run with this status, starting at the requested offset: 1 <= bytes <= requested. */
  bytes: number;
  state: LayerState;
  /**
   * For `data` (and allocated `zero`) runs whose bytes lie contiguously and
   * uncompressed in `hostNode`: the offset of the first byte there.
   */
  hostOffset?: number;
  /** The node `hostOffset` refers to (usually the `file` child). */
  hostNode?: BlockNode;
}

/** A named child link of a node. */
export interface ChildLink {
  /** The role of the link: 'file', 'backing', 'image', 'target', ... */
  readonly role: string;
  readonly node: BlockNode;
  /** True when the parent opened the child itself (nested options) and so closes it. */
  readonly owned: boolean;
}

export interface BlockDriver {
  /** The QAPI driver name ('file', 'raw', 'qcow2', ...). */
  readonly driverName: string;
  /** True for image formats (raw, qcow2); false for protocols (file) and filters. */
  readonly isFormat: boolean;
  /** True for filters that pass I/O to one child (blkdebug, copy-before-write). */
  readonly isFilter: boolean;
  /** True when the driver can have a backing node. */
  readonly supportsBacking: boolean;
  /** Allocation unit of the format, when it has one. */
  readonly clusterSize?: number;
  /** Every request offset and length the driver receives is a multiple of this (a power of two >= 1). */
  readonly requestAlignment: number;
  /** No request the driver receives is longer than this many bytes. */
  readonly maxTransfer: number;

  /**
   * Fill `buf` with the bytes at [offset, offset + buf.length).
   * Caller guarantees: the range is inside the node, aligned to
   * requestAlignment, and buf.length <= maxTransfer, buf.length > 0.
   * The driver must fill all of buf or reject.
   */
  read(offset: number, buf: Uint8Array): Promise<void>;

  /**
   * Write all of `buf` at offset. Same guarantees as read; the node is
   * writable. With flags.fua the data is durable on resolve.
   */
  write(offset: number, buf: Uint8Array, flags: WriteFlags): Promise<void>;

  /**
   * Optional: make [offset, offset + bytes) read as zeroes efficiently.
   * Same guarantees as write. When absent, or when it rejects with
   * UNSUPPORTED, BlockNode writes a zero buffer instead (unless noFallback).
   */
  writeZeroes?(offset: number, bytes: number, flags: WriteZeroesFlags): Promise<void>;

  /**
   * Optional: the range's content is no longer needed. Afterwards reads
   * return unspecified data (zeroes or the old data). Advisory: a driver
   * may do nothing. Same guarantees as write.
   */
  discard?(offset: number, bytes: number): Promise<void>;

  /**
   * Optional: set the length to `length` bytes. New bytes read as zeroes.
   * Caller guarantees the node is writable and no request is in flight
   * past min(old, new) length.
   */
  truncate?(length: number): Promise<void>;

  /** Make every completed write durable (metadata included). */
  flush(): Promise<void>;

  /**
   * Optional: start writing completed writes out to stable storage in the
   * background and return at once. Promises no durability; it only lets a
   * later flush find less to do. A failure of the background write-out must
   * be reported by the next flush, never dropped.
   */
  startWriteback?(): void;

  /**
   * Status of this layer at offset, for at most `bytes` bytes.
   * Caller guarantees: offset < length, bytes > 0, offset + bytes <= length.
   * No alignment is guaranteed for this call.
   */
  blockStatus(offset: number, bytes: number): Promise<DriverBlockStatus>;

  /** Guest-visible length in bytes. Stable between resizes. */
  getLength(): Promise<number>;

  /** The child links of this node (file, backing, ...), in a stable order. */
  children(): readonly ChildLink[];

  /**
   * Release all resources. Owned children are closed by BlockNode, not by
   * the driver. After close no other method is called.
   */
  close(): Promise<void>;

  /** Optional: format-specific facts for `img info` ('format-specific' data, dirty flag...). */
  describe?(): Promise<DriverDescription>;
}

/** Facts a format driver reports for `img info`. */
export interface DriverDescription {
  clusterSize?: number;
  dirtyFlag?: boolean;
  backingFilename?: string;
  backingFormat?: string;
  /** qemu-img's "format-specific" object, e.g. { type: 'qcow2', data: {...} }. */
  formatSpecific?: { type: string; data: Record<string, unknown> };
}
