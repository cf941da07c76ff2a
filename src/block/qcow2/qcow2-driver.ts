/**
 * The qcow2 format driver: guest clusters mapped through the L1 table and
 * cached L2 tables to host clusters of the `file` child, with zero
 * clusters, compressed clusters (read), subclusters (read), a backing
 * chain, internal snapshots kept intact by copy-on-write, and allocation
 * with reference counts.
 *
 * Concurrency: write-type requests lock the guest clusters they touch
 * (RangeLocks), so two requests never allocate or free the same cluster;
 * requests on other clusters run in parallel. Host clusters are allocated
 * and L2 tables created or copied under one allocator mutex, briefly; data
 * I/O runs outside it. Metadata changes happen in memory, synchronously,
 * after the data they point to is written, and reach the file only through
 * `flushMetadata`, which writes them in crash-safe order.
 *
 * Crash-safe order (see flushMetadata): data, then refcount increments,
 * then L2 tables, then L1 entries, then refcount decrements; each step is
 * made durable before the next starts writing. A crash can leak clusters
 * but never leaves a table pointing at unwritten data or at a cluster
 * whose refcount is too low.
 */
import type { BlockDriver, ChildLink, DriverBlockStatus, DriverDescription, WriteFlags, WriteZeroesFlags } from '../block-driver.js';
import type { BlockNode } from '../block-node.js';
import { LivebackupError } from '../../errors.js';
import { AsyncMutex } from './async-mutex.js';
import { RangeLocks } from './range-locks.js';
import { MetadataCache, type MetadataTable } from './metadata-cache.js';
import { Refcounts, type RefcountSnapshot } from './refcounts.js';
import { readCompressedCluster } from './compressed-cluster.js';
import { writeHost } from './host-write.js';
import type { Qcow2Header } from './qcow2-header.js';
import {
  COMPAT_LAZY_REFCOUNTS,
  HeaderField,
  INCOMPAT_CORRUPT,
  MAX_L1_BYTES,
  INCOMPAT_DIRTY,
  compressedClusters,
  decodeCompressed,
  entryCompressed,
  entryCopied,
  entryOffset,
  entryUnalignedBits,
  entryZero,
  readEntryWords,
  writeStandardEntry,
  writeU64,
  type CompressedExtent,
} from './qcow2-format.js';

const MAX_TRANSFER = 32 * 1024 * 1024;

/** How one run of guest bytes is stored in this layer. */
type ExtentKind = 'data' | 'zero' | 'unallocated' | 'compressed';

interface Extent {
  offset: number;
  bytes: number;
  kind: ExtentKind;
  /** For data, and zero clusters that keep their allocation: host offset of the first byte. */
  hostOffset?: number;
  /** For compressed: where the compressed cluster lies, and the offset of `offset` inside the cluster. */
  compressed?: CompressedExtent;
  inCluster?: number;
}

/** Where the old content of a cluster comes from when a write only partly covers it. */
type FillSource =
  | { kind: 'zero' }
  | { kind: 'backing' }
  | { kind: 'host'; hostOffset: number }
  | { kind: 'compressed'; extent: CompressedExtent };

/** Runtime settings from the open options. */
export interface Qcow2Settings {
  readonly readOnly: boolean;
  readonly lazyRefcounts: boolean;
  readonly l2CacheTables: number;
  readonly refcountCacheTables: number;
  /** Name of the image for messages. */
  readonly filename: string;
  /** Header bytes 72..96 (feature words) as read at open; high words are kept when rewriting them. */
  readonly featureWords: Uint8Array;
}

/**
 * One open qcow2 image. Built by qcow2DriverFactory.open from a validated
 * header and the L1 (and, when writable, refcount) table; owns the caches
 * and the allocator. Read-only instances have no allocator and refuse
 * write-type requests.
 */
export class Qcow2Driver implements BlockDriver {
  readonly driverName = 'qcow2';
  readonly isFormat = true;
  readonly isFilter = false;
  readonly supportsBacking = true;
  readonly requestAlignment = 1;
  readonly maxTransfer = MAX_TRANSFER;
  readonly clusterSize: number;

  private readonly clusterBits: number;
  private readonly entrySize: number;
  private readonly l2Entries: number;
  /** Guest bytes covered by one L2 table. */
  private readonly bytesPerL2: number;
  private readonly subclusterSize: number;
  /** The active L1 table (replaced when a resize moves it) and where it lies. */
  private l1: Uint8Array;
  private l1View: DataView;
  private l1TableOffset: number;
  private virtualSize: number;
  private l1Generation = 0;
  private l1WrittenGeneration = 0;
  private l1DirtyFrom = Number.POSITIVE_INFINITY;
  private l1DirtyTo = 0;
  private readonly l2Cache: MetadataCache;
  private readonly refcounts: Refcounts | undefined;
  private readonly allocator = new AsyncMutex();
  private readonly flusher = new AsyncMutex();
  private readonly locks = new RangeLocks();
  private incompatibleFeatures: number;
  private autoclearFeatures: number;
  private persistedReftable: { offset: number; clusters: number };
  /** Sequence numbers of reads in flight (freed clusters wait for older reads). */
  private readonly readsInFlight = new Set<number>();
  private nextReadSeq = 1;
  private lastCompressed: { hostOffset: number; data: Promise<Uint8Array> } | undefined;
  private closed = false;

