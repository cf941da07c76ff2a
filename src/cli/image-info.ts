/**
 * What `img info` reports about an image: the facts `qemu-img info` gives,
 * under the same JSON keys, and their human-readable rendering.
 */
import { stat } from 'node:fs/promises';
import type { BlockNode } from '../block/block-node.js';
import { ioError } from '../errors.js';
import { formatSize } from '../util/size.js';
import type { ImageInfo } from '../block/image-info.js';

export type { ImageInfo } from '../block/image-info.js';

/**
 * Gather the info of `node`, an image opened from `filename`. The
 * format's facts come from the driver's describe(); the allocated size from
 * the host file's block count.
 */
export async function collectImageInfo(node: BlockNode, filename: string): Promise<ImageInfo> {
  const description = (await node.driver.describe?.()) ?? {};
  let actualSize: number;
  try {
    actualSize = (await stat(filename)).blocks * 512;
  } catch (error) {
    throw ioError(`Could not stat '${filename}'`, error);
  }
  const clusterSize = description.clusterSize ?? node.driver.clusterSize;
  const backing = description.backingFilename;
  return {
    'virtual-size': node.length,
    filename,
    ...(clusterSize !== undefined ? { 'cluster-size': clusterSize } : {}),
    format: node.driver.driverName,
    'actual-size': actualSize,
    ...(description.formatSpecific ? { 'format-specific': description.formatSpecific } : {}),
    ...(backing !== undefined
      ? { 'full-backing-filename': resolveBackingPath(filename, backing), 'backing-filename': backing }
      : {}),
    ...(backing !== undefined && description.backingFormat !== undefined
      ? { 'backing-filename-format': description.backingFormat }
      : {}),
    'dirty-flag': description.dirtyFlag ?? false,
  };
}

/** The info (or a chain's list of them) in `qemu-img info --output=json` layout (4-space indent), with a final newline. */
export function renderImageInfoJson(info: ImageInfo | readonly ImageInfo[]): string {
  return `${JSON.stringify(info, null, 4)}\n`;
}

/** The info as `qemu-img info` prints it for people. */
export function renderImageInfoHuman(info: ImageInfo): string {
  const lines = [
    `image: ${info.filename}`,
    `file format: ${info.format}`,
    `virtual size: ${formatSize(info['virtual-size'])} (${info['virtual-size']} bytes)`,
    `disk size: ${formatSize(info['actual-size'])}`,
  ];
  if (info['cluster-size'] !== undefined) lines.push(`cluster_size: ${info['cluster-size']}`);
  const backing = info['backing-filename'];
  if (backing !== undefined) {
    const full = info['full-backing-filename'];
    lines.push(full !== undefined && full !== backing ? `backing file: ${backing} (actual path: ${full})` : `backing file: ${backing}`);
    if (info['backing-filename-format'] !== undefined) lines.push(`backing file format: ${info['backing-filename-format']}`);
  }
  if (info['dirty-flag']) lines.push('cleanly shut down: no');
  const specific = info['format-specific'];
  if (specific && Object.keys(specific.data).length > 0) {
    lines.push('Format specific information:');
    renderValue(specific.data, 1, lines);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * A backing file name as the image's user would open it: absolute names as
 * they are, relative ones relative to the folder of the image naming them.
 */
export function resolveBackingPath(imageFilename: string, backingFilename: string): string {
  if (backingFilename.startsWith('/')) return backingFilename;
  const slash = imageFilename.lastIndexOf('/');
  return slash < 0 ? backingFilename : `${imageFilename.slice(0, slash + 1)}${backingFilename}`;
}

/** Render the members of an object or array as indented "key: value" lines (nested values indent further). */
function renderValue(value: Record<string, unknown> | unknown[], depth: number, lines: string[]): void {
  const indent = '    '.repeat(depth);
  const entries: [string, unknown][] = Array.isArray(value)
    ? value.map((item, index) => [`[${index}]`, item])
    : Object.entries(value).map(([key, item]) => [key.replaceAll('-', ' '), item]);
  for (const [label, item] of entries) {
    if (item !== null && typeof item === 'object') {
      lines.push(`${indent}${label}:`);
      renderValue(item as Record<string, unknown> | unknown[], depth + 1, lines);
    } else {
      lines.push(`${indent}${label}: ${String(item)}`);
    }
  }
}
