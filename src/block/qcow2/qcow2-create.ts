/**
 * Creating qcow2 image files (qemu-img create -f qcow2 -o ...). The layout:
 * header cluster, refcount table, refcount blocks, L1 table, and with
 * preallocation=metadata every L2 table and data cluster, all refcounted.
 * Large images are written table by table, never held whole in memory.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { constants } from 'node:fs';
import type { CreateImageArgs } from '../driver-factory.js';
import { LivebackupError, ioError } from '../../errors.js';
import {
  COMPAT_LAZY_REFCOUNTS,
  EXT_BACKING_FORMAT,
  EXT_END,
  HeaderField,
  MAX_BACKING_FILE_NAME,
  MAX_CLUSTER_BITS,
  MAX_L1_BYTES,
  MAX_REFTABLE_BYTES,
  MIN_CLUSTER_BITS,
  QCOW2_MAGIC,
  V2_HEADER_LENGTH,
  V3_HEADER_LENGTH,
  writeStandardEntry,
  writeU64,
} from './qcow2-format.js';

/** Format options `create` understands. */
export const QCOW2_CREATE_OPTIONS: readonly string[] = [
  'cluster_size',
  'backing_file',
  'backing_fmt',
  'lazy_refcounts',
  'refcount_bits',
  'preallocation',
  'compat',
  'compression_type',
  'extended_l2',
];

interface CreateSettings {
  version: 2 | 3;
  clusterBits: number;
  refcountOrder: number;
  lazyRefcounts: boolean;
  preallocateMetadata: boolean;
  backingFile: string | undefined;
  backingFormat: string | undefined;
}

const invalid = (message: string) => new LivebackupError('INVALID_ARGUMENT', message);

/** A size option: a number of bytes, or a string with an optional k/M/G suffix. */
function parseSize(name: string, value: string | number | boolean): number {
  if (typeof value === 'number') return value;
  const match = typeof value === 'string' ? /^(\d+)([kKmMgG]?)$/.exec(value.trim()) : null;
  if (!match) throw invalid(`Parameter '${name}' expects a size, not '${String(value)}'`);
  const scale = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[match[2]!.toLowerCase()]!;
  return Number(match[1]) * scale;
}

function parseBool(name: string, value: string | number | boolean): boolean {
  if (typeof value === 'boolean') return value;
  if (value === 'on' || value === 'true') return true;
  if (value === 'off' || value === 'false') return false;
  throw invalid(`Parameter '${name}' expects 'on' or 'off', not '${String(value)}'`);
}

function parseSettings(options: Readonly<Record<string, string | number | boolean>>): CreateSettings {
  for (const name of Object.keys(options)) {
    if (!QCOW2_CREATE_OPTIONS.includes(name)) throw invalid(`Invalid option '${name}' for format 'qcow2'`);
  }
  const compat = String(options.compat ?? '1.1');
  let version: 2 | 3;
  if (compat === '0.10' || compat === 'v2') version = 2;
  else if (compat === '1.1' || compat === 'v3') version = 3;
  else throw invalid(`Invalid compatibility level: '${compat}' (use 0.10 or 1.1)`);

  const clusterSize = options.cluster_size === undefined ? 65536 : parseSize('cluster_size', options.cluster_size);
  const clusterBits = Math.log2(clusterSize);
  if (!Number.isInteger(clusterBits) || clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) {
    throw invalid(`Cluster size must be a power of two between 512 and 2048k, not ${clusterSize}`);
  }
  const refcountBits = options.refcount_bits === undefined ? 16 : Number(options.refcount_bits);
  const refcountOrder = Math.log2(refcountBits);
  if (!Number.isInteger(refcountOrder) || refcountOrder < 0 || refcountOrder > 6) {
    throw invalid(`Refcount width must be a power of two and may not exceed 64 bits, not ${String(options.refcount_bits)}`);
  }
  if (version === 2 && refcountBits !== 16) throw invalid('Different refcount widths than 16 bits require compatibility level 1.1 or above (use compat=1.1 or greater)');
  const lazyRefcounts = options.lazy_refcounts === undefined ? false : parseBool('lazy_refcounts', options.lazy_refcounts);
  if (lazyRefcounts && version === 2) throw invalid('Lazy refcounts only supported with compatibility level 1.1 and above (use compat=1.1 or greater)');
  const preallocation = String(options.preallocation ?? 'off');
  if (preallocation !== 'off' && preallocation !== 'metadata') {
    if (preallocation === 'falloc' || preallocation === 'full') {
      throw new LivebackupError('UNSUPPORTED', `qcow2 preallocation=${preallocation} is not supported (use off or metadata)`);
    }
    throw invalid(`Parameter 'preallocation' does not accept value '${preallocation}'`);
  }
  const compression = String(options.compression_type ?? 'zlib');
  if (compression === 'zstd') throw new LivebackupError('UNSUPPORTED', 'qcow2 compression_type=zstd is not supported (use zlib)');
  if (compression !== 'zlib') throw invalid(`Parameter 'compression_type' does not accept value '${compression}'`);
  if (options.extended_l2 !== undefined && parseBool('extended_l2', options.extended_l2)) {
    throw new LivebackupError('UNSUPPORTED', 'creating qcow2 images with extended_l2=on is not supported');
  }
  const backingFile = options.backing_file === undefined ? undefined : String(options.backing_file);
  const backingFormat = options.backing_fmt === undefined ? undefined : String(options.backing_fmt);
  if (backingFormat !== undefined && backingFile === undefined) throw invalid("Parameter 'backing_fmt' requires 'backing_file'");
  if (backingFile !== undefined && (backingFile === '' || Buffer.byteLength(backingFile) > MAX_BACKING_FILE_NAME)) {
    throw invalid(`Backing file name must be 1 to ${MAX_BACKING_FILE_NAME} bytes long`);
  }
  if (preallocation === 'metadata' && backingFile !== undefined) {
    throw invalid('Backing file and preallocation can only be used at the same time if preallocation=off');
  }
  return { version, clusterBits, refcountOrder, lazyRefcounts, preallocateMetadata: preallocation === 'metadata', backingFile, backingFormat };
}