  constructor(
    private readonly file: BlockNode,
    private readonly fileOwned: boolean,
    private readonly backing: BlockNode | null,
    private readonly backingOwned: boolean,
    private readonly header: Qcow2Header,
    l1: Uint8Array,
    reftable: Uint8Array | undefined,
    private readonly settings: Qcow2Settings,
  ) {
    this.clusterBits = header.clusterBits;
    this.clusterSize = header.clusterSize;
    this.entrySize = header.extendedL2 ? 16 : 8;
    this.l2Entries = this.clusterSize / this.entrySize;
    this.bytesPerL2 = this.l2Entries * this.clusterSize;
    this.subclusterSize = header.extendedL2 ? this.clusterSize / 32 : this.clusterSize;
    this.l1 = l1;
    this.l1View = new DataView(l1.buffer, l1.byteOffset, l1.byteLength);
    this.l1TableOffset = header.l1TableOffset;
    this.virtualSize = header.size;
    this.l2Cache = new MetadataCache('L2 table', file, this.clusterSize, settings.l2CacheTables);
    this.refcounts = reftable
      ? new Refcounts(file, header.clusterBits, header.refcountOrder, reftable, header.refcountTableOffset, settings.refcountCacheTables, (offset, bytes) =>
          this.overlapsFixedMetadata(offset, bytes),
        )
      : undefined;
    this.incompatibleFeatures = header.incompatibleFeatures;
    this.autoclearFeatures = header.autoclearFeatures;
    this.persistedReftable = { offset: header.refcountTableOffset, clusters: header.refcountTableClusters };
  }

  // ---------------------------------------------------------------- reads

  async read(offset: number, buf: Uint8Array): Promise<void> {
    const seq = this.nextReadSeq++;
    this.readsInFlight.add(seq);
    try {
      const extents = await this.mapRange(offset, buf.length, Number.POSITIVE_INFINITY);
      if (extents.length === 1) {
        const only = extents[0]!;
        if (only.kind === 'zero') buf.fill(0);
        else await this.readExtent(only, buf);
        return;
      }
      const io: Promise<void>[] = [];
      for (const extent of extents) {
        const out = buf.subarray(extent.offset - offset, extent.offset - offset + extent.bytes);
        if (extent.kind === 'zero') out.fill(0);
        else io.push(this.readExtent(extent, out));
      }
      await Promise.all(io);
    } finally {
      this.readsInFlight.delete(seq);
    }
  }

  private async readExtent(extent: Extent, out: Uint8Array): Promise<void> {
    switch (extent.kind) {
      case 'data':
        return this.readHost(extent.hostOffset!, out);
      case 'unallocated':
        return this.readBacking(extent.offset, out);
      case 'compressed': {
        const cluster = await this.compressedCluster(extent.compressed!);
        out.set(cluster.subarray(extent.inCluster!, extent.inCluster! + out.length));
        return;
      }
      default:
        out.fill(0);
    }
  }

  /** Read host bytes; the part past the end of the file reads as zeroes. */
  private async readHost(hostOffset: number, out: Uint8Array): Promise<void> {
    const available = Math.max(0, Math.min(out.length, this.file.length - hostOffset));
    if (available > 0) await this.file.read(hostOffset, out.subarray(0, available));
    out.fill(0, available);
  }

  /** Read guest bytes from the backing chain; past its end (or without one) zeroes. */
  private async readBacking(guestOffset: number, out: Uint8Array): Promise<void> {
    const backing = this.backing;
    const available = backing ? Math.max(0, Math.min(out.length, backing.length - guestOffset)) : 0;
    if (available > 0) await backing!.read(guestOffset, out.subarray(0, available));
    out.fill(0, available);
  }

  private compressedCluster(extent: CompressedExtent): Promise<Uint8Array> {
    if (this.lastCompressed?.hostOffset === extent.hostOffset) return this.lastCompressed.data;
    const data = readCompressedCluster(this.file, extent, this.clusterSize);
    const entry = { hostOffset: extent.hostOffset, data };
    this.lastCompressed = entry;
    data.catch(() => {
      if (this.lastCompressed === entry) this.lastCompressed = undefined;
    });
    return data;
  }

  // ------------------------------------------------------------- mapping

  /** Host offset of the L2 table for L1 index, 0 when unallocated; validates the entry. */
  private l2Offset(l1Index: number): number {
    const [hi, lo] = readEntryWords(this.l1View, l1Index * 8);
    const offset = entryOffset(hi, lo);
    if (offset === 0) return 0;
    if (offset % this.clusterSize !== 0 || entryUnalignedBits(hi, lo) !== 0) {
      throw new LivebackupError('CORRUPT_IMAGE', `qcow2 L1 entry ${l1Index} of '${this.settings.filename}' has an unaligned L2 table offset ${offset}`);
    }
    if (this.overlapsFixedMetadata(offset, this.clusterSize)) {
      throw new LivebackupError('CORRUPT_IMAGE', `qcow2 L2 table at ${offset} (L1 entry ${l1Index}) overlaps the header, L1 table or refcount table`);
    }
    return offset;
  }

  /** True when [offset, offset + bytes) overlaps the header cluster, the L1 table or the refcount table. */
  private overlapsFixedMetadata(offset: number, bytes: number): boolean {
    const end = offset + bytes;
    if (offset < this.clusterSize) return true;
    const l1End = this.l1TableOffset + this.l1.length;
    if (this.l1.length > 0 && offset < l1End && this.l1TableOffset < end) return true;
    const reftableOffset = this.refcounts ? this.refcounts.tableOffset : this.header.refcountTableOffset;
    const reftableBytes = (this.refcounts ? this.refcounts.tableClusters : this.header.refcountTableClusters) * this.clusterSize;
    return offset < reftableOffset + reftableBytes && reftableOffset < end;
  }

  private l1Copied(l1Index: number): boolean {
    return entryCopied(this.l1View.getUint32(l1Index * 8));
  }

