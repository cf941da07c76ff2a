/**
 * Opening the backing file a qcow2 image names in its header: path
 * resolution relative to the overlay, format from the header extension or
 * probed, loop and depth checks against the chain of overlays above.
 */
import { open } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { BlockNode } from '../block-node.js';
import type { DriverOpenArgs } from '../driver-factory.js';
import { realPathOrSelf } from '../block-graph.js';
import { LivebackupError } from '../../errors.js';
import { QCOW2_MAGIC } from './qcow2-format.js';

/** Longest backing chain we follow (overlays included). */
export const MAX_BACKING_DEPTH = 64;

/**
 * Open the backing node named by the image at `imageFilename`
 * (`backingFile`, `backingFormat` from its header), read-only, as the
 * `backing` child. Throws INVALID_ARGUMENT when the graph forbids backing
 * files named inside images, CORRUPT_IMAGE for loops and over-deep chains,
 * UNSUPPORTED for protocol or json: backing names.
 */
export async function openBackingFromImage(
  args: DriverOpenArgs,
  imageFilename: string,
  backingFile: string,
  backingFormat: string | undefined,
): Promise<BlockNode | null> {
  if (!args.allowBackingFromImage) {
    throw new LivebackupError(
      'INVALID_ARGUMENT',
      `qcow2 image '${imageFilename}' names the backing file '${backingFile}', but backing files named inside images are not opened here; pass 'backing' explicitly (a node-name, options, or null)`,
    );
  }
  if (/^[a-z][a-z0-9+.-]*:/i.test(backingFile) && !backingFile.startsWith('file:')) {
    throw new LivebackupError('UNSUPPORTED', `backing file '${backingFile}' of '${imageFilename}' is not a local file name`);
  }
  const name = backingFile.startsWith('file:') ? backingFile.slice(5) : backingFile;
  const resolved = isAbsolute(name) ? name : resolve(dirname(imageFilename), name);
  const self = await realPathOrSelf(imageFilename);
  const real = await realPathOrSelf(resolved);
  const chain = [...args.chain, self];
  if (chain.includes(real)) {
    throw new LivebackupError('CORRUPT_IMAGE', `backing chain loop: ${[...chain, real].join(' -> ')}`);
  }
  if (chain.length >= MAX_BACKING_DEPTH) {
    throw new LivebackupError('CORRUPT_IMAGE', `backing chain of '${imageFilename}' is deeper than ${MAX_BACKING_DEPTH} images`);
  }
  const format = backingFormat ?? (await probeFormat(resolved));
  return args.openChild('backing', { driver: format, file: { driver: 'file', filename: resolved } }, { readOnly: true, chain });
}

/** 'qcow2' when the file starts with the qcow2 magic, else 'raw'. Missing files are NOT_FOUND. */
async function probeFormat(filename: string): Promise<string> {
  let handle;
  try {
    handle = await open(filename, 'r');
  } catch (error) {
    throw new LivebackupError('NOT_FOUND', `Could not open backing file '${filename}': ${(error as Error).message}`, { cause: error });
  }
  try {
    const head = new Uint8Array(4);
    const { bytesRead } = await handle.read(head, 0, 4, 0);
    return bytesRead === 4 && new DataView(head.buffer).getUint32(0) === QCOW2_MAGIC ? 'qcow2' : 'raw';
  } finally {
    await handle.close();
  }
}
