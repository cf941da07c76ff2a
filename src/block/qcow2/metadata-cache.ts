/**
 * A write-back LRU cache of one-cluster metadata tables (L2 tables or
 * refcount blocks) read from the image file.
 *
 * Tables are modified in place, synchronously, and marked dirty. Dirty
 * tables are never evicted: they stay until the metadata flusher writes
 * them (in the order the format's crash-safety needs) and marks them clean.
 * The capacity is therefore a soft limit; `overCommitted` tells the owner
 * when dirty tables pile up and a flush is due.
 */
import type { BlockNode } from '../block-node.js';
import { LivebackupError } from '../../errors.js';
import { writeHost } from './host-write.js';

/** One cached table. `data` is modified in place; call `MetadataCache.markDirty` after. */
export class MetadataTable {
  readonly view: DataView;
  /** Bumped on every modification. */
  generation = 1;
  /** The generation last written to the file (0: never). */
  writtenGeneration: number;

  constructor(
    /** Host offset of the table in the file. */
    readonly offset: number,
    readonly data: Uint8Array,
    dirty: boolean,
  ) {
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    this.writtenGeneration = dirty ? 0 : 1;
  }

  get dirty(): boolean {
    return this.generation !== this.writtenGeneration;
  }
}

/** A copy of a dirty table taken for writing back. */
export interface TableSnapshot {
  readonly table: MetadataTable;
  readonly generation: number;
  readonly bytes: Uint8Array;
}

export class MetadataCache {
  /** Insertion order is recency order: the first entry is the least recently used. */
  private readonly tables = new Map<number, MetadataTable>();
  private readonly loading = new Map<number, Promise<MetadataTable>>();

  constructor(
    /** 'L2 table' or 'refcount block', for error messages. */
    private readonly kind: string,
    private readonly file: BlockNode,
    private readonly tableSize: number,
    /** Soft capacity in tables. */
    private readonly capacity: number,
  ) {}

  /** The cached table at offset, without loading; marks it recently used. */
  peek(offset: number): MetadataTable | undefined {
    const table = this.tables.get(offset);
    if (table) {
      this.tables.delete(offset);
      this.tables.set(offset, table);
    }
    return table;
  }

  /**
   * The table at `offset`, read from the file when not cached. The caller
   * validated that the offset is cluster aligned; a table past the end of
   * the file is CORRUPT_IMAGE. The returned table may be evicted at the
   * next await unless it is dirty: re-check with `peek` before modifying.
   */
  async get(offset: number): Promise<MetadataTable> {
    const cached = this.peek(offset);
    if (cached) return cached;
    let pending = this.loading.get(offset);
    if (!pending) {
      pending = this.load(offset);
      this.loading.set(offset, pending);
      pending.then(
        () => this.loading.delete(offset),
        () => this.loading.delete(offset),
      );
    }
    return pending;
  }

  /** Add a new table at offset (freshly allocated cluster), dirty, filled from `initial` or zeroes. */
  create(offset: number, initial?: Uint8Array): MetadataTable {
    const data = new Uint8Array(this.tableSize);
    if (initial) data.set(initial);
    const table = new MetadataTable(offset, data, true);
    this.tables.set(offset, table);
    this.evictClean(table);
    return table;
  }

  /** Record a modification of `table`. */
  markDirty(table: MetadataTable): void {
    table.generation++;
  }

  /** Forget a clean table (its cluster is being freed). */
  drop(offset: number): void {
    const table = this.tables.get(offset);
    if (table && !table.dirty) this.tables.delete(offset);
  }

  /** Copies of every dirty table, taken synchronously. */
  snapshotDirty(): TableSnapshot[] {
    const result: TableSnapshot[] = [];
    for (const table of this.tables.values()) {
      if (table.dirty) result.push({ table, generation: table.generation, bytes: table.data.slice() });
    }
    return result;
  }

  /** Write snapshots to the file (concurrently) and mark the tables clean where unchanged since. */
  async writeBack(snapshots: readonly TableSnapshot[]): Promise<void> {
    await Promise.all(snapshots.map((snapshot) => writeHost(this.file, snapshot.table.offset, snapshot.bytes)));
    for (const snapshot of snapshots) snapshot.table.writtenGeneration = Math.max(snapshot.table.writtenGeneration, snapshot.generation);
    this.evictClean();
  }

  /** True when dirty tables make the cache exceed twice its capacity: the owner should flush. */
  get overCommitted(): boolean {
    return this.tables.size > this.capacity * 2;
  }

  get dirtyCount(): number {
    let count = 0;
    for (const table of this.tables.values()) if (table.dirty) count++;
    return count;
  }

  private async load(offset: number): Promise<MetadataTable> {
    if (offset + this.tableSize > this.file.length) {
      throw new LivebackupError(
        'CORRUPT_IMAGE',
        `qcow2 ${this.kind} at ${offset} lies outside the image file of ${this.file.length} bytes`,
      );
    }
    const data = new Uint8Array(this.tableSize);
    await this.file.read(offset, data);
    const raced = this.tables.get(offset);
    if (raced) return raced;
    const table = new MetadataTable(offset, data, false);
    this.tables.set(offset, table);
    this.evictClean(table);
    return table;
  }

  /** Evict least recently used clean tables down to the capacity, never `keep`. */
  private evictClean(keep?: MetadataTable): void {
    if (this.tables.size <= this.capacity) return;
    for (const [offset, table] of this.tables) {
      if (this.tables.size <= this.capacity) break;
      if (!table.dirty && table !== keep) this.tables.delete(offset);
    }
  }
}