  /** The L2 table for an L1 index, or undefined when unallocated; a promise only when it must be loaded. */
  private lookupL2(l1Index: number): MetadataTable | undefined | Promise<MetadataTable | undefined> {
    const offset = this.l2Offset(l1Index);
    return offset === 0 ? undefined : (this.l2Cache.peek(offset) ?? this.l2Cache.get(offset));
  }

  /**
   * The extents covering [offset, offset + bytes), merged where contiguous
   * and alike. With a finite `maxExtents` it stops early: once more than
   * `maxExtents` extents exist and the newest cannot continue a compressed
   * run at the head (block status merges those), so the first `maxExtents`
   * extents are complete and the rest of the list may be cut short.
   */
  private async mapRange(offset: number, bytes: number, maxExtents: number): Promise<Extent[]> {
    const extents: Extent[] = [];
    const end = offset + bytes;
    for (let position = offset; position < end && extents.length < maxExtents; ) {
      const l1Index = Math.floor(position / this.bytesPerL2);
      const chunkEnd = Math.min(end, (l1Index + 1) * this.bytesPerL2);
      const found = this.lookupL2(l1Index);
      const table = found instanceof Promise ? await found : found;
      if (!table) pushExtent(extents, { offset: position, bytes: chunkEnd - position, kind: 'unallocated' });
      else if (this.mapInTable(table, position, chunkEnd, extents, maxExtents)) break;
      position = chunkEnd;
    }
    return extents;
  }

  /** Append the extents of [from, to) within one L2 table; true when it stopped early (see mapRange). */
  private mapInTable(table: MetadataTable, from: number, to: number, extents: Extent[], maxExtents: number): boolean {
    const view = table.view;
    for (let position = from; position < to; ) {
      if (extents.length > maxExtents && !continuesCompressedRun(extents)) return true;
      const cluster = Math.floor(position / this.clusterSize);
      const clusterStart = cluster * this.clusterSize;
      const clusterEnd = Math.min(to, clusterStart + this.clusterSize);
      const index = (cluster % this.l2Entries) * this.entrySize;
      const [hi, lo] = readEntryWords(view, index);
      if (entryCompressed(hi)) {
        extents.push({
          offset: position,
          bytes: clusterEnd - position,
          kind: 'compressed',
          compressed: decodeCompressed(hi, lo, this.clusterBits),
          inCluster: position - clusterStart,
        });
      } else if (this.header.extendedL2) {
        const zeroBits = view.getUint32(index + 8);
        const allocBits = view.getUint32(index + 12);
        const host = allocBits !== 0 ? this.validHost(hi, lo, position) : 0;
        for (let sub = position; sub < clusterEnd; ) {
          const subIndex = Math.floor((sub - clusterStart) / this.subclusterSize);
          const subEnd = Math.min(clusterEnd, clusterStart + (subIndex + 1) * this.subclusterSize);
          const bit = 1 << subIndex;
          if (allocBits & bit) {
            pushExtent(extents, { offset: sub, bytes: subEnd - sub, kind: 'data', hostOffset: host + (sub - clusterStart) });
          } else {
            pushExtent(extents, { offset: sub, bytes: subEnd - sub, kind: zeroBits & bit ? 'zero' : 'unallocated' });
          }
          sub = subEnd;
        }
      } else if (entryZero(lo)) {
        // A zero cluster may keep its host cluster (QEMU's "zero, allocated"): report where it lies.
        const kept = entryOffset(hi, lo) !== 0 ? this.validHost(hi, lo, position) + (position - clusterStart) : undefined;
        pushExtent(extents, { offset: position, bytes: clusterEnd - position, kind: 'zero', hostOffset: kept });
      } else if (entryOffset(hi, lo) === 0) {
        pushExtent(extents, { offset: position, bytes: clusterEnd - position, kind: 'unallocated' });
      } else {
        const host = this.validHost(hi, lo, position);
        pushExtent(extents, { offset: position, bytes: clusterEnd - position, kind: 'data', hostOffset: host + (position - clusterStart) });
      }
      position = clusterEnd;
    }
    return false;
  }

  /**
   * The preallocated host cluster of a zero cluster entry, checked to be
   * aligned and clear of the fixed metadata (it need not lie inside the file).
   */
  private zeroClusterHost(hi: number, lo: number, guestOffset: number): number {
    const host = entryOffset(hi, lo);
    if (host % this.clusterSize !== 0 || (lo & 0x1fe) !== 0 || (hi & 0x3f000000) !== 0 || this.overlapsFixedMetadata(host, this.clusterSize)) {
      throw new LivebackupError('CORRUPT_IMAGE', `qcow2 zero cluster entry for guest offset ${guestOffset} has an invalid host offset ${host}`);
    }
    return host;
  }

  /** The host cluster offset of a standard entry, checked to be aligned and inside the file. */
  private validHost(hi: number, lo: number, guestOffset: number): number {
    const host = entryOffset(hi, lo);
    if (host % this.clusterSize !== 0 || entryUnalignedBits(hi, lo) !== 0) {
      throw new LivebackupError('CORRUPT_IMAGE', `qcow2 L2 entry for guest offset ${guestOffset} has an unaligned host offset ${host}`);
    }
    if (host === 0 || host >= this.file.length) {
      throw new LivebackupError(
        'CORRUPT_IMAGE',
        `qcow2 L2 entry for guest offset ${guestOffset} points to host offset ${host}, outside the image file of ${this.file.length} bytes`,
      );
    }
    if (this.overlapsFixedMetadata(host, this.clusterSize)) {
      throw new LivebackupError('CORRUPT_IMAGE', `qcow2 L2 entry for guest offset ${guestOffset} points to host offset ${host}, inside the image's own metadata`);
    }
    return host;
  }

