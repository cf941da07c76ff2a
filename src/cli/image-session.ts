/**
 * Opening image files for one CLI command: every command gets its own
 * private BlockGraph, so nothing it opens is visible elsewhere, and
 * everything it opened is closed when it finishes, also on error.
 */
import { BlockGraph } from '../block/block-graph.js';
import type { BlockNode } from '../block/block-node.js';
import { driverNames, findDriver } from '../block/driver-registry.js';
import { openImage, probeFormat } from '../block/image-file.js';
import { LivebackupError, ioError } from '../errors.js';

/** One image a command opens. */
export interface ImageSpec {
  readonly filename: string;
  /** Image format (-f); probed from the file's content when absent. */
  readonly format?: string;
  /** Open read-only (the default) or read-write. */
  readonly writable?: boolean;
  /**
   * Do not open the backing file named in the image (like `qemu-img info`):
   * the image can be described even when its backing file is missing.
   */
  readonly withoutBacking?: boolean;
}

/**
 * Open `specs` in order in a new private graph, run `use` with the nodes
 * (same order), then close every node, whether `use` succeeded or not.
 * Throws INVALID_ARGUMENT for an unknown format, NOT_FOUND for a missing
 * file, and whatever opening or `use` throws.
 */
export async function withImages<T>(specs: readonly ImageSpec[], use: (nodes: BlockNode[]) => Promise<T>): Promise<T> {
  const graph = new BlockGraph();
  try {
    const nodes: BlockNode[] = [];
    for (const spec of specs) nodes.push(await openImageSpec(graph, spec));
    return await use(nodes);
  } finally {
    await graph.closeAll();
  }
}

/**
 * The format of an image file from its content ('qcow2' or 'raw'). Every
 * failure is a LivebackupError naming the file (NOT_FOUND, IO_ERROR).
 */
export async function probeImageFormat(filename: string): Promise<string> {
  try {
    return await probeFormat(filename);
  } catch (error) {
    throw ioError(`Could not open '${filename}'`, error);
  }
}

async function openImageSpec(graph: BlockGraph, spec: ImageSpec): Promise<BlockNode> {
  const format = spec.format ?? (await probeImageFormat(spec.filename));
  const factory = findDriver(format);
  if (!factory) {
    throw new LivebackupError('INVALID_ARGUMENT', `Unknown image format '${format}' (known drivers: ${driverNames().join(', ')})`);
  }
  const skipBacking = spec.withoutBacking === true && factory.childRoles.includes('backing');
  return openImage(spec.filename, {
    format,
    graph,
    readOnly: spec.writable !== true,
    extra: skipBacking ? { backing: null } : undefined,
  });
}