/** Build the header cluster: fields, extensions, backing file name. */
function buildHeader(
  settings: CreateSettings,
  size: number,
  l1Size: number,
  l1Offset: number,
  reftableOffset: number,
  reftableClusters: number,
): Uint8Array {
  const clusterSize = 2 ** settings.clusterBits;
  const head = new Uint8Array(clusterSize);
  const view = new DataView(head.buffer);
  view.setUint32(HeaderField.magic, QCOW2_MAGIC);
  view.setUint32(HeaderField.version, settings.version);
  view.setUint32(HeaderField.clusterBits, settings.clusterBits);
  writeU64(view, HeaderField.size, size);
  view.setUint32(HeaderField.l1Size, l1Size);
  writeU64(view, HeaderField.l1TableOffset, l1Offset);
  writeU64(view, HeaderField.refcountTableOffset, reftableOffset);
  view.setUint32(HeaderField.refcountTableClusters, reftableClusters);
  let position = V2_HEADER_LENGTH;
  if (settings.version === 3) {
    view.setUint32(HeaderField.compatibleFeatures + 4, settings.lazyRefcounts ? COMPAT_LAZY_REFCOUNTS : 0);
    view.setUint32(HeaderField.refcountOrder, settings.refcountOrder);
    view.setUint32(HeaderField.headerLength, V3_HEADER_LENGTH);
    position = V3_HEADER_LENGTH;
  }
  const encoder = new TextEncoder();
  if (settings.backingFormat !== undefined) {
    const format = encoder.encode(settings.backingFormat);
    view.setUint32(position, EXT_BACKING_FORMAT);
    view.setUint32(position + 4, format.length);
    head.set(format, position + 8);
    position += 8 + Math.ceil(format.length / 8) * 8;
  }
  view.setUint32(position, EXT_END);
  view.setUint32(position + 4, 0);
  position += 8;
  if (settings.backingFile !== undefined) {
    const name = encoder.encode(settings.backingFile);
    if (position + name.length > clusterSize) throw invalid('Backing file name does not fit into the header cluster; use a larger cluster size');
    head.set(name, position);
    writeU64(view, HeaderField.backingFileOffset, position);
    view.setUint32(HeaderField.backingFileSize, name.length);
  }
  return head;
}

/**
 * Create a qcow2 image at args.filename (overwriting it). Throws
 * INVALID_ARGUMENT naming a bad or unknown format option, UNSUPPORTED for
 * features not implemented (zstd, extended_l2, falloc/full preallocation).
 */