  // -------------------------------------------------------------- writes

  async write(offset: number, buf: Uint8Array, flags: WriteFlags): Promise<void> {
    await this.withClusters(offset, buf.length, () => this.writeLocked(offset, buf));
    if (flags.fua) await this.flush();
  }

  async writeZeroes(offset: number, bytes: number, flags: WriteZeroesFlags): Promise<void> {
    if (this.header.version < 3) {
      throw new LivebackupError('UNSUPPORTED', 'qcow2 version 2 images have no zero clusters', { errno: 'ENOTSUP' });
    }
    await this.withClusters(offset, bytes, () => this.zeroLocked(offset, bytes, flags.mayUnmap === true));
    if (flags.fua) await this.flush();
  }

  /** Make [offset, offset + bytes) read as zeroes (clusters held by the caller; version 3 images). */
  private async zeroLocked(offset: number, bytes: number, mayUnmap: boolean): Promise<void> {
    const end = offset + bytes;
    const firstWhole = Math.ceil(offset / this.clusterSize) * this.clusterSize;
    const endWhole = Math.floor(end / this.clusterSize) * this.clusterSize;
    if (firstWhole >= endWhole) {
      await this.zeroPartial(offset, end);
      return;
    }
    if (offset < firstWhole) await this.zeroPartial(offset, firstWhole);
    await this.changeWholeClusters(firstWhole, endWhole, mayUnmap ? 'zero-unmap' : 'zero');
    if (endWhole < end) await this.zeroPartial(endWhole, end);
  }

  async discard(offset: number, bytes: number): Promise<void> {
    const firstWhole = Math.ceil(offset / this.clusterSize) * this.clusterSize;
    const endWhole = Math.floor((offset + bytes) / this.clusterSize) * this.clusterSize;
    if (firstWhole >= endWhole) return;
    await this.withClusters(firstWhole, endWhole - firstWhole, () => this.changeWholeClusters(firstWhole, endWhole, 'discard'));
  }

  /** Run `critical` holding the guest clusters of the range; flush afterwards if caches fill up with dirty tables. */
  private async withClusters(offset: number, bytes: number, critical: () => Promise<void>): Promise<void> {
    this.checkWritable();
    const first = Math.floor(offset / this.clusterSize);
    const end = Math.ceil((offset + bytes) / this.clusterSize);
    const release = await this.locks.acquire(first, end);
    try {
      await critical();
    } finally {
      release();
    }
    if (this.cachesOverCommitted()) await this.flushMetadata(true);
  }

  /** True when dirty tables make a cache exceed its capacity by far: a flush is due. */
  private cachesOverCommitted(): boolean {
    return this.l2Cache.overCommitted || this.refcounts!.overCommitted;
  }

  private checkWritable(): void {
    if (this.settings.readOnly || !this.refcounts) {
      throw new LivebackupError('READ_ONLY', `qcow2 image '${this.settings.filename}' is open read-only`, { errno: 'EPERM' });
    }
  }

  /** Zero a part of one cluster by writing zero data, unless it already reads as zeroes. */
  private async zeroPartial(from: number, to: number): Promise<void> {
    const [extent] = await this.mapRange(from, to - from, 1);
    if (extent && extent.bytes >= to - from && (extent.kind === 'zero' || (extent.kind === 'unallocated' && !this.backing))) return;
    await this.writeLocked(from, new Uint8Array(to - from));
  }

