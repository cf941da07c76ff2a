/**
 * The qcow2 BlockDriverFactory: open options (QAPI BlockdevOptionsQcow2),
 * opening an image (header, L1 and refcount tables, backing node) and
 * creating one.
 */
import type { BlockDriver } from '../block-driver.js';
import type { BlockNode } from '../block-node.js';
import type { BlockDriverFactory, ChildReference, DriverOpenArgs, OptionSpec } from '../driver-factory.js';
import { LivebackupError } from '../../errors.js';
import { openBackingFromImage } from './backing-chain.js';
import { Qcow2Driver } from './qcow2-driver.js';
import { parseHeader } from './qcow2-header.js';
import { createQcow2, QCOW2_CREATE_OPTIONS } from './qcow2-create.js';
import { COMPAT_LAZY_REFCOUNTS, HeaderField, INCOMPAT_CORRUPT, INCOMPAT_DIRTY, MAX_CLUSTER_BITS } from './qcow2-format.js';

const DEFAULT_L2_CACHE_BYTES = 4 * 1024 * 1024;
const DEFAULT_REFCOUNT_CACHE_BYTES = 1024 * 1024;
const MIN_CACHE_TABLES = 8;

const OPTIONS: Readonly<Record<string, OptionSpec>> = {
  'lazy-refcounts': { type: 'boolean' },
  'pass-discard-request': { type: 'boolean' },
  'pass-discard-snapshot': { type: 'boolean' },
  'pass-discard-other': { type: 'boolean' },
  'overlap-check': { type: 'string', values: ['none', 'constant', 'cached', 'all'] },
  'cache-size': { type: 'integer' },
  'l2-cache-size': { type: 'integer' },
  'l2-cache-entry-size': { type: 'integer' },
  'refcount-cache-size': { type: 'integer' },
  'cache-clean-interval': { type: 'integer' },
  encrypt: { type: 'object' },
};

/** Filename of a file node, for messages and backing resolution. */
function filenameOf(file: BlockNode): string {
  const name = file.options.filename;
  return typeof name === 'string' ? name : file.nodeName;
}

function nonNegative(options: Readonly<Record<string, unknown>>, name: string): number | undefined {
  const value = options[name] as number | undefined;
  if (value !== undefined && value < 0) throw new LivebackupError('INVALID_ARGUMENT', `Parameter '${name}' expects a non-negative value`);
  return value;
}

/** Cache capacities in tables from the cache-size options. */
function cacheTables(options: Readonly<Record<string, unknown>>, clusterSize: number): { l2: number; refcount: number } {
  const total = nonNegative(options, 'cache-size');
  let l2 = nonNegative(options, 'l2-cache-size');
  let refcount = nonNegative(options, 'refcount-cache-size');
  nonNegative(options, 'cache-clean-interval');
  const entrySize = nonNegative(options, 'l2-cache-entry-size');
  if (entrySize !== undefined && (entrySize < 512 || entrySize > 2 ** MAX_CLUSTER_BITS || (entrySize & (entrySize - 1)) !== 0)) {
    throw new LivebackupError('INVALID_ARGUMENT', "L2 cache entry size must be a power of two between 512 and the maximum cluster size (2 MiB)");
  }
  if (total !== undefined) {
    if (l2 !== undefined && refcount !== undefined && l2 + refcount > total) {
      throw new LivebackupError('INVALID_ARGUMENT', "l2-cache-size and refcount-cache-size may not exceed cache-size");
    }
    if (l2 === undefined && refcount === undefined) {
      refcount = Math.floor(total / 4);
      l2 = total - refcount;
    } else if (l2 === undefined) {
      l2 = total - refcount!;
    } else if (refcount === undefined) {
      refcount = total - l2;
    }
  }
  return {
    l2: Math.max(MIN_CACHE_TABLES, Math.floor((l2 ?? DEFAULT_L2_CACHE_BYTES) / clusterSize)),
    refcount: Math.max(MIN_CACHE_TABLES, Math.floor((refcount ?? DEFAULT_REFCOUNT_CACHE_BYTES) / clusterSize)),
  };
}

