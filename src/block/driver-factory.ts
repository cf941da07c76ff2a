/**
 * How a driver is opened and how image files of its format are created.
 * One factory per QAPI driver name; see driver-registry.ts.
 */
import type { BlockDriver } from './block-driver.js';
import type { BlockNode } from './block-node.js';

/** Type of a driver-specific option, checked before `open` is called. */
export type OptionType = 'string' | 'integer' | 'boolean' | 'object' | 'array';

export interface OptionSpec {
  readonly type: OptionType;
  /** For strings: the only accepted values. */
  readonly values?: readonly string[];
  readonly required?: boolean;
}

/** A child given as nested options, as the node-name of an existing node, or null for "none". */
export type ChildReference = Record<string, unknown> | string | null;

export interface OpenChildOptions {
  /** Open the child read-only (backing children always are). Defaults to the parent's mode. */
  readOnly?: boolean;
  /**
   * Real paths of the image files of this node and the overlays above it,
   * outermost first, for backing-chain loop detection. Forwarded to the child.
   */
  chain?: readonly string[];
}

export interface DriverOpenArgs {
  /** The node-name the new node will get. */
  readonly nodeName: string;
  /** Driver-specific options, already type-checked against the factory's spec. */
  readonly options: Readonly<Record<string, unknown>>;
  /** The node is opened read-only. */
  readonly readOnly: boolean;
  /** Real paths of the overlays above this node (see OpenChildOptions.chain). */
  readonly chain: readonly string[];
  /** When false, formats must not open a backing file named inside the image (untrusted images). */
  readonly allowBackingFromImage: boolean;
  /**
   * Open (nested options) or look up (node-name) a child. The link is
   * recorded; nested children are owned and closed with the parent.
   * Returns null for a null reference.
   */
  openChild(role: string, reference: ChildReference, options?: OpenChildOptions): Promise<BlockNode | null>;
}

/** Arguments for creating a new image file. */
export interface CreateImageArgs {
  readonly filename: string;
  /** Virtual size in bytes. */
  readonly size: number;
  /** Format options (`-o key=val`), already parsed: cluster_size, backing_file, backing_fmt, ... */
  readonly formatOptions: Readonly<Record<string, string | number | boolean>>;
}

export interface BlockDriverFactory {
  /** QAPI driver name. */
  readonly name: string;
  /** Driver-specific options it accepts (besides the common ones and child roles). */
  readonly options: Readonly<Record<string, OptionSpec>>;
  /** Option names that are child references (e.g. 'file', 'backing', 'image'). */
  readonly childRoles: readonly string[];
  /**
   * Open a driver instance. Throws LivebackupError: INVALID_ARGUMENT for
   * bad option values, UNSUPPORTED for unsupported features, CORRUPT_IMAGE
   * for malformed images, IO_ERROR for OS errors.
   */
  open(args: DriverOpenArgs): Promise<BlockDriver>;
  /**
   * Optional: create an image file of this format. Refuses unknown format
   * options with INVALID_ARGUMENT naming them. Overwrites an existing file.
   */
  create?(args: CreateImageArgs): Promise<void>;
  /** Optional: format options `create` understands, for help and validation. */
  readonly createOptions?: readonly string[];
}