  /**
   * Write `data` at guest `offset` (clusters held by the caller): in place
   * into clusters this image owns alone, into new clusters otherwise
   * (filling the uncovered part of a partly written cluster from its old
   * content), then point the L2 entries at the new clusters.
   */
  private async writeLocked(offset: number, data: Uint8Array): Promise<void> {
    const cs = this.clusterSize;
    const end = offset + data.length;
    const first = Math.floor(offset / cs);
    const count = Math.ceil(end / cs) - first;
    const hosts = new Float64Array(count);
    /**
     * 1: needs a new cluster, 2: rewrites a preallocated zero cluster in place (entry changes, no allocation),
     * 3: got a new cluster past the end of the file (reads as zeroes already, so zero fills are skipped).
     */
    const needs = new Uint8Array(count);
    const releases: number[] = [];
    const tablesToPrepare = new Set<number>();
    let headFill: FillSource | undefined;
    let tailFill: FillSource | undefined;
    let newClusters = 0;

    // 1. Classify every cluster from its current entry.
    for (let i = 0; i < count; ) {
      const l1Index = Math.floor((first + i) / this.l2Entries);
      const chunkEnd = Math.min(count, (l1Index + 1) * this.l2Entries - first);
      const table = await this.lookupL2(l1Index);
      for (; i < chunkEnd; i++) {
        const cluster = first + i;
        const clusterStart = cluster * cs;
        const partial = (i === 0 && offset > clusterStart) || (i === count - 1 && end < clusterStart + cs);
        let fill: FillSource = { kind: this.backing ? 'backing' : 'zero' };
        if (table) {
          const [hi, lo] = readEntryWords(table.view, (cluster % this.l2Entries) * this.entrySize);
          const host = entryCompressed(hi) ? 0 : entryOffset(hi, lo);
          if (entryCompressed(hi)) {
            const extent = decodeCompressed(hi, lo, this.clusterBits);
            fill = { kind: 'compressed', extent };
            releases.push(...compressedClusters(extent, this.clusterBits));
          } else if (entryZero(lo)) {
            fill = { kind: 'zero' };
            if (host !== 0) {
              const preallocated = this.zeroClusterHost(hi, lo, clusterStart);
              if (entryCopied(hi)) {
                hosts[i] = preallocated;
                needs[i] = 2;
              } else {
                releases.push(preallocated / cs);
              }
            }
          } else if (host !== 0) {
            const valid = this.validHost(hi, lo, clusterStart);
            if (entryCopied(hi)) {
              hosts[i] = valid;
              continue;
            }
            fill = { kind: 'host', hostOffset: valid };
            releases.push(valid / cs);
          }
        }
        if (needs[i] === 0) {
          needs[i] = 1;
          newClusters++;
        }
        tablesToPrepare.add(l1Index);
        if (partial && i === 0) headFill = fill;
        if (partial && i === count - 1) tailFill = fill;
      }
    }

    // 2. Make the L2 tables writable and allocate the new clusters.
    if (tablesToPrepare.size > 0) {
      await this.allocator.run(async () => {
        await this.beforeFirstMetadataChange();
        for (const l1Index of tablesToPrepare) await this.prepareL2(l1Index);
        const allocated = await this.refcounts!.allocate(newClusters);
        // Host space past the end of the file has never been written: it reads as zeroes.
        const fileEnd = this.file.length;
        let next = 0;
        for (let i = 0; i < count; i++) {
          if (needs[i] !== 1) continue;
          hosts[i] = allocated[next++]! * cs;
          if (hosts[i]! >= fileEnd) needs[i] = 3;
        }
      });
    }

    // 3. Write the data, coalescing runs that are contiguous on the host, and the fills.
    const io: Promise<void>[] = [];
    let runHost = -1;
    let runFrom = 0;
    let runTo = 0;
    const flushRun = () => {
      if (runHost >= 0) io.push(writeHost(this.file, runHost, data.subarray(runFrom - offset, runTo - offset)));
      runHost = -1;
    };
    for (let i = 0; i < count; i++) {
      const clusterStart = (first + i) * cs;
      const from = Math.max(offset, clusterStart);
      const to = Math.min(end, clusterStart + cs);
      const host = hosts[i]! + (from - clusterStart);
      if (runHost >= 0 && runHost + (runTo - runFrom) === host) {
        runTo = to;
      } else {
        flushRun();
        runHost = host;
        runFrom = from;
        runTo = to;
      }
    }
    flushRun();
    if (headFill && needsFill(needs[0]!, headFill)) io.push(this.fillCluster(first, hosts[0]!, 0, offset - first * cs, headFill));
    if (tailFill && needsFill(needs[count - 1]!, tailFill)) {
      const lastStart = (first + count - 1) * cs;
      io.push(this.fillCluster(first + count - 1, hosts[count - 1]!, end - lastStart, cs, tailFill));
    }
    await Promise.all(io);

    // 4. Point the L2 entries at the new clusters; release the old ones once that is durable.
    if (tablesToPrepare.size > 0) {
      for (const l1Index of tablesToPrepare) {
        await this.modifyL2(l1Index, (table) => {
          const from = Math.max(first, l1Index * this.l2Entries);
          const to = Math.min(first + count, (l1Index + 1) * this.l2Entries);
          for (let cluster = from; cluster < to; cluster++) {
            const i = cluster - first;
            if (needs[i] !== 0) writeStandardEntry(table.view, (cluster % this.l2Entries) * this.entrySize, hosts[i]!, true, false);
          }
        });
      }
      this.refcounts!.queueDecrement(releases);
      this.dropCompressedCache();
    }
  }

  /** Write bytes [from, to) of guest cluster `cluster` into its new host cluster from the old content. */
  private async fillCluster(cluster: number, host: number, from: number, to: number, source: FillSource): Promise<void> {
    if (to <= from) return;
    const buf = new Uint8Array(to - from);
    const guest = cluster * this.clusterSize + from;
    switch (source.kind) {
      case 'backing':
        await this.readBacking(guest, buf);
        break;
      case 'host':
        await this.readHost(source.hostOffset + from, buf);
        break;
      case 'compressed':
        buf.set((await readCompressedCluster(this.file, source.extent, this.clusterSize)).subarray(from, to));
        break;
      default:
        break;
    }
    await writeHost(this.file, host + from, buf);
  }

  /**
   * Make whole clusters [from, to) read as zeroes ('zero', keeping owned
   * preallocated clusters; 'zero-unmap', freeing them) or discard them
   * ('discard': unallocated without a backing file, zero clusters with one;
   * version 2 images with a backing file keep their data).
   */
  private async changeWholeClusters(from: number, to: number, mode: 'zero' | 'zero-unmap' | 'discard'): Promise<void> {
    const cs = this.clusterSize;
    const v3 = this.header.version >= 3;
    if (mode === 'discard' && !v3 && this.backing) return;
    const toZeroFlag = mode !== 'discard' || this.backing !== null;
    const first = from / cs;
    const end = to / cs;
    for (let cluster = first; cluster < end; ) {
      const l1Index = Math.floor(cluster / this.l2Entries);
      const chunkEnd = Math.min(end, (l1Index + 1) * this.l2Entries);
      const table = await this.lookupL2(l1Index);
      if (!table && !this.backing) {
        cluster = chunkEnd;
        continue;
      }
      // Decide the new entries from the current ones.
      const updates: Array<{ cluster: number; host: number; zero: boolean }> = [];
      const releases: number[] = [];
      for (let c = cluster; c < chunkEnd; c++) {
        let hi = 0;
        let lo = 0;
        if (table) [hi, lo] = readEntryWords(table.view, (c % this.l2Entries) * this.entrySize);
        const compressed = entryCompressed(hi);
        const host = compressed ? 0 : entryOffset(hi, lo);
        const keepHost = mode === 'zero' && !compressed && host !== 0 && entryCopied(hi);
        const unallocated = !compressed && host === 0 && !entryZero(lo);
        if (!toZeroFlag && unallocated) continue;
        if (toZeroFlag && !keepHost && !compressed && host === 0 && entryZero(lo)) continue;
        if (toZeroFlag && unallocated && !this.backing) continue;
        if (keepHost && entryZero(lo)) continue;
        const checkedHost = host === 0 ? 0 : entryZero(lo) ? this.zeroClusterHost(hi, lo, c * cs) : this.validHost(hi, lo, c * cs);
        if (compressed) releases.push(...compressedClusters(decodeCompressed(hi, lo, this.clusterBits), this.clusterBits));
        else if (checkedHost !== 0 && !keepHost) releases.push(checkedHost / cs);
        updates.push({ cluster: c, host: keepHost ? checkedHost : 0, zero: toZeroFlag });
      }
      if (updates.length > 0) {
        await this.allocator.run(async () => {
          await this.beforeFirstMetadataChange();
          await this.prepareL2(l1Index);
        });
        await this.modifyL2(l1Index, (writable) => {
          for (const update of updates) {
            const position = (update.cluster % this.l2Entries) * this.entrySize;
            if (update.host === 0 && !update.zero) clearEntry(writable.view, position);
            else writeStandardEntry(writable.view, position, update.host, update.host !== 0, update.zero);
          }
          this.refcounts!.queueDecrement(releases);
        });
        this.dropCompressedCache();
      }
      cluster = chunkEnd;
    }
  }

