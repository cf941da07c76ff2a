/**
 * The qcow2 header and its extensions: parsing with every field checked
 * against the file size and the format's limits, so that no later code
 * allocates or seeks on the word of a malformed header.
 */
import { LivebackupError } from '../../errors.js';
import {
  EXT_BACKING_FORMAT,
  EXT_CRYPTO,
  EXT_DATA_FILE,
  EXT_END,
  EXT_FEATURE_TABLE,
  HeaderField,
  INCOMPAT_COMPRESSION,
  INCOMPAT_DATA_FILE,
  INCOMPAT_EXTL2,
  INCOMPAT_NAMES,
  KNOWN_INCOMPAT,
  MAX_BACKING_FILE_NAME,
  MAX_CLUSTER_BITS,
  MAX_L1_BYTES,
  MAX_REFTABLE_BYTES,
  MIN_CLUSTER_BITS,
  MIN_EXTENDED_L2_CLUSTER_BITS,
  QCOW2_MAGIC,
  V2_HEADER_LENGTH,
  V3_MIN_HEADER_LENGTH,
  readU64,
} from './qcow2-format.js';

/** The parsed, validated header of a qcow2 image. */
export interface Qcow2Header {
  readonly version: 2 | 3;
  readonly clusterBits: number;
  readonly clusterSize: number;
  /** Virtual disk size in bytes. */
  readonly size: number;
  readonly l1Size: number;
  readonly l1TableOffset: number;
  readonly refcountTableOffset: number;
  readonly refcountTableClusters: number;
  readonly nbSnapshots: number;
  readonly snapshotsOffset: number;
  /** Low 32 bits of the feature words (no higher bit is defined; unknown high bits are refused). */
  readonly incompatibleFeatures: number;
  readonly compatibleFeatures: number;
  readonly autoclearFeatures: number;
  readonly refcountOrder: number;
  readonly headerLength: number;
  readonly compressionType: number;
  readonly backingFile: string | undefined;
  readonly backingFormat: string | undefined;
  readonly extendedL2: boolean;
}

const corrupt = (what: string) => new LivebackupError('CORRUPT_IMAGE', `qcow2 image ${what}`);
const unsupported = (what: string) => new LivebackupError('UNSUPPORTED', what);

/**
 * Parse the header from `head` (the first cluster, or the whole file when
 * shorter) of a file of `fileLength` bytes. Throws CORRUPT_IMAGE for
 * malformed headers and UNSUPPORTED for features livebackup does not
 * implement (encryption, external data files, zstd, unknown incompatible bits).
 */
