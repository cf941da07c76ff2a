/**
 * Writing into the image's `file` child. Clusters are allocated past the
 * end of the file, so writes there must grow it; writes inside the file do
 * not ask to grow, so images on fixed-size children (block devices,
 * exports) work as long as they have room.
 */
import type { BlockNode } from '../block-node.js';

/** Write `bytes` at `offset` of `file`, growing the file only when the write ends past its end. */
export function writeHost(file: BlockNode, offset: number, bytes: Uint8Array): Promise<void> {
  return file.write(offset, bytes, offset + bytes.length > file.length ? { mayGrow: true } : {});
}