export async function createQcow2(args: CreateImageArgs): Promise<void> {
  const settings = parseSettings(args.formatOptions);
  const clusterSize = 2 ** settings.clusterBits;
  const size = Math.ceil(args.size / 512) * 512;
  const l2Entries = clusterSize / 8;
  const dataClusters = Math.ceil(size / clusterSize);
  const l1Size = Math.ceil(dataClusters / l2Entries);
  if (l1Size * 8 > MAX_L1_BYTES) throw invalid(`Image size ${args.size} is too large for cluster size ${clusterSize}`);
  const l1Clusters = Math.ceil((l1Size * 8) / clusterSize);
  const l2Tables = settings.preallocateMetadata ? l1Size : 0;
  const preallocated = settings.preallocateMetadata ? dataClusters : 0;
  const entriesPerBlock = (clusterSize * 8) >> settings.refcountOrder;

  // Fixpoint: refcount blocks and table must cover every cluster, themselves included.
  let blocks = 1;
  let reftableClusters = 1;
  for (;;) {
    const total = 1 + reftableClusters + blocks + l1Clusters + l2Tables + preallocated;
    const needBlocks = Math.ceil(total / entriesPerBlock);
    const needTable = Math.ceil((needBlocks * 8) / clusterSize);
    if (needBlocks <= blocks && needTable <= reftableClusters) break;
    blocks = Math.max(blocks, needBlocks);
    reftableClusters = Math.max(reftableClusters, needTable);
  }
  if (reftableClusters * clusterSize > MAX_REFTABLE_BYTES) throw invalid(`Image size ${args.size} needs too much metadata for cluster size ${clusterSize}`);
  const reftableCluster = 1;
  const blocksCluster = reftableCluster + reftableClusters;
  const l1Cluster = blocksCluster + blocks;
  const l2Cluster = l1Cluster + l1Clusters;
  const dataCluster = l2Cluster + l2Tables;
  const totalClusters = dataCluster + preallocated;
  const l1Offset = l1Size > 0 ? l1Cluster * clusterSize : 0;

  let handle: FileHandle | undefined;
  try {
    handle = await open(args.filename, constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC, 0o644);
    const writeAt = async (bytes: Uint8Array, offset: number) => {
      for (let done = 0; done < bytes.length; ) {
        const { bytesWritten } = await handle!.write(bytes, done, bytes.length - done, offset + done);
        done += bytesWritten;
      }
    };
    await writeAt(buildHeader(settings, size, l1Size, l1Offset, reftableCluster * clusterSize, reftableClusters), 0);

    const reftable = new Uint8Array(reftableClusters * clusterSize);
    const reftableView = new DataView(reftable.buffer);
    for (let block = 0; block < blocks; block++) writeU64(reftableView, block * 8, (blocksCluster + block) * clusterSize);
    await writeAt(reftable, reftableCluster * clusterSize);

    const block = new Uint8Array(clusterSize);
    const one = refcountOneBlock(clusterSize, settings.refcountOrder);
    for (let index = 0; index < blocks; index++) {
      const covered = Math.min(entriesPerBlock, totalClusters - index * entriesPerBlock);
      if (covered <= 0) break;
      if (covered === entriesPerBlock) {
        await writeAt(one, (blocksCluster + index) * clusterSize);
      } else {
        block.fill(0);
        const bytes = Math.floor((covered << settings.refcountOrder) / 8);
        block.set(one.subarray(0, bytes));
        const restBits = (covered << settings.refcountOrder) % 8;
        if (restBits > 0) block[bytes] = one[bytes]! & ((1 << restBits) - 1);
        await writeAt(block, (blocksCluster + index) * clusterSize);
      }
    }

    if (l1Size > 0) {
      const l1 = new Uint8Array(l1Clusters * clusterSize);
      const l1View = new DataView(l1.buffer);
      if (settings.preallocateMetadata) {
        for (let index = 0; index < l1Size; index++) writeStandardEntry(l1View, index * 8, (l2Cluster + index) * clusterSize, true, false);
      }
      await writeAt(l1, l1Offset);
    }
    if (settings.preallocateMetadata) {
      const table = new Uint8Array(clusterSize);
      const tableView = new DataView(table.buffer);
      for (let index = 0; index < l2Tables; index++) {
        table.fill(0);
        const firstData = index * l2Entries;
        const count = Math.min(l2Entries, dataClusters - firstData);
        for (let entry = 0; entry < count; entry++) {
          writeStandardEntry(tableView, entry * 8, (dataCluster + firstData + entry) * clusterSize, true, false);
        }
        await writeAt(table, (l2Cluster + index) * clusterSize);
      }
    }
    await handle.truncate(totalClusters * clusterSize);
    await handle.sync();
  } catch (error) {
    if (error instanceof LivebackupError) throw error;
    throw ioError(`Could not create '${args.filename}'`, error);
  } finally {
    await handle?.close();
  }
}

/** A refcount block with every entry set to 1. */
function refcountOneBlock(clusterSize: number, refcountOrder: number): Uint8Array {
  const block = new Uint8Array(clusterSize);
  const bits = 1 << refcountOrder;
  if (bits < 8) {
    let byte = 0;
    for (let shift = 0; shift < 8; shift += bits) byte |= 1 << shift;
    block.fill(byte);
  } else {
    const bytes = bits / 8;
    for (let position = bytes - 1; position < clusterSize; position += bytes) block[position] = 1;
  }
  return block;
}