  private dropCompressedCache(): void {
    this.lastCompressed = undefined;
  }

  /**
   * Make the L2 table of an L1 index writable (allocator mutex held):
   * allocate a new one, or copy a table shared with a snapshot.
   */
  private async prepareL2(l1Index: number): Promise<void> {
    const offset = this.l2Offset(l1Index);
    if (offset !== 0 && this.l1Copied(l1Index)) return;
    const refcounts = this.refcounts!;
    const shared = offset !== 0 ? await this.l2Cache.get(offset) : undefined;
    const [cluster] = await refcounts.allocate(1);
    const newOffset = cluster! * this.clusterSize;
    this.l2Cache.create(newOffset, shared?.data);
    writeStandardEntry(this.l1View, l1Index * 8, newOffset, true, false);
    this.markL1Dirty(l1Index);
    if (offset !== 0) {
      refcounts.queueDecrement([offset / this.clusterSize]);
      this.l2Cache.drop(offset);
    }
  }

  /** Modify the (writable) L2 table of an L1 index synchronously, reloading it if it was evicted meanwhile. */
  private async modifyL2(l1Index: number, modify: (table: MetadataTable) => void): Promise<void> {
    for (;;) {
      const offset = this.l2Offset(l1Index);
      const table = await this.l2Cache.get(offset);
      if (this.l2Offset(l1Index) !== offset || this.l2Cache.peek(offset) !== table) continue;
      modify(table);
      this.l2Cache.markDirty(table);
      return;
    }
  }

  private markL1Dirty(l1Index: number): void {
    this.l1Generation++;
    this.l1DirtyFrom = Math.min(this.l1DirtyFrom, l1Index);
    this.l1DirtyTo = Math.max(this.l1DirtyTo, l1Index + 1);
  }

  /**
   * Before metadata changes for the first time since the last flush (allocator
   * mutex held): set the dirty bit when refcounts are lazy, and clear
   * autoclear feature bits (their extensions, e.g. bitmaps, are not kept up to date).
   */
  private async beforeFirstMetadataChange(): Promise<void> {
    let changed = false;
    if (this.settings.lazyRefcounts && !(this.incompatibleFeatures & INCOMPAT_DIRTY)) {
      this.incompatibleFeatures |= INCOMPAT_DIRTY;
      changed = true;
    }
    if (this.autoclearFeatures !== 0 && this.header.version >= 3) {
      this.autoclearFeatures = 0;
      changed = true;
    }
    if (changed) {
      await this.writeFeatureWords();
      await this.file.flush();
    }
  }

  private async writeFeatureWords(): Promise<void> {
    const words = this.settings.featureWords.slice();
    const view = new DataView(words.buffer);
    view.setUint32(4, this.incompatibleFeatures >>> 0);
    view.setUint32(20, this.autoclearFeatures >>> 0);
    await this.file.write(HeaderField.incompatibleFeatures, words, {});
  }

  // --------------------------------------------------------------- flush

  async flush(): Promise<void> {
    if (this.settings.readOnly || !this.refcounts || this.closed) return;
    await this.flushMetadata();
  }

