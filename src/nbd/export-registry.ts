/**
 * The export table of an NBD server: which block nodes are served under
 * which names, and how. Names are unique protocol strings (at most 4096
 * bytes of UTF-8, no NUL).
 */
import type { BlockNode } from '../block/block-node.js';
import { LivebackupError } from '../errors.js';
import { encodeString } from './protocol.js';

/** How an export is added (QMP block-export-add type=nbd, in library form). */
export interface NbdExportOptions {
  /** Export name clients ask for (may be empty: the default export). */
  readonly name: string;
  readonly node: BlockNode;
  /** Accept write requests (default false). Needs a writable node. */
  readonly writable?: boolean;
  /** Free text shown by NBD_OPT_LIST and NBD_INFO_DESCRIPTION. */
  readonly description?: string;
  /**
   * Announce NBD_FLAG_CAN_MULTI_CONN (default true). Safe here because every
   * connection to an export issues I/O to the same BlockNode with no
   * per-connection cache: a FLUSH on one connection flushes the node, so it
   * covers writes completed on every connection.
   */
  readonly multiConn?: boolean;
  /**
   * Offer the qemu:allocation-depth metadata context (default true). QMP's
   * block-export-add defaults its `allocation-depth` to false; the QMP
   * layer passes that through.
   */
  readonly allocationDepth?: boolean;
  /** Make every write durable before it is acknowledged, as if sent with FUA (QMP `writethrough`; default false). */
  readonly writethrough?: boolean;
  /** Reserved: name of a dirty bitmap to expose as qemu:dirty-bitmap:NAME. */
  readonly bitmap?: string;
}

/** One served export. Fields never change after it is added. */
export interface NbdExport {
  readonly name: string;
  readonly node: BlockNode;
  readonly writable: boolean;
  readonly description: string | undefined;
  readonly multiConn: boolean;
  readonly allocationDepth: boolean;
  readonly writethrough: boolean;
  readonly bitmap: string | undefined;
}

/** The name -> export table; the server decides when removal is allowed. */
export class NbdExportRegistry {
  private readonly exports = new Map<string, NbdExport>();

  /**
   * Add an export. INVALID_ARGUMENT for a bad name or a writable export of a
   * read-only node; ALREADY_EXISTS for a taken name; UNSUPPORTED for `bitmap`.
   */
  add(options: NbdExportOptions): NbdExport {
    encodeString(options.name, `export name '${options.name.slice(0, 64)}'`);
    if (options.description !== undefined) encodeString(options.description, `description of export '${options.name}'`);
    if (this.exports.has(options.name)) {
      throw new LivebackupError('ALREADY_EXISTS', `NBD server already has an export named '${options.name}'`);
    }
    const writable = options.writable ?? false;
    if (writable && options.node.readOnly) {
      throw new LivebackupError('INVALID_ARGUMENT', `Cannot export node '${options.node.nodeName}' writable: the node is read-only`);
    }
    if (options.node.isClosed) throw new LivebackupError('INVALID_STATE', `node '${options.node.nodeName}' is closed`);
    if (options.bitmap !== undefined) {
      throw new LivebackupError('UNSUPPORTED', `exporting dirty bitmap '${options.bitmap}' over NBD is not supported yet`);
    }
    const entry: NbdExport = {
      name: options.name,
      node: options.node,
      writable,
      description: options.description,
      multiConn: options.multiConn ?? true,
      allocationDepth: options.allocationDepth ?? true,
      writethrough: options.writethrough ?? false,
      bitmap: options.bitmap,
    };
    this.exports.set(entry.name, entry);
    return entry;
  }

  /** The export with this name, or undefined. */
  get(name: string): NbdExport | undefined {
    return this.exports.get(name);
  }

  /** The export with this name, or NOT_FOUND. */
  require(name: string): NbdExport {
    const entry = this.exports.get(name);
    if (!entry) throw new LivebackupError('NOT_FOUND', `Export '${name}' is not found`);
    return entry;
  }

  /** All exports, in the order they were added. */
  list(): NbdExport[] {
    return [...this.exports.values()];
  }

  /** Forget an export (the server decides first whether that is allowed). Returns whether it existed. */
  delete(name: string): boolean {
    return this.exports.delete(name);
  }
}
