/**
 * Image files by filename: format probing, opening an image as a format
 * node over a file node, and creating a new image. Used by the CLI and the
 * library; the daemon opens nodes from explicit options instead.
 */
import { open } from 'node:fs/promises';
import { BlockGraph, defaultGraph } from './block-graph.js';
import type { BlockNode } from './block-node.js';
import { findDriver } from './driver-registry.js';
import { LivebackupError, ioError } from '../errors.js';

const QCOW2_MAGIC = 0x514649fb;

/** The image format of a file from its first bytes: 'qcow2' or 'raw'. */
export async function probeFormat(filename: string): Promise<string> {
  let handle;
  try {
    handle = await open(filename, 'r');
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') {
      throw new LivebackupError('NOT_FOUND', `Could not open '${filename}': No such file or directory`, { cause: error });
    }
    throw ioError(`Could not open '${filename}'`, error);
  }
  try {
    const head = Buffer.alloc(4);
    const { bytesRead } = await handle.read(head, 0, 4, 0);
    return bytesRead === 4 && head.readUInt32BE(0) === QCOW2_MAGIC ? 'qcow2' : 'raw';
  } catch (error) {
    throw ioError(`Could not open '${filename}'`, error);
  } finally {
    await handle.close();
  }
}

export interface OpenImageOptions {
  /** Image format; probed from the file's content when absent. */
  format?: string;
  readOnly?: boolean;
  /** Node name of the format node. */
  nodeName?: string;
  /** Graph to open in; the process-wide default graph otherwise. */
  graph?: BlockGraph;
  /** discard mode of the format node; 'unmap' by default for image files opened by name. */
  discard?: 'ignore' | 'unmap';
  /** Extra options of the format node (e.g. backing: null). */
  extra?: Record<string, unknown>;
}

/** Open an image file as `{driver: FORMAT, file: {driver: 'file', filename}}`. */
export async function openImage(filename: string, options: OpenImageOptions = {}): Promise<BlockNode> {
  const format = options.format ?? (await probeFormat(filename));
  // A protocol driver that takes the filename itself (`-f file`, as qemu-img allows) opens it directly.
  const takesFilename = findDriver(format)?.options.filename !== undefined;
  const nodeOptions: Record<string, unknown> = {
    driver: format,
    ...(takesFilename ? { filename } : { file: { driver: 'file', filename } }),
    discard: options.discard ?? 'unmap',
    ...options.extra,
  };
  if (options.readOnly !== undefined) nodeOptions['read-only'] = options.readOnly;
  if (options.nodeName !== undefined) nodeOptions['node-name'] = options.nodeName;
  return (options.graph ?? defaultGraph).open(nodeOptions);
}

/**
 * Create an image file of `format` with virtual size `size` bytes and
 * format options (-o). Overwrites an existing file.
 */
export async function createImage(
  filename: string,
  format: string,
  size: number,
  formatOptions: Record<string, string | number | boolean> = {},
): Promise<void> {
  const factory = findDriver(format);
  if (!factory?.create) {
    throw new LivebackupError('INVALID_ARGUMENT', `Format '${format}' cannot be created (known formats: raw, qcow2)`);
  }
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new LivebackupError('INVALID_ARGUMENT', `Invalid image size ${size}`);
  }
  await factory.create({ filename, size, formatOptions });
}
