/**
 * qcow2 reference counts and host cluster allocation: the refcount table
 * (kept whole in memory), refcount blocks (in a write-back cache), a free
 * list of clusters released during this session, and the bump pointer at
 * the end of the file.
 *
 * Every method that changes refcounts must be called with the owner's
 * allocator mutex held: they read and modify shared state across awaits.
 *
 * Crash safety: increments may reach the disk early (a crash then leaks
 * clusters, which is harmless), so they are applied at once. Decrements
 * must not reach the disk before the L2/L1 change that dropped the
 * reference, so they are queued (`queueDecrement`) and applied by the
 * metadata flusher after those tables are durable. Freed clusters are
 * reused only after the reads that might still read them have finished.
 */
import type { BlockNode } from '../block-node.js';
import { LivebackupError } from '../../errors.js';
import { writeHost } from './host-write.js';
import { MAX_REFTABLE_BYTES, entryOffset, entryUnalignedBits, readEntryWords, readU64, writeU64 } from './qcow2-format.js';
import { MetadataCache, type MetadataTable, type TableSnapshot } from './metadata-cache.js';

/** What the flusher must write for the refcount structures, copied at one instant. */
export interface RefcountSnapshot {
  readonly blocks: TableSnapshot[];
  /** The refcount table, when it changed: bytes to write at offset. */
  readonly table: { readonly offset: number; readonly clusters: number; readonly bytes: Uint8Array; readonly generation: number } | undefined;
}

interface QuarantinedClusters {
  readonly clusters: number[];
  /** Reads numbered up to this one may still use the clusters. */
  readonly lastRead: number;
}

export class Refcounts {
  readonly entriesPerBlock: number;
  readonly maxRefcount: number;
  private readonly clusterSize: number;
  private readonly blocks: MetadataCache;
  private table: Uint8Array;
  private tableView: DataView;
  private tableOffsetValue: number;
  private tableGeneration = 0;
  private tableWrittenGeneration = 0;
  /** First cluster index past everything this session knows to be in use. */
  private bump: number;
  private readonly freeList: number[] = [];
  private readonly quarantine: QuarantinedClusters[] = [];
  private pendingDecrements: number[] = [];

  constructor(
    private readonly file: BlockNode,
    private readonly clusterBits: number,
    private readonly refcountOrder: number,
    table: Uint8Array,
    tableOffset: number,
    cacheTables: number,
    /** True when [offset, offset + bytes) overlaps the header, L1 table or refcount table. */
    private readonly overlapsFixedMetadata: (offset: number, bytes: number) => boolean,
  ) {
    this.clusterSize = 2 ** clusterBits;
    this.entriesPerBlock = (this.clusterSize * 8) >> refcountOrder;
    this.maxRefcount = refcountOrder >= 6 ? Number.MAX_SAFE_INTEGER : 2 ** (1 << refcountOrder) - 1;
    this.blocks = new MetadataCache('refcount block', file, this.clusterSize, cacheTables);
    this.table = table;
    this.tableView = new DataView(table.buffer, table.byteOffset, table.byteLength);
    this.tableOffsetValue = tableOffset;
    this.bump = Math.ceil(file.length / this.clusterSize);
  }

  /** Current host offset of the refcount table. */
  get tableOffset(): number {
    return this.tableOffsetValue;
  }

  /** Current size of the refcount table in clusters. */
  get tableClusters(): number {
    return this.table.length / this.clusterSize;
  }

  /** True when refcount metadata waits to be written, or decrements wait to be applied. */
  get hasPendingWork(): boolean {
    return this.blocks.dirtyCount > 0 || this.tableGeneration !== this.tableWrittenGeneration || this.pendingDecrements.length > 0;
  }

  /** True when so many dirty blocks are cached that a flush is due. */
  get overCommitted(): boolean {
    return this.blocks.overCommitted;
  }

  /** The refcount of a host cluster (0 when no block covers it). */
  async get(cluster: number): Promise<number> {
    const blockIndex = Math.floor(cluster / this.entriesPerBlock);
    const block = await this.loadBlock(blockIndex);
    return block ? this.readEntry(block, cluster % this.entriesPerBlock) : 0;
  }

  /**
   * Allocate `count` host clusters (refcount 0 -> 1): first from clusters
   * freed this session, then at the end of the file. Returns their indexes,
   * ascending where possible, so runs are contiguous.
   */
  async allocate(count: number): Promise<number[]> {
    const result: number[] = [];
    while (result.length < count && this.freeList.length > 0) result.push(this.freeList.pop()!);
    while (result.length < count) result.push(await this.takeEndCluster());
    result.sort((a, b) => a - b);
    await this.adjust(result, 1);
    return result;
  }

