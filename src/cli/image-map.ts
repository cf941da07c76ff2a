/**
 * The allocation map of an image, as `qemu-img map` reports it: runs of
 * bytes with the same status (depth in the backing chain, present, zero,
 * data) and, where known, where they lie in a host file. Adjacent runs are
 * merged exactly when qemu-img merges them.
 */
import type { BlockNode } from '../block/block-node.js';
import { LivebackupError } from '../errors.js';

/** One run of the map, with `qemu-img map --output=json` field names. */
export interface MapEntry {
  start: number;
  length: number;
  /** 0 = the image itself, 1 = its backing file, ... */
  depth: number;
  /** Allocated in some layer of the backing chain. */
  present: boolean;
  zero: boolean;
  data: boolean;
  /** Offset of the first byte in the host file, when the run lies there contiguously. */
  offset?: number;
  /** The node `offset` refers to (not part of the JSON output). */
  host?: BlockNode;
}

/**
 * Walk the block status of `node` over [start, end) (its whole length by
 * default; `end` is clamped to it) and return the merged map. Each step
 * asks for the status of everything that is left, so a driver reports runs
 * as long as it can.
 */
export async function collectImageMap(node: BlockNode, start = 0, end = node.length): Promise<MapEntry[]> {
  const entries: MapEntry[] = [];
  const stop = Math.min(end, node.length);
  for (let position = start; position < stop; ) {
    const status = await node.blockStatus(position, stop - position);
    const entry: MapEntry = {
      start: position,
      length: status.bytes,
      depth: status.depth,
      present: status.present,
      zero: status.zero,
      data: status.data,
    };
    if (status.hostOffset !== undefined) {
      entry.offset = status.hostOffset;
      entry.host = status.hostNode;
    }
    const last = entries.at(-1);
    if (last && mergeable(last, entry)) last.length += entry.length;
    else entries.push(entry);
    position += status.bytes;
  }
  return entries;
}

/**
 * True when `next` continues `current` as one entry: the same flags and
 * depth, the same host file, and (with offsets) contiguous host offsets.
 */
export function mergeable(current: MapEntry, next: MapEntry): boolean {
  if (
    current.zero !== next.zero ||
    current.data !== next.data ||
    current.depth !== next.depth ||
    current.present !== next.present ||
    current.host !== next.host ||
    (current.offset === undefined) !== (next.offset === undefined)
  ) {
    return false;
  }
  return current.offset === undefined || current.offset + current.length === next.offset;
}

/** The map in `qemu-img map --output=json` layout: one entry per line inside [ ]. */
export function renderImageMapJson(entries: readonly MapEntry[]): string {
  const lines = entries.map((entry) => {
    const offset = entry.offset === undefined ? '' : `, "offset": ${entry.offset}`;
    return (
      `{ "start": ${entry.start}, "length": ${entry.length}, "depth": ${entry.depth},` +
      ` "present": ${entry.present}, "zero": ${entry.zero}, "data": ${entry.data}${offset}}`
    );
  });
  return `[${lines.join(',\n')}]\n`;
}

/**
 * The map as `qemu-img map` prints it for people: only runs holding
 * non-zero data, with where they lie and in which file. Throws UNSUPPORTED
 * when a data run has no host offset (compressed or external data), which
 * this layout cannot show.
 */
export function renderImageMapHuman(entries: readonly MapEntry[]): string {
  const lines = [`${column('Offset')}${column('Length')}${column('Mapped to')}File`];
  for (const entry of entries) {
    if (!entry.data || entry.zero) continue;
    if (entry.offset === undefined) {
      throw new LivebackupError(
        'UNSUPPORTED',
        'File contains external, encrypted or compressed clusters (use --output=json to see its map)',
      );
    }
    const file = typeof entry.host?.options.filename === 'string' ? entry.host.options.filename : '';
    lines.push(`${column(hex(entry.start))}${column(hex(entry.length))}${column(hex(entry.offset))}${file}`);
  }
  return `${lines.join('\n')}\n`;
}

/** A number as qemu-img's human map prints it: 0x-prefixed hex, plain "0" for zero. */
function hex(value: number): string {
  return value === 0 ? '0' : `0x${value.toString(16)}`;
}

function column(text: string): string {
  return text.padEnd(16);
}
