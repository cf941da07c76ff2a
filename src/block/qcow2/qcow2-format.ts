/**
 * On-disk constants of the qcow2 format (docs: qcow2.txt) and the codecs
 * for its 64-bit table entries. All multi-byte values are big-endian.
 *
 * JavaScript numbers hold 53-bit integers exactly; host offsets are at most
 * 56 bits by the format, and any offset beyond 2^53 also lies far past the
 * end of every real file, so such entries are rejected as corrupt where
 * they are used.
 */

export const QCOW2_MAGIC = 0x514649fb;
export const MIN_CLUSTER_BITS = 9;
export const MAX_CLUSTER_BITS = 21;
/** Extended L2 entries need clusters of at least 16 KiB. */
export const MIN_EXTENDED_L2_CLUSTER_BITS = 14;
export const V2_HEADER_LENGTH = 72;
export const V3_MIN_HEADER_LENGTH = 104;
/** The header length we write for version 3 (includes the compression type byte). */
export const V3_HEADER_LENGTH = 112;
export const MAX_BACKING_FILE_NAME = 1023;
/** Same limits as QEMU: larger tables are refused as corrupt. */
export const MAX_L1_BYTES = 32 * 1024 * 1024;
export const MAX_REFTABLE_BYTES = 8 * 1024 * 1024;

/** Header field offsets. */
export const HeaderField = {
  magic: 0,
  version: 4,
  backingFileOffset: 8,
  backingFileSize: 16,
  clusterBits: 20,
  size: 24,
  cryptMethod: 32,
  l1Size: 36,
  l1TableOffset: 40,
  refcountTableOffset: 48,
  refcountTableClusters: 56,
  nbSnapshots: 60,
  snapshotsOffset: 64,
  incompatibleFeatures: 72,
  compatibleFeatures: 80,
  autoclearFeatures: 88,
  refcountOrder: 96,
  headerLength: 100,
  compressionType: 104,
} as const;

/** Incompatible feature bits. */
export const INCOMPAT_DIRTY = 1 << 0;
export const INCOMPAT_CORRUPT = 1 << 1;
export const INCOMPAT_DATA_FILE = 1 << 2;
export const INCOMPAT_COMPRESSION = 1 << 3;
export const INCOMPAT_EXTL2 = 1 << 4;
export const KNOWN_INCOMPAT = INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2;
/** Compatible feature bits. */
export const COMPAT_LAZY_REFCOUNTS = 1 << 0;

/** Header extension types. */
export const EXT_END = 0;
export const EXT_BACKING_FORMAT = 0xe2792aca;
export const EXT_FEATURE_TABLE = 0x6803f857;
export const EXT_BITMAPS = 0x23852875;
export const EXT_CRYPTO = 0x0537be77;
export const EXT_DATA_FILE = 0x44415441;

/** Names of the incompatible bits QEMU knows, for error messages. */
export const INCOMPAT_NAMES: Readonly<Record<number, string>> = {
  0: 'dirty bit',
  1: 'corrupt bit',
  2: 'external data file',
  3: 'compression type',
  4: 'extended L2 entries',
};

/** High-word flag bits of L1/L2 entries. */
const HI_COPIED = 0x80000000;
const HI_COMPRESSED = 0x40000000;
/** Bits 32-55 of an offset, in the high word. */
const HI_OFFSET_MASK = 0x00ffffff;
const TWO_32 = 0x100000000;

/** 64-bit big-endian entry at byte position `pos` as [high word, low word]. */
export function readEntryWords(view: DataView, pos: number): [number, number] {
  return [view.getUint32(pos), view.getUint32(pos + 4)];
}

/** An unsigned 64-bit big-endian value as a number (exact below 2^53). */
export function readU64(view: DataView, pos: number): number {
  return view.getUint32(pos) * TWO_32 + view.getUint32(pos + 4);
}

/** Store an unsigned value below 2^53 as a 64-bit big-endian number. */
export function writeU64(view: DataView, pos: number, value: number): void {
  view.setUint32(pos, Math.floor(value / TWO_32));
  view.setUint32(pos + 4, value >>> 0);
}

/** Bits 9-55 of an L1 or standard L2 entry: the cluster-aligned host offset. */
export function entryOffset(hi: number, lo: number): number {
  return (hi & HI_OFFSET_MASK) * TWO_32 + ((lo & 0xfffffe00) >>> 0);
}

/** Bits 0-8 and 56-61 of an L1/L2 entry, which must be zero for a valid standard (non-compressed) entry. */
export function entryUnalignedBits(hi: number, lo: number): number {
  return (lo & 0x1fe) | (hi & 0x3f000000);
}

export function entryCopied(hi: number): boolean {
  return (hi & HI_COPIED) !== 0;
}

export function entryCompressed(hi: number): boolean {
  return (hi & HI_COMPRESSED) !== 0;
}

/** The zero flag (bit 0) of a standard L2 entry. */
export function entryZero(lo: number): boolean {
  return (lo & 1) !== 0;
}

/** Write a standard entry: host offset (cluster aligned), COPIED and zero flags. */
export function writeStandardEntry(view: DataView, pos: number, hostOffset: number, copied: boolean, zero: boolean): void {
  const hi = Math.floor(hostOffset / TWO_32) & HI_OFFSET_MASK;
  view.setUint32(pos, (copied ? HI_COPIED | hi : hi) >>> 0);
  view.setUint32(pos + 4, ((hostOffset >>> 0) | (zero ? 1 : 0)) >>> 0);
}

/** Where a compressed cluster's data lies: [hostOffset, hostOffset + bytes). */
export interface CompressedExtent {
  readonly hostOffset: number;
  readonly bytes: number;
}

/**
 * Decode a compressed cluster descriptor (bits 0-61) for `clusterBits`:
 * x = 62 - (cluster_bits - 8) low bits of host offset, then the number of
 * additional 512-byte sectors.
 */
export function decodeCompressed(hi: number, lo: number, clusterBits: number): CompressedExtent {
  const value = (BigInt(hi & 0x3fffffff) << 32n) | BigInt(lo);
  const offsetBits = BigInt(62 - (clusterBits - 8));
  const hostOffset = Number(value & ((1n << offsetBits) - 1n));
  const extraSectors = Number(value >> offsetBits);
  const bytes = (extraSectors + 1) * 512 - (hostOffset % 512);
  return { hostOffset, bytes };
}

/** The host cluster indexes a compressed extent touches (its refcounts). */
export function compressedClusters(extent: CompressedExtent, clusterBits: number): number[] {
  const first = Math.floor(extent.hostOffset / 512) * 512;
  const last = first + Math.ceil((extent.hostOffset - first + extent.bytes) / 512) * 512 - 1;
  const result: number[] = [];
  for (let cluster = Math.floor(first / 2 ** clusterBits); cluster <= Math.floor(last / 2 ** clusterBits); cluster++) {
    result.push(cluster);
  }
  return result;
}