  /** Add `delta` to the refcount of each cluster (a cluster may appear several times). */
  async adjust(clusters: readonly number[], delta: number): Promise<number[]> {
    const freed: number[] = [];
    for (const cluster of clusters) {
      const blockIndex = Math.floor(cluster / this.entriesPerBlock);
      let block = this.cachedBlock(blockIndex);
      while (!block) {
        // A clean block may be evicted between its load and this continuation: use it only if still cached.
        const loaded = (await this.loadBlock(blockIndex)) ?? (await this.createBlock(blockIndex));
        if (this.cachedBlock(blockIndex) === loaded) block = loaded;
      }
      const index = cluster % this.entriesPerBlock;
      const value = this.readEntry(block, index) + delta;
      if (value < 0) {
        throw new LivebackupError('CORRUPT_IMAGE', `qcow2 refcount of host cluster ${cluster} would drop below zero`);
      }
      if (value > this.maxRefcount) {
        throw new LivebackupError('UNSUPPORTED', `qcow2 refcount of host cluster ${cluster} would exceed the maximum ${this.maxRefcount}`);
      }
      this.writeEntry(block, index, value);
      this.blocks.markDirty(block);
      if (value === 0) freed.push(cluster);
    }
    return freed;
  }

  /** Allocate `count` contiguous clusters at the end of the file (refcount 0 -> 1); returns the first index. */
  async allocateRun(count: number): Promise<number> {
    const start = await this.reserveEndRun(count);
    const clusters: number[] = [];
    for (let cluster = start; cluster < start + count; cluster++) clusters.push(cluster);
    await this.adjust(clusters, 1);
    return start;
  }

  /** Find `count` contiguous free clusters from the bump pointer on and move the pointer past them. */
  private async reserveEndRun(count: number): Promise<number> {
    let start = this.bump;
    for (let probe = start; probe < start + count; probe++) {
      if ((this.refcountIfCached(probe) ?? (await this.get(probe))) !== 0) start = probe + 1;
    }
    this.bump = Math.max(this.bump, start + count);
    return start;
  }

  /** Queue a decrement to apply once the tables that dropped the reference are durable. */
  queueDecrement(clusters: readonly number[]): void {
    for (const cluster of clusters) this.pendingDecrements.push(cluster);
  }

  /** Copy the dirty refcount metadata and take the queued decrements, synchronously. */
  snapshot(): { refcounts: RefcountSnapshot; decrements: number[] } {
    const decrements = this.pendingDecrements;
    this.pendingDecrements = [];
    return { refcounts: this.snapshotMetadata(), decrements };
  }

  /** Copy the dirty refcount blocks and the table (when changed), synchronously; queued decrements stay queued. */
  snapshotMetadata(): RefcountSnapshot {
    const tableChanged = this.tableGeneration !== this.tableWrittenGeneration;
    return {
      blocks: this.blocks.snapshotDirty(),
      table: tableChanged
        ? { offset: this.tableOffsetValue, clusters: this.tableClusters, bytes: this.table.slice(), generation: this.tableGeneration }
        : undefined,
    };
  }

  /** Write a snapshot's blocks and table (not the header). */
  async write(snapshot: RefcountSnapshot): Promise<void> {
    const writes = [this.blocks.writeBack(snapshot.blocks)];
    if (snapshot.table) writes.push(writeHost(this.file, snapshot.table.offset, snapshot.table.bytes));
    await Promise.all(writes);
    if (snapshot.table) this.tableWrittenGeneration = Math.max(this.tableWrittenGeneration, snapshot.table.generation);
  }

  /** Write every dirty block now (after decrements were applied). */
  async writeDirtyBlocks(): Promise<void> {
    await this.blocks.writeBack(this.blocks.snapshotDirty());
  }

  /**
   * Apply decrements (allocator mutex held). Clusters reaching zero are
   * quarantined until every read numbered up to `lastRead` has finished.
   * Returns the freed clusters.
   */
  async applyDecrements(decrements: readonly number[], lastRead: number): Promise<number[]> {
    const freed = await this.adjust(decrements, -1);
    if (freed.length > 0) this.quarantine.push({ clusters: freed, lastRead });
    return freed;
  }

  /** Move quarantined clusters to the free list once no read older than them is in flight. */
  releaseQuarantine(oldestReadInFlight: number): void {
    while (this.quarantine.length > 0 && this.quarantine[0]!.lastRead < oldestReadInFlight) {
      for (const cluster of this.quarantine.shift()!.clusters) this.freeList.push(cluster);
    }
    this.freeList.sort((a, b) => b - a);
  }

  private cachedBlock(blockIndex: number): MetadataTable | undefined {
    const offset = this.blockOffset(blockIndex);
    return offset === 0 ? undefined : this.blocks.peek(offset);
  }

  private async loadBlock(blockIndex: number): Promise<MetadataTable | undefined> {
    const offset = this.blockOffset(blockIndex);
    return offset === 0 ? undefined : this.blocks.get(offset);
  }