async function openQcow2(args: DriverOpenArgs): Promise<BlockDriver> {
  const options = args.options;
  if (options['data-file'] !== undefined) {
    throw new LivebackupError('UNSUPPORTED', 'qcow2 external data files (data-file) are not supported');
  }
  if (options.encrypt !== undefined) throw new LivebackupError('UNSUPPORTED', 'encrypted qcow2 images (encrypt) are not supported');
  const fileReference = options.file;
  if (fileReference === undefined || fileReference === null) {
    throw new LivebackupError('INVALID_ARGUMENT', "Parameter 'file' is missing");
  }
  const file = (await args.openChild('file', fileReference as ChildReference))!;
  const filename = filenameOf(file);
  const headLength = Math.min(file.length, 2 ** MAX_CLUSTER_BITS);
  const head = new Uint8Array(headLength);
  if (headLength > 0) await file.read(0, head);
  const header = parseHeader(head, file.length, filename);

  if (!args.readOnly) {
    if (header.incompatibleFeatures & INCOMPAT_CORRUPT) {
      throw new LivebackupError(
        'CORRUPT_IMAGE',
        `qcow2 image '${filename}' is marked corrupt; repair it with 'qemu-img check -r all ${filename}' or open it read-only`,
      );
    }
    if (header.incompatibleFeatures & INCOMPAT_DIRTY) {
      throw new LivebackupError(
        'INVALID_STATE',
        `qcow2 image '${filename}' was not closed cleanly (dirty bit set, lazy refcounts); repair it with 'qemu-img check -r all ${filename}' or open it read-only`,
      );
    }
    if (header.extendedL2) {
      throw new LivebackupError('UNSUPPORTED', `writing qcow2 images with extended L2 entries is not supported ('${filename}'); open it read-only`);
    }
  }
  let lazyRefcounts = (header.compatibleFeatures & COMPAT_LAZY_REFCOUNTS) !== 0;
  if (options['lazy-refcounts'] !== undefined) {
    lazyRefcounts = options['lazy-refcounts'] as boolean;
    if (lazyRefcounts && header.version < 3) {
      throw new LivebackupError('INVALID_ARGUMENT', 'Lazy refcounts require a qcow2 image with at least qemu 1.1 compatibility level');
    }
  }
  const tables = cacheTables(options, header.clusterSize);

  const l1 = new Uint8Array(header.l1Size * 8);
  if (l1.length > 0) await file.read(header.l1TableOffset, l1);
  let reftable: Uint8Array | undefined;
  if (!args.readOnly) {
    reftable = new Uint8Array(header.refcountTableClusters * header.clusterSize);
    await file.read(header.refcountTableOffset, reftable);
  }

  let backing: BlockNode | null = null;
  let backingOwned = false;
  const backingReference = options.backing as ChildReference | undefined;
  if (backingReference === undefined) {
    if (header.backingFile !== undefined) {
      backing = await openBackingFromImage(args, filename, header.backingFile, header.backingFormat);
      backingOwned = true;
    }
  } else {
    backing = await args.openChild('backing', backingReference, { readOnly: true });
    backingOwned = backing !== null && typeof backingReference === 'object';
  }

  return new Qcow2Driver(file, typeof fileReference === 'object', backing, backingOwned, header, l1, reftable, {
    readOnly: args.readOnly,
    lazyRefcounts,
    l2CacheTables: tables.l2,
    refcountCacheTables: tables.refcount,
    filename,
    featureWords: head.slice(HeaderField.incompatibleFeatures, HeaderField.refcountOrder),
  });
}

export const qcow2DriverFactory: BlockDriverFactory = {
  name: 'qcow2',
  options: OPTIONS,
  childRoles: ['file', 'backing', 'data-file'],
  open: openQcow2,
  createOptions: QCOW2_CREATE_OPTIONS,
  create: createQcow2,
};
