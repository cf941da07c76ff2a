/**
 * Block status of an export as NBD extents: walks BlockNode.blockStatus
 * over a range and turns each run into one descriptor per selected
 * metadata context, merging neighbours with equal flags.
 *
 * Mapping (as QEMU's NBD server does it):
 * - base:allocation: NBD_STATE_HOLE when the bytes are not stored as data,
 *   NBD_STATE_ZERO when they read as zeroes.
 * - qemu:allocation-depth: 0 when no layer of the chain holds the bytes,
 *   else 1 + the depth of the layer that does (1 = the exported node).
 */
import type { BlockNode, BlockStatus } from '../block/block-node.js';
import type { MetaContext } from './meta-context.js';
import { NBD_STATE_HOLE, NBD_STATE_ZERO, type Extent } from './protocol.js';

/** At most this many descriptors per context in one reply (keeps a chunk near 1 MiB). */
export const MAX_EXTENTS_PER_REPLY = 128 * 1024;

/** NBD_STATE_* flags of a run for base:allocation. */
export function allocationFlags(status: BlockStatus): number {
  return (status.data ? 0 : NBD_STATE_HOLE) | (status.zero ? NBD_STATE_ZERO : 0);
}

/** qemu:allocation-depth value of a run. */
export function allocationDepth(status: BlockStatus): number {
  return status.present ? status.depth + 1 : 0;
}

/** The value a context reports for a run. */
export function contextFlags(context: MetaContext, status: BlockStatus): number {
  return context.kind === 'base:allocation' ? allocationFlags(status) : allocationDepth(status);
}

/**
 * Extents of [offset, offset + length) for each context (same order as
 * `contexts`). With `one`, each context gets exactly one extent no longer
 * than `length`. Stops early (still covering from `offset`) after
 * MAX_EXTENTS_PER_REPLY runs. Caller guarantees the range is inside the
 * node and length > 0.
 */
export async function collectExtents(
  node: BlockNode,
  offset: number,
  length: number,
  contexts: readonly MetaContext[],
  one: boolean,
): Promise<Extent[][]> {
  const lists: Extent[][] = contexts.map(() => []);
  const end = offset + length;
  let position = offset;
  for (let runs = 0; position < end && runs < MAX_EXTENTS_PER_REPLY; runs++) {
    const status = await node.blockStatus(position, end - position);
    contexts.forEach((context, i) => appendExtent(lists[i]!, status.bytes, contextFlags(context, status)));
    position += status.bytes;
    if (one) {
      // Keep only the first extent of each context; stop as soon as every context's first extent ended.
      if (lists.every((list) => list.length > 1)) break;
    }
  }
  if (one) return lists.map((list) => [list[0]!]);
  return lists;
}

function appendExtent(list: Extent[], bytes: number, flags: number): void {
  const last = list[list.length - 1];
  if (last && last.flags === flags) list[list.length - 1] = { length: last.length + bytes, flags };
  else list.push({ length: bytes, flags });
}