export function parseHeader(head: Uint8Array, fileLength: number, filename: string): Qcow2Header {
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const where = `'${filename}'`;
  if (head.length < V2_HEADER_LENGTH) throw corrupt(`${where} is truncated: ${fileLength} bytes is shorter than a qcow2 header`);
  if (view.getUint32(HeaderField.magic) !== QCOW2_MAGIC) throw corrupt(`${where} has a bad magic (not a qcow2 image)`);
  const version = view.getUint32(HeaderField.version);
  if (version !== 2 && version !== 3) throw unsupported(`qcow2 version ${version} of ${where} is not supported (only 2 and 3)`);
  const clusterBits = view.getUint32(HeaderField.clusterBits);
  if (clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) {
    throw corrupt(`${where} has an invalid cluster size: cluster_bits=${clusterBits} (must be ${MIN_CLUSTER_BITS}..${MAX_CLUSTER_BITS})`);
  }
  const clusterSize = 2 ** clusterBits;
  const u64 = (field: number, name: string): number => {
    if (view.getUint32(field) >= 0x200000) throw corrupt(`${where} has an out-of-range ${name}`);
    return readU64(view, field);
  };
  let headerLength = V2_HEADER_LENGTH;
  let incompatHigh = 0;
  let incompatibleFeatures = 0;
  let compatibleFeatures = 0;
  let autoclearFeatures = 0;
  let refcountOrder = 4;
  let compressionType = 0;
  if (version === 3) {
    if (head.length < V3_MIN_HEADER_LENGTH) throw corrupt(`${where} is truncated: shorter than a version 3 header`);
    headerLength = view.getUint32(HeaderField.headerLength);
    if (headerLength < V3_MIN_HEADER_LENGTH) {
      // Reads past the end of a short file return zeroes, so a truncated header shows up here.
      throw corrupt(`${where} has a header that is too short (header_length ${headerLength}): the file may be truncated`);
    }
    if (headerLength > clusterSize || headerLength > head.length) {
      throw corrupt(`${where} has an invalid header_length ${headerLength}`);
    }
    incompatHigh = view.getUint32(HeaderField.incompatibleFeatures);
    incompatibleFeatures = view.getUint32(HeaderField.incompatibleFeatures + 4);
    compatibleFeatures = view.getUint32(HeaderField.compatibleFeatures + 4);
    autoclearFeatures = view.getUint32(HeaderField.autoclearFeatures + 4);
    refcountOrder = view.getUint32(HeaderField.refcountOrder);
    if (refcountOrder > 6) throw corrupt(`${where} has an invalid refcount_order ${refcountOrder} (must be 0..6)`);
    if (headerLength > HeaderField.compressionType) compressionType = head[HeaderField.compressionType]!;
  }
  const cryptMethod = view.getUint32(HeaderField.cryptMethod);
  if (cryptMethod !== 0) throw unsupported(`${where} is encrypted (crypt_method ${cryptMethod}); encrypted qcow2 images are not supported`);

  const extensions = parseExtensions(head, view, headerLength, clusterSize, where);
  const unknown = incompatibleFeatures & ~KNOWN_INCOMPAT;
  if (incompatHigh !== 0 || unknown !== 0) {
    const bits: number[] = [];
    for (let bit = 0; bit < 32; bit++) if (unknown & (1 << bit)) bits.push(bit);
    for (let bit = 0; bit < 32; bit++) if (incompatHigh & (1 << bit)) bits.push(bit + 32);
    const names = bits.map((bit) => extensions.featureNames.get(bit) ?? `bit ${bit}`);
    throw unsupported(`${where} uses unsupported incompatible qcow2 features: ${names.join(', ')}`);
  }
  if (incompatibleFeatures & INCOMPAT_DATA_FILE || extensions.hasDataFile) {
    throw unsupported(`${where} uses an external data file (${INCOMPAT_NAMES[2]}), which is not supported`);
  }
  if (extensions.hasCrypto) throw unsupported(`${where} has an encryption header; encrypted qcow2 images are not supported`);
  if (incompatibleFeatures & INCOMPAT_COMPRESSION) {
    if (compressionType === 1) throw unsupported(`${where} uses zstd compression (compression_type=zstd), which is not supported`);
    if (compressionType !== 0) throw unsupported(`${where} uses unknown compression type ${compressionType}`);
  } else if (compressionType !== 0) {
    throw corrupt(`${where} has compression type ${compressionType} without the compression type feature bit`);
  }
  const extendedL2 = (incompatibleFeatures & INCOMPAT_EXTL2) !== 0;
  if (extendedL2 && clusterBits < MIN_EXTENDED_L2_CLUSTER_BITS) {
    throw corrupt(`${where} uses extended L2 entries with a cluster size below 16 KiB`);
  }
  if (version === 2 && refcountOrder !== 4) throw corrupt(`${where} is version 2 but refcount_order is not 4`);

  const size = u64(HeaderField.size, 'virtual size');
  const l1Size = view.getUint32(HeaderField.l1Size);
  const l1TableOffset = u64(HeaderField.l1TableOffset, 'L1 table offset');
  const entrySize = extendedL2 ? 16 : 8;
  const bytesPerL2 = (clusterSize / entrySize) * clusterSize;
  const l1Needed = Math.ceil(size / bytesPerL2);
  if (l1Size * 8 > MAX_L1_BYTES) throw corrupt(`${where} has an L1 table that is too large (${l1Size} entries)`);
  if (l1Size < l1Needed) throw corrupt(`${where} has an L1 table too small (${l1Size} entries) for its virtual size ${size}`);
  checkTable(l1TableOffset, l1Size * 8, clusterSize, fileLength, 'L1 table', where);
  const refcountTableOffset = u64(HeaderField.refcountTableOffset, 'refcount table offset');
  const refcountTableClusters = view.getUint32(HeaderField.refcountTableClusters);
  if (refcountTableClusters === 0) throw corrupt(`${where} has an empty refcount table`);
  if (refcountTableClusters * clusterSize > MAX_REFTABLE_BYTES) {
    throw corrupt(`${where} has a refcount table that is too large (${refcountTableClusters} clusters)`);
  }
  checkTable(refcountTableOffset, refcountTableClusters * clusterSize, clusterSize, fileLength, 'refcount table', where);
  const nbSnapshots = view.getUint32(HeaderField.nbSnapshots);
  const snapshotsOffset = u64(HeaderField.snapshotsOffset, 'snapshot table offset');
  if (nbSnapshots > 65536) throw corrupt(`${where} claims too many snapshots (${nbSnapshots})`);
  if (nbSnapshots > 0) checkTable(snapshotsOffset, 1, clusterSize, fileLength, 'snapshot table', where);

  let backingFile: string | undefined;
  const backingFileOffset = u64(HeaderField.backingFileOffset, 'backing file offset');
  if (backingFileOffset !== 0) {
    const length = view.getUint32(HeaderField.backingFileSize);
    if (length > MAX_BACKING_FILE_NAME || backingFileOffset + length > Math.min(clusterSize, head.length)) {
      throw corrupt(`${where} has an invalid backing file name (offset ${backingFileOffset}, length ${length})`);
    }
    backingFile = new TextDecoder().decode(head.subarray(backingFileOffset, backingFileOffset + length));
    if (backingFile === '') backingFile = undefined;
  }
  return {
    version,
    clusterBits,
    clusterSize,
    size,
    l1Size,
    l1TableOffset,
    refcountTableOffset,
    refcountTableClusters,
    nbSnapshots,
    snapshotsOffset,
    incompatibleFeatures,
    compatibleFeatures,
    autoclearFeatures,
    refcountOrder,
    headerLength,
    compressionType,
    backingFile,
    backingFormat: extensions.backingFormat,
    extendedL2,
  };
}