  /** Host offset of refcount block `blockIndex`, 0 when not allocated. */
  private blockOffset(blockIndex: number): number {
    if (blockIndex * 8 >= this.table.length) return 0;
    const [hi, lo] = readEntryWords(this.tableView, blockIndex * 8);
    if (hi === 0 && lo === 0) return 0;
    const offset = entryOffset(hi, lo);
    if (entryUnalignedBits(hi, lo) !== 0 || (hi & 0xff000000) !== 0 || offset === 0) {
      throw new LivebackupError('CORRUPT_IMAGE', `qcow2 refcount table entry ${blockIndex} is invalid (offset not cluster aligned)`);
    }
    if (this.overlapsFixedMetadata(offset, this.clusterSize)) {
      throw new LivebackupError('CORRUPT_IMAGE', `qcow2 refcount block ${blockIndex} at ${offset} overlaps the header, L1 table or refcount table`);
    }
    return offset;
  }

  /** The next cluster at the end of the file whose refcount is zero. Awaits only to load a refcount block. */
  private async takeEndCluster(): Promise<number> {
    for (;;) {
      const cluster = this.bump++;
      const known = this.refcountIfCached(cluster);
      if ((known ?? (await this.get(cluster))) === 0) return cluster;
    }
  }

  /** The refcount of a cluster when it is known without I/O (no block, or block cached), else undefined. */
  private refcountIfCached(cluster: number): number | undefined {
    const blockIndex = Math.floor(cluster / this.entriesPerBlock);
    if (this.blockOffset(blockIndex) === 0) return 0;
    const block = this.cachedBlock(blockIndex);
    return block ? this.readEntry(block, cluster % this.entriesPerBlock) : undefined;
  }

  /** Allocate refcount block `blockIndex` at the end of the file, growing the table when needed. */
  private async createBlock(blockIndex: number): Promise<MetadataTable> {
    if (blockIndex * 8 >= this.table.length) await this.growTable(blockIndex + 1);
    const existing = await this.loadBlock(blockIndex);
    if (existing) return existing;
    const cluster = await this.takeEndCluster();
    const block = this.blocks.create(cluster * this.clusterSize);
    writeU64(this.tableView, blockIndex * 8, cluster * this.clusterSize);
    this.tableGeneration++;
    if (Math.floor(cluster / this.entriesPerBlock) === blockIndex) {
      this.writeEntry(block, cluster % this.entriesPerBlock, 1);
      this.blocks.markDirty(block);
    } else {
      await this.adjust([cluster], 1);
    }
    return block;
  }

  /** Move the refcount table to a bigger area at the end of the file. */
  private async growTable(minEntries: number): Promise<void> {
    const entriesPerCluster = this.clusterSize / 8;
    const clusters = Math.max(this.tableClusters * 2, Math.ceil((minEntries + 1) / entriesPerCluster));
    if (clusters * this.clusterSize > MAX_REFTABLE_BYTES) {
      throw new LivebackupError('UNSUPPORTED', 'qcow2 refcount table would exceed its maximum size; the image file is too large');
    }
    const start = await this.reserveEndRun(clusters);
    const old = { offset: this.tableOffsetValue, clusters: this.tableClusters };
    const table = new Uint8Array(clusters * this.clusterSize);
    table.set(this.table);
    this.table = table;
    this.tableView = new DataView(table.buffer);
    this.tableOffsetValue = start * this.clusterSize;
    this.tableGeneration++;
    const own: number[] = [];
    for (let cluster = start; cluster < start + clusters; cluster++) own.push(cluster);
    await this.adjust(own, 1);
    const oldClusters: number[] = [];
    for (let cluster = 0; cluster < old.clusters; cluster++) oldClusters.push(old.offset / this.clusterSize + cluster);
    this.queueDecrement(oldClusters);
  }

  private readEntry(block: MetadataTable, index: number): number {
    switch (this.refcountOrder) {
      case 3:
        return block.data[index]!;
      case 4:
        return block.view.getUint16(index * 2);
      case 5:
        return block.view.getUint32(index * 4);
      case 6:
        return readU64(block.view, index * 8);
      default: {
        const bits = 1 << this.refcountOrder;
        const perByte = 8 >> this.refcountOrder;
        const shift = (index % perByte) * bits;
        return (block.data[Math.floor(index / perByte)]! >> shift) & ((1 << bits) - 1);
      }
    }
  }

  private writeEntry(block: MetadataTable, index: number, value: number): void {
    switch (this.refcountOrder) {
      case 3:
        block.data[index] = value;
        return;
      case 4:
        block.view.setUint16(index * 2, value);
        return;
      case 5:
        block.view.setUint32(index * 4, value);
        return;
      case 6:
        writeU64(block.view, index * 8, value);
        return;
      default: {
        const bits = 1 << this.refcountOrder;
        const perByte = 8 >> this.refcountOrder;
        const shift = (index % perByte) * bits;
        const mask = ((1 << bits) - 1) << shift;
        const at = Math.floor(index / perByte);
        block.data[at] = (block.data[at]! & ~mask) | (value << shift);
      }
    }
  }
}