  /**
   * Write all metadata changes in crash-safe order:
   *  1. take a copy of all dirty metadata at one instant (allocator mutex
   *     held, so no allocation is half done); every L2 entry in it points
   *     to data whose write had completed;
   *  2. flush the file: that data is durable;
   *  3. refcount blocks and table (increments), then the header's refcount
   *     table pointer when the table moved; flush;
   *  4. L2 tables; flush;
   *  5. L1 entries; flush;
   *  6. apply the decrements queued with the changes now durable; write; flush;
   *  7. clear the dirty bit when nothing is pending.
   * With `onlyIfOverCommitted` it does nothing unless the caches still
   * need relief when its turn comes.
   */
  private flushMetadata(onlyIfOverCommitted = false): Promise<void> {
    return this.flusher.run(async () => {
      // Writers that queued up behind one cache-relieving flush have nothing left to do.
      if (onlyIfOverCommitted && !this.cachesOverCommitted()) return;
      const refcounts = this.refcounts!;
      const taken = await this.allocator.run(async () => ({
        ...refcounts.snapshot(),
        l2: this.l2Cache.snapshotDirty(),
        l1: this.snapshotL1(),
        lastRead: this.nextReadSeq - 1,
      }));
      await this.file.flush();
      await this.writeRefcountMetadata(taken.refcounts, !this.settings.lazyRefcounts);
      if (taken.l2.length > 0) {
        await this.l2Cache.writeBack(taken.l2);
        await this.file.flush();
      }
      if (taken.l1) {
        await writeHost(this.file, this.l1TableOffset + taken.l1.from * 8, taken.l1.bytes);
        this.markL1Written(taken.l1.generation);
        await this.file.flush();
      }
      if (taken.decrements.length > 0) {
        await this.allocator.run(async () => {
          const freed = await refcounts.applyDecrements(taken.decrements, taken.lastRead);
          for (const cluster of freed) this.l2Cache.drop(cluster * this.clusterSize);
        });
        await refcounts.writeDirtyBlocks();
        await this.file.flush();
      }
      this.releaseQuarantine();
      await this.allocator.run(async () => {
        if (!(this.incompatibleFeatures & INCOMPAT_DIRTY) || refcounts.hasPendingWork) return;
        if (this.l2Cache.dirtyCount > 0 || this.l1Generation !== this.l1WrittenGeneration) return;
        this.incompatibleFeatures &= ~INCOMPAT_DIRTY;
        await this.writeFeatureWords();
        await this.file.flush();
      });
    });
  }

  /**
   * Write refcount blocks and table from a snapshot; when the table moved,
   * make it durable and then point the header at it. With `sync`, the
   * refcounts are durable on return.
   */
  private async writeRefcountMetadata(snapshot: RefcountSnapshot, sync: boolean): Promise<void> {
    const { blocks, table } = snapshot;
    if (blocks.length === 0 && !table) return;
    const tableMoved = table !== undefined && (table.offset !== this.persistedReftable.offset || table.clusters !== this.persistedReftable.clusters);
    await this.refcounts!.write(snapshot);
    if (sync || tableMoved) await this.file.flush();
    if (tableMoved) {
      const fields = new Uint8Array(12);
      const view = new DataView(fields.buffer);
      writeU64(view, 0, table.offset);
      view.setUint32(8, table.clusters);
      await this.file.write(HeaderField.refcountTableOffset, fields, {});
      await this.file.flush();
      this.persistedReftable = { offset: table.offset, clusters: table.clusters };
    }
  }

  private snapshotL1(): { from: number; bytes: Uint8Array; generation: number } | undefined {
    if (this.l1Generation === this.l1WrittenGeneration) return undefined;
    // The dirty range is reset only once written (see markL1Written), so a failed write is retried.
    const from = this.l1DirtyFrom;
    const bytes = this.l1.slice(from * 8, this.l1DirtyTo * 8);
    return { from, bytes, generation: this.l1Generation };
  }

  /** Record that the L1 snapshot of `generation` is on disk. */
  private markL1Written(generation: number): void {
    this.l1WrittenGeneration = Math.max(this.l1WrittenGeneration, generation);
    if (this.l1Generation === this.l1WrittenGeneration) {
      this.l1DirtyFrom = Number.POSITIVE_INFINITY;
      this.l1DirtyTo = 0;
    }
  }

  private releaseQuarantine(): void {
    let oldest = this.nextReadSeq;
    for (const seq of this.readsInFlight) oldest = Math.min(oldest, seq);
    this.refcounts?.releaseQuarantine(oldest);
  }

  // -------------------------------------------------------------- resize

  /**
   * Grow the virtual disk to `length` bytes (a multiple of 512); new bytes
   * read as zeroes, or from the backing file where it covers them, as in
   * QEMU. The L1 table grows in place when its last cluster has room,
   * otherwise it moves: new table written and durable, then the header
   * switched, then the old clusters released. Shrinking is refused.
   */
  async truncate(length: number): Promise<void> {
    this.checkWritable();
    if (length < this.virtualSize) {
      throw new LivebackupError('UNSUPPORTED', `shrinking qcow2 image '${this.settings.filename}' is not supported`);
    }
    if (length % 512 !== 0) {
      throw new LivebackupError('INVALID_ARGUMENT', `qcow2 image size must be a multiple of 512 bytes, not ${length}`);
    }
    // Hold every cluster: no write-type request runs, so after the flush the L1 table on disk
    // equals the one in memory, and only this code changes it until the end.
    const oldSize = this.virtualSize;
    const release = await this.locks.acquire(0, Number.MAX_SAFE_INTEGER);
    try {
      await this.flushMetadata();
      await this.allocator.run(async () => {
        await this.beforeFirstMetadataChange();
        const entries = Math.ceil(length / this.bytesPerL2);
        const oldEntries = this.l1.length / 8;
        if (entries * 8 > MAX_L1_BYTES) {
          throw new LivebackupError('INVALID_ARGUMENT', `size ${length} needs an L1 table larger than ${MAX_L1_BYTES} bytes`);
        }
        const cs = this.clusterSize;
        let l1Offset = this.l1TableOffset;
        const released: number[] = [];
        let newL1 = this.l1;
        if (entries > oldEntries) {
          const l1 = new Uint8Array(entries * 8);
          l1.set(this.l1);
          newL1 = l1;
          const inPlace = oldEntries > 0 && entries * 8 <= Math.ceil((oldEntries * 8) / cs) * cs;
          if (inPlace) {
            await writeHost(this.file, l1Offset + oldEntries * 8, l1.subarray(oldEntries * 8));
          } else {
            const clusters = Math.ceil((entries * 8) / cs);
            const start = await this.refcounts!.allocateRun(clusters);
            await this.writeRefcountMetadata(this.refcounts!.snapshotMetadata(), true);
            const padded = new Uint8Array(clusters * cs);
            padded.set(l1);
            await writeHost(this.file, start * cs, padded);
            if (oldEntries > 0) {
              const oldClusters = Math.ceil((oldEntries * 8) / cs);
              for (let cluster = 0; cluster < oldClusters; cluster++) released.push(this.l1TableOffset / cs + cluster);
            }
            l1Offset = start * cs;
          }
          await this.file.flush();
        }
        const fields = new Uint8Array(24);
        const view = new DataView(fields.buffer);
        writeU64(view, 0, length);
        view.setUint32(12, newL1.length / 8);
        writeU64(view, 16, l1Offset);
        await this.file.write(HeaderField.size, fields, {});
        await this.file.flush();
        this.l1 = newL1;
        this.l1View = new DataView(newL1.buffer, newL1.byteOffset, newL1.byteLength);
        this.l1TableOffset = l1Offset;
        this.virtualSize = length;
        this.refcounts!.queueDecrement(released);
      });
      // Like QEMU: where a longer backing file would show through the new area, zero it.
      const backingEnd = this.backing ? Math.min(length, this.backing.length) : 0;
      if (backingEnd > oldSize) await this.zeroGrownArea(oldSize, backingEnd);
      await this.flushMetadata();
    } finally {
      release();
    }
  }