/** A table must be cluster aligned and lie inside the file. */
function checkTable(offset: number, bytes: number, clusterSize: number, fileLength: number, name: string, where: string): void {
  if (offset % clusterSize !== 0) throw corrupt(`${where}: the ${name} offset ${offset} is not cluster aligned`);
  if (bytes > 0 && (offset === 0 || offset + bytes > fileLength)) {
    throw corrupt(`${where}: the ${name} at ${offset} (${bytes} bytes) lies outside the file of ${fileLength} bytes`);
  }
}

interface Extensions {
  backingFormat: string | undefined;
  featureNames: Map<number, string>;
  hasDataFile: boolean;
  hasCrypto: boolean;
}

function parseExtensions(head: Uint8Array, view: DataView, start: number, clusterSize: number, where: string): Extensions {
  const result: Extensions = { backingFormat: undefined, featureNames: new Map(), hasDataFile: false, hasCrypto: false };
  const end = Math.min(clusterSize, head.length);
  let pos = start;
  while (pos + 8 <= end) {
    const type = view.getUint32(pos);
    const length = view.getUint32(pos + 4);
    pos += 8;
    if (type === EXT_END) return result;
    if (length > end - pos) throw corrupt(`${where} has a header extension 0x${type.toString(16)} of length ${length} past the first cluster`);
    const data = head.subarray(pos, pos + length);
    switch (type) {
      case EXT_BACKING_FORMAT:
        result.backingFormat = new TextDecoder().decode(data).replace(/\0+$/, '');
        break;
      case EXT_FEATURE_TABLE:
        for (let entry = 0; entry + 48 <= data.length; entry += 48) {
          if (data[entry] !== 0) continue;
          const name = new TextDecoder().decode(data.subarray(entry + 2, entry + 48)).replace(/\0.*$/s, '');
          result.featureNames.set(data[entry + 1]!, name);
        }
        break;
      case EXT_DATA_FILE:
        result.hasDataFile = true;
        break;
      case EXT_CRYPTO:
        result.hasCrypto = true;
        break;
      default:
        break;
    }
    pos += Math.ceil(length / 8) * 8;
  }
  return result;
}
