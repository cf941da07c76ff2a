/**
 * QAPI BlockDeviceInfo for query-named-block-nodes: what QEMU 7.2 reports
 * about a node, under the same keys, computed from our BlockNode (driver
 * description, options, host file allocation).
 */
import { stat } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { BlockNode } from '../block/block-node.js';

/** QAPI ImageInfo, the members livebackup can know. */
export interface ImageInfo {
  'virtual-size': number;
  filename: string;
  'cluster-size'?: number;
  format: string;
  'actual-size': number;
  'format-specific'?: { type: string; data: Record<string, unknown> };
  'full-backing-filename'?: string;
  'backing-filename'?: string;
  'backing-filename-format'?: string;
  'dirty-flag'?: boolean;
  'backing-image'?: ImageInfo;
}

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

/** QEMU's json: pseudo-filename (`json:{"driver": "null-co", "size": 65536}`). */
function jsonFilename(node: BlockNode): string {
  const entries = Object.entries(node.options).filter(([key]) => !RUNTIME_OPTIONS.has(key));
  const render = (value: unknown): string => {
    if (Array.isArray(value)) return `[${value.map(render).join(', ')}]`;
    if (typeof value === 'object' && value !== null) {
      return `{${Object.entries(value).map(([key, inner]) => `${JSON.stringify(key)}: ${render(inner)}`).join(', ')}}`;
    }
    return JSON.stringify(value);
  };
  return `json:${render(Object.fromEntries(entries))}`;
}

/**
 * The filename QEMU shows for a node: the host file of a file node, the
 * file child's name for formats and filters over one file, json: otherwise.
 */
export function nodeFilename(node: BlockNode): string {
  if (typeof node.options.filename === 'string') return node.options.filename;
  const file = node.file ?? node.children().find((link) => link.role === 'image')?.node;
  if (file && node.driver.driverName !== 'blkdebug') return nodeFilename(file);
  return jsonFilename(node);
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
  const filename = nodeFilename(node);
  const info: ImageInfo = { 'virtual-size': node.length, filename, format: node.driver.driverName, 'actual-size': await allocatedBytes(node) };
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
  const info: BlockDeviceInfo = {
    file: nodeFilename(node),
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
    image: await imageInfo(node, !flat),
    cache: { writeback: true, direct: false, 'no-flush': node.noFlush },
    write_threshold: 0,
  };
  if (node.backing) info.backing_file = nodeFilename(node.backing);
  return info;
}