  /** Zero [from, to) of a grown disk (every cluster held): zero clusters on version 3, zero data on version 2. */
  private async zeroGrownArea(from: number, to: number): Promise<void> {
    if (this.header.version >= 3) return this.zeroLocked(from, to - from, false);
    const chunk = new Uint8Array(Math.min(to - from, 4 * 1024 * 1024));
    for (let offset = from; offset < to; offset += chunk.length) {
      await this.writeLocked(offset, chunk.subarray(0, Math.min(chunk.length, to - offset)));
    }
  }

  // --------------------------------------------------------- block status

  async blockStatus(offset: number, bytes: number): Promise<DriverBlockStatus> {
    const chunkEnd = Math.min(offset + bytes, (Math.floor(offset / this.bytesPerL2) + 1) * this.bytesPerL2);
    const extents = await this.mapRange(offset, chunkEnd - offset, 1);
    const head = extents[0]!;
    const state = head.kind === 'compressed' ? 'data' : head.kind;
    let run = head.bytes;
    for (let i = 1; i < extents.length; i++) {
      const next = extents[i]!;
      const nextState = next.kind === 'compressed' ? 'data' : next.kind;
      if (nextState !== state) break;
      if (state === 'data' && (head.kind !== next.kind || head.kind === 'data')) break;
      if (state === 'zero' && (head.hostOffset === undefined) !== (next.hostOffset === undefined)) break;
      if (state === 'zero' && head.hostOffset !== undefined && head.hostOffset + run !== next.hostOffset) break;
      run += next.bytes;
    }
    if (head.hostOffset !== undefined && (head.kind === 'data' || head.kind === 'zero')) {
      return { bytes: run, state, hostOffset: head.hostOffset, hostNode: this.file };
    }
    return { bytes: run, state };
  }

  async getLength(): Promise<number> {
    return this.virtualSize;
  }

  children(): readonly ChildLink[] {
    const links: ChildLink[] = [{ role: 'file', node: this.file, owned: this.fileOwned }];
    if (this.backing) links.push({ role: 'backing', node: this.backing, owned: this.backingOwned });
    return links;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  async describe(): Promise<DriverDescription> {
    const v3 = this.header.version >= 3;
    const data: Record<string, unknown> = v3
      ? {
          compat: '1.1',
          'compression-type': 'zlib',
          'lazy-refcounts': (this.header.compatibleFeatures & COMPAT_LAZY_REFCOUNTS) !== 0,
          'refcount-bits': 1 << this.header.refcountOrder,
          corrupt: (this.incompatibleFeatures & INCOMPAT_CORRUPT) !== 0,
          'extended-l2': this.header.extendedL2,
        }
      : { compat: '0.10', 'compression-type': 'zlib', 'refcount-bits': 16 };
    const description: DriverDescription = {
      clusterSize: this.clusterSize,
      dirtyFlag: (this.incompatibleFeatures & INCOMPAT_DIRTY) !== 0,
      formatSpecific: { type: 'qcow2', data },
    };
    if (this.header.backingFile !== undefined) description.backingFilename = this.header.backingFile;
    if (this.header.backingFormat !== undefined) description.backingFormat = this.header.backingFormat;
    return description;
  }
}

/** Append an extent, merging it into the previous one when contiguous and alike. */
/** True when the list is a compressed head followed only by compressed extents: one block status run. */
function continuesCompressedRun(extents: readonly Extent[]): boolean {
  return extents[0]!.kind === 'compressed' && extents[extents.length - 1]!.kind === 'compressed';
}

function pushExtent(extents: Extent[], extent: Extent): void {
  const last = extents[extents.length - 1];
  if (last && last.kind === extent.kind && last.offset + last.bytes === extent.offset && extent.kind !== 'compressed') {
    const lastHost = last.hostOffset === undefined ? undefined : last.hostOffset + last.bytes;
    if (lastHost === extent.hostOffset) {
      last.bytes += extent.bytes;
      return;
    }
  }
  extents.push(extent);
}

/** Make a 64-bit table entry all zero (unallocated). */
function clearEntry(view: DataView, position: number): void {
  view.setUint32(position, 0);
  view.setUint32(position + 4, 0);
}

/** Whether the uncovered part of a newly written cluster must be filled (see writeLocked's `needs`). */
function needsFill(need: number, source: FillSource): boolean {
  if (need === 0) return false;
  return !(need === 3 && source.kind === 'zero');
}
