/**
 * The block graph: every open node by node-name, and the one code path that
 * opens nodes from a QMP `blockdev-add` options object. The CLI, the library
 * and the daemon all open nodes through `BlockGraph.open`.
 */
import { realpath } from 'node:fs/promises';
import { BlockNode, type DiscardMode } from './block-node.js';
import type { ChildLink } from './block-driver.js';
import type { BlockDriverFactory, ChildReference, OpenChildOptions, OptionSpec } from './driver-factory.js';
import { findDriver } from './driver-registry.js';
import { LivebackupError } from '../errors.js';

/** A `blockdev-add` options object: { driver, node-name?, read-only?, file?, ... }. */
export type BlockdevOptions = Record<string, unknown>;

/** Options every driver accepts (QAPI BlockdevOptions base members). */
const COMMON_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  driver: { type: 'string', required: true },
  'node-name': { type: 'string' },
  'read-only': { type: 'boolean' },
  'auto-read-only': { type: 'boolean' },
  'force-share': { type: 'boolean' },
  discard: { type: 'string', values: ['ignore', 'unmap'] },
  'detect-zeroes': { type: 'string', values: ['off', 'on', 'unmap'] },
  cache: { type: 'object' },
};

const NODE_NAME_PATTERN = /^[A-Za-z][A-Za-z0-9_.+-]{0,126}$/;

export interface GraphOptions {
  /**
   * When false, no format opens a backing file named inside an image: the
   * caller must give `backing` explicitly. Protects a daemon from untrusted
   * images pointing at arbitrary host files.
   */
  allowBackingFromImage?: boolean;
}

interface OpenState {
  readOnly?: boolean;
  chain: readonly string[];
}

export class BlockGraph {
  private readonly nodes = new Map<string, BlockNode>();
  private autoNameCounter = 0;
  readonly allowBackingFromImage: boolean;

  constructor(options: GraphOptions = {}) {
    this.allowBackingFromImage = options.allowBackingFromImage ?? true;
  }

  /** The node with this node-name, or undefined. */
  get(nodeName: string): BlockNode | undefined {
    return this.nodes.get(nodeName);
  }

  /** The node with this name, or a NOT_FOUND error worded like QEMU's. */
  require(name: string): BlockNode {
    const node = this.nodes.get(name);
    if (!node) throw new LivebackupError('NOT_FOUND', `Cannot find device='${name}' nor node-name='${name}'`);
    return node;
  }

  /** All open nodes, in opening order. */
  list(): BlockNode[] {
    return [...this.nodes.values()];
  }

  /**
   * Open a node (and its nested children) from blockdev-add options. On
   * failure nothing stays open. Throws INVALID_ARGUMENT naming a bad or
   * unknown option, ALREADY_EXISTS for a duplicate node-name.
   */
  async open(options: BlockdevOptions): Promise<BlockNode> {
    return this.openWith(options, { chain: [] });
  }

  /**
   * Close and forget a node opened by `open` (blockdev-del). Refused with
   * BUSY while the node has parents or a blocker (job, export).
   */
  async remove(nodeName: string): Promise<void> {
    const node = this.nodes.get(nodeName);
    if (!node) throw new LivebackupError('NOT_FOUND', `Failed to find node with node-name='${nodeName}'`);
    if (node.parents.size > 0 || node.busyReason !== undefined) {
      throw new LivebackupError('BUSY', `Node ${nodeName} is in use`);
    }
    await this.closeTree(node);
  }

  /** Close every node, parents before children. */
  async closeAll(): Promise<void> {
    for (;;) {
      const roots = this.list().filter((node) => node.parents.size === 0);
      if (roots.length === 0) break;
      for (const root of roots) await this.closeTree(root);
    }
    for (const node of this.list()) await this.closeTree(node);
  }

  private async closeTree(node: BlockNode): Promise<void> {
    const owned = collectOwned(node);
    try {
      await node.close();
    } finally {
      for (const closed of owned) this.nodes.delete(closed.nodeName);
    }
  }

  private async openWith(options: BlockdevOptions, state: OpenState): Promise<BlockNode> {
    if (options === null || typeof options !== 'object' || Array.isArray(options)) {
      throw new LivebackupError('INVALID_ARGUMENT', 'block node options must be an object');
    }
    const driverName = options.driver;
    if (typeof driverName !== 'string') {
      throw new LivebackupError('INVALID_ARGUMENT', "Parameter 'driver' is missing");
    }
    const factory = findDriver(driverName);
    if (!factory) {
      throw new LivebackupError('INVALID_ARGUMENT', `Parameter 'driver' does not accept value '${driverName}'`);
    }
    const driverOptions = validateOptions(factory, options);
    const nodeName = this.claimNodeName(options['node-name']);
    const readOnly = (options['read-only'] as boolean | undefined) ?? state.readOnly ?? false;
    const cache = parseCache(options.cache);
    const children: ChildLink[] = [];
    const openChild = async (role: string, reference: ChildReference, childOptions: OpenChildOptions = {}) => {
      const child = await this.resolveChild(role, reference, {
        readOnly: childOptions.readOnly ?? (role === 'backing' ? true : readOnly),
        chain: childOptions.chain ?? state.chain,
      });
      if (child) children.push({ role, node: child.node, owned: child.owned });
      return child?.node ?? null;
    };
    let node: BlockNode | undefined;
    try {
      const driver = await factory.open({
        nodeName,
        options: driverOptions,
        readOnly,
        chain: state.chain,
        allowBackingFromImage: this.allowBackingFromImage,
        openChild,
      });
      try {
        node = new BlockNode({
          nodeName,
          driver,
          readOnly,
          discard: ((options.discard as DiscardMode | undefined) ?? 'ignore'),
          noFlush: cache.noFlush,
          length: await driver.getLength(),
          options: structuredClone(options),
        });
      } catch (error) {
        await driver.close();
        throw error;
      }
    } catch (error) {
      for (const link of children) {
        if (link.owned) await this.closeTree(link.node).catch(() => undefined);
      }
      throw error;
    }
    for (const link of node.children()) link.node.parents.add(node);
    this.nodes.set(nodeName, node);
    return node;
  }

