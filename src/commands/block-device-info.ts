/**
 * QAPI BlockDeviceInfo for query-named-block-nodes: what QEMU 7.2 reports
 * about a node, under the same keys, computed from our BlockNode (driver
 * description, options, host file allocation).
 */
import { stat } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { BlockNode } from '../block/block-node.js';
import type { ImageInfo } from '../block/image-info.js';

/** QAPI BlockDeviceInfo. */
export interface BlockDeviceInfo {
  file: string;
  'node-name': string;
  ro: boolean;
  drv: string;
  backing_file?: string;
  backing_file_depth: number;
  encrypted: boolean;
  detect_zeroes: string;
  bps: number;
  bps_rd: number;
  bps_wr: number;
  iops: number;
  iops_rd: number;
  iops_wr: number;
  image: ImageInfo;
  cache: { writeback: boolean; direct: boolean; 'no-flush': boolean };
  write_threshold: number;
}

/** Options that say how a node is opened rather than what it is; left out of json: filenames. */
const RUNTIME_OPTIONS = new Set(['node-name', 'read-only', 'auto-read-only', 'force-share', 'discard', 'detect-zeroes', 'cache']);

/** Render a value the way QEMU prints json: filenames (`{"driver": "null-co", "size": 65536}`). */
function qemuJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(qemuJson).join(', ')}]`;
  if (typeof value === 'object' && value !== null) {
    return `{${Object.entries(value).map(([key, inner]) => `${JSON.stringify(key)}: ${qemuJson(inner)}`).join(', ')}}`;
  }
  return JSON.stringify(value);
}

/** The options that say what a node is (not how it is opened), with children as their own such options. */
function identityOptions(node: BlockNode): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node.options)) {
    if (RUNTIME_OPTIONS.has(key)) continue;
    const child = node.children().find((link) => link.role === key)?.node;
    result[key] = child ? identityOptions(child) : value;
  }
  return result;
}

/**
 * The filename QEMU shows for a node: the host file of a file node; the
 * file child's name for formats and filters over one file, unless the
 * options override what the image says (backing: null over an image that
 * names a backing file); a json: description otherwise.
 */
export async function nodeFilename(node: BlockNode): Promise<string> {
  if (typeof node.options.filename === 'string') return node.options.filename;
  const file = node.file ?? node.children().find((link) => link.role === 'image')?.node;
  if (file && node.driver.driverName !== 'blkdebug') {
    const backingOverridden = node.options.backing === null && (await node.driver.describe?.())?.backingFilename !== undefined;
    if (!backingOverridden) return nodeFilename(file);
    const { backing, driver, ...rest } = identityOptions(node);
    return `json:${qemuJson({ backing, driver, ...rest })}`;
  }
  return `json:${qemuJson(identityOptions(node))}`;
}

/** The host file holding the node's bytes, for actual-size. */
function hostFile(node: BlockNode): string | undefined {
  if (typeof node.options.filename === 'string') return node.options.filename;
  const file = node.file ?? node.children().find((link) => link.role === 'image')?.node;
  return file ? hostFile(file) : undefined;
}

async function allocatedBytes(node: BlockNode): Promise<number> {
  const path = hostFile(node);
  if (path === undefined) return 0;
  try {
    return (await stat(path)).blocks * 512;
  } catch {
    return 0;
  }
}

/** QAPI ImageInfo of a node; with `withBacking`, the backing chain nests under backing-image. */
export async function imageInfo(node: BlockNode, withBacking: boolean): Promise<ImageInfo> {
  const description = (await node.driver.describe?.()) ?? {};
  const filename = await nodeFilename(node);
  // QEMU counts lengths in 512-byte sectors.
  const info: ImageInfo = { 'virtual-size': Math.ceil(node.length / 512) * 512, filename, format: node.driver.driverName, 'actual-size': await allocatedBytes(node) };
  const clusterSize = description.clusterSize;
  if (clusterSize !== undefined) info['cluster-size'] = clusterSize;
  if (description.formatSpecific) info['format-specific'] = description.formatSpecific;
  const backingName = description.backingFilename;
  if (backingName !== undefined) {
    info['full-backing-filename'] = isAbsolute(backingName) ? backingName : resolve(dirname(filename), backingName);
    info['backing-filename'] = backingName;
    if (description.backingFormat !== undefined) info['backing-filename-format'] = description.backingFormat;
  }
  // QEMU reports dirty-flag only for drivers that answer bdrv_get_info (null-co does not).
  if (node.driver.driverName !== 'null-co') info['dirty-flag'] = description.dirtyFlag ?? false;
  const backing = node.backing;
  if (withBacking && backing) info['backing-image'] = await imageInfo(backing, true);
  return info;
}

/** QAPI BlockDeviceInfo of a node; `flat` leaves out the backing images (and counts depth 0), as QEMU does. */
export async function blockDeviceInfo(node: BlockNode, flat: boolean): Promise<BlockDeviceInfo> {
  let depth = 0;
  if (!flat) for (let layer = node.backing; layer; layer = layer.backing) depth++;
  const image = await imageInfo(node, !flat);
  const info: BlockDeviceInfo = {
    file: image.filename,
    'node-name': node.nodeName,
    ro: node.readOnly,
    drv: node.driver.driverName,
    backing_file_depth: depth,
    encrypted: false,
    detect_zeroes: typeof node.options['detect-zeroes'] === 'string' ? node.options['detect-zeroes'] : 'off',
    bps: 0,
    bps_rd: 0,
    bps_wr: 0,
    iops: 0,
    iops_rd: 0,
    iops_wr: 0,
    image,
    cache: { writeback: true, direct: false, 'no-flush': node.noFlush },
    write_threshold: 0,
  };
  if (node.backing) info.backing_file = await nodeFilename(node.backing);
  return info;
}
