/**
 * Metadata contexts an export offers for NBD_CMD_BLOCK_STATUS, and how
 * NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT queries select them:
 * - `base:allocation` (id 0): NBD_STATE_HOLE / NBD_STATE_ZERO;
 * - `qemu:allocation-depth` (id 1, when the export enables it): 0
 *   unallocated, 1 this layer, 2+ backing.
 * List queries may end in a bare namespace (`base:`, `qemu:`) as a wildcard;
 * set queries select exact names only. Unknown names and namespaces are
 * ignored, as the spec requires.
 */
import type { NbdExport } from './export-registry.js';
import { BASE_ALLOCATION, QEMU_ALLOCATION_DEPTH } from './protocol.js';

export type MetaContextKind = 'base:allocation' | 'qemu:allocation-depth';

/** A context selected for a connection: its wire id and what it reports. */
export interface MetaContext {
  readonly id: number;
  readonly name: string;
  readonly kind: MetaContextKind;
}

const BASE_CONTEXT: MetaContext = { id: 0, name: BASE_ALLOCATION, kind: 'base:allocation' };
const DEPTH_CONTEXT: MetaContext = { id: 1, name: QEMU_ALLOCATION_DEPTH, kind: 'qemu:allocation-depth' };

/** Every context the export offers, in id order (allocation depth only when the export enables it). */
export function availableMetaContexts(entry: NbdExport): readonly MetaContext[] {
  return entry.allocationDepth ? [BASE_CONTEXT, DEPTH_CONTEXT] : [BASE_CONTEXT];
}

/** Contexts matching NBD_OPT_LIST_META_CONTEXT queries (all of them for an empty query list). */
export function listMetaContexts(entry: NbdExport, queries: readonly string[]): MetaContext[] {
  const available = availableMetaContexts(entry);
  if (queries.length === 0) return [...available];
  return available.filter((context) => queries.some((query) => query === context.name || (query.endsWith(':') && isNamespaceOf(query, context.name))));
}

/** Contexts selected by NBD_OPT_SET_META_CONTEXT queries: exact names only, each once. */
export function selectMetaContexts(entry: NbdExport, queries: readonly string[]): MetaContext[] {
  return availableMetaContexts(entry).filter((context) => queries.includes(context.name));
}

/** True when `query` ('qemu:' or a deeper prefix such as 'qemu:dirty-bitmap:') names the namespace prefix of `name`. */
function isNamespaceOf(query: string, name: string): boolean {
  return name.startsWith(query) && query.indexOf(':') === query.length - 1;
}