  private async resolveChild(
    role: string,
    reference: ChildReference,
    state: Required<OpenState>,
  ): Promise<{ node: BlockNode; owned: boolean } | null> {
    if (reference === null) return null;
    if (typeof reference === 'string') {
      const node = this.nodes.get(reference);
      if (!node) throw new LivebackupError('NOT_FOUND', `Cannot find device='${reference}' nor node-name='${reference}'`);
      if (!state.readOnly && node.readOnly) {
        throw new LivebackupError('INVALID_ARGUMENT', `Block node '${reference}' is read-only, but '${role}' needs write access`);
      }
      return { node, owned: false };
    }
    if (typeof reference !== 'object' || Array.isArray(reference)) {
      throw new LivebackupError('INVALID_ARGUMENT', `Invalid parameter type for '${role}', expected: object or node-name string`);
    }
    const nested = 'read-only' in reference ? reference : { ...reference, 'read-only': state.readOnly };
    return { node: await this.openWith(nested, state), owned: true };
  }

  private claimNodeName(requested: unknown): string {
    if (requested === undefined) {
      let name: string;
      do {
        this.autoNameCounter += 1;
        name = `#block${String(this.autoNameCounter).padStart(3, '0')}`;
      } while (this.nodes.has(name));
      return name;
    }
    const name = requested as string;
    if (!NODE_NAME_PATTERN.test(name)) {
      throw new LivebackupError('INVALID_ARGUMENT', `Invalid node-name: '${name}'`);
    }
    if (this.nodes.has(name)) {
      throw new LivebackupError('ALREADY_EXISTS', `node-name=${name} is conflicting with a device id`);
    }
    return name;
  }
}

/** Check the options against the common and driver-specific specs; return the driver-specific part. */
function validateOptions(factory: BlockDriverFactory, options: BlockdevOptions): Record<string, unknown> {
  const driverOptions: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(options)) {
    const spec = COMMON_OPTIONS[name] ?? factory.options[name];
    if (factory.childRoles.includes(name)) {
      driverOptions[name] = value;
      continue;
    }
    if (!spec) throw new LivebackupError('INVALID_ARGUMENT', `Parameter '${name}' is unexpected`);
    checkType(name, value, spec);
    if (!(name in COMMON_OPTIONS)) driverOptions[name] = value;
  }
  for (const [name, spec] of Object.entries(factory.options)) {
    if (spec.required && options[name] === undefined) {
      throw new LivebackupError('INVALID_ARGUMENT', `Parameter '${name}' is missing`);
    }
  }
  return driverOptions;
}

function checkType(name: string, value: unknown, spec: OptionSpec): void {
  const expected: Record<OptionSpec['type'], (v: unknown) => boolean> = {
    string: (v) => typeof v === 'string',
    integer: (v) => typeof v === 'number' && Number.isSafeInteger(v),
    boolean: (v) => typeof v === 'boolean',
    object: (v) => typeof v === 'object' && v !== null && !Array.isArray(v),
    array: (v) => Array.isArray(v),
  };
  if (!expected[spec.type](value)) {
    const typeName = spec.type === 'integer' ? 'integer' : spec.type === 'boolean' ? 'bool' : spec.type;
    throw new LivebackupError('INVALID_ARGUMENT', `Invalid parameter type for '${name}', expected: ${typeName}`);
  }
  if (spec.values && !spec.values.includes(value as string)) {
    throw new LivebackupError('INVALID_ARGUMENT', `Parameter '${name}' does not accept value '${String(value)}'`);
  }
}

function parseCache(cache: unknown): { noFlush: boolean } {
  if (cache === undefined) return { noFlush: false };
  const members = cache as Record<string, unknown>;
  for (const [name, value] of Object.entries(members)) {
    if (name !== 'direct' && name !== 'no-flush') {
      throw new LivebackupError('INVALID_ARGUMENT', `Parameter 'cache.${name}' is unexpected`);
    }
    if (typeof value !== 'boolean') {
      throw new LivebackupError('INVALID_ARGUMENT', `Invalid parameter type for 'cache.${name}', expected: bool`);
    }
  }
  if (members.direct === true) {
    throw new LivebackupError('UNSUPPORTED', 'cache.direct=on (O_DIRECT) is not supported; use cache.direct=off');
  }
  return { noFlush: members['no-flush'] === true };
}

/** The node and every node it owns, transitively. */
function collectOwned(node: BlockNode): BlockNode[] {
  const result = [node];
  for (const link of node.children()) if (link.owned) result.push(...collectOwned(link.node));
  return result;
}

/** Real path of a file, or the path itself when it cannot be resolved. */
export async function realPathOrSelf(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch {
    return path;
  }
}

/** The process-wide graph used by `openNode` when none is given. */
export const defaultGraph = new BlockGraph();
