/**
 * The block graph commands: blockdev-add, blockdev-del and
 * query-named-block-nodes, with QEMU 7.2's argument names, reply shapes and
 * refusal texts.
 */
import type { BlockNode } from '../block/block-node.js';
import type { BlockGraph } from '../block/block-graph.js';
import { BackupJob } from '../backup/backup-job.js';
import { LivebackupError } from '../errors.js';
import { bool, str, struct } from '../qmp/schema.js';
import { BlockdevOptions } from './block-core-schema.js';
import { blockDeviceInfo } from './block-device-info.js';
import type { CommandRegistrar, CommandServices } from './command-services.js';

type Options = Record<string, unknown>;

/** Child roles that take BlockdevRefOrNull: an empty string means null there, as in QEMU. */
const NULLABLE_CHILDREN = ['backing'];
const CHILD_ROLES = ['file', 'backing', 'image', 'data-file'];

/** `backing: ""` (how a command line says null) becomes `backing: null`, at every level. */
function normalizeChildren(options: Options): Options {
  const result: Options = { ...options };
  for (const role of CHILD_ROLES) {
    const child = result[role];
    if (NULLABLE_CHILDREN.includes(role) && child === '') result[role] = null;
    else if (typeof child === 'object' && child !== null) result[role] = normalizeChildren(child as Options);
  }
  return result;
}

/**
 * Open a node from schema-checked BlockdevOptions, as blockdev-add and
 * --blockdev do: the root needs a node-name that is not taken.
 */
export async function addBlockdev(graph: BlockGraph, options: Options): Promise<BlockNode> {
  const nodeName = options['node-name'];
  if (typeof nodeName !== 'string') throw new LivebackupError('INVALID_ARGUMENT', "'node-name' must be specified for the root node");
  if (graph.get(nodeName)) throw new LivebackupError('ALREADY_EXISTS', `Duplicate nodes with node-name='${nodeName}'`);
  return graph.open(normalizeChildren(options));
}

/** True when `node` was opened as the nested child of another node (not by blockdev-add itself). */
function isImplicitChild(graph: BlockGraph, node: BlockNode): boolean {
  return graph.list().some((parent) => parent.children().some((link) => link.owned && link.node === node));
}

/** Why blockdev-del must refuse `node`, in qemu-storage-daemon's words and order of checks, or undefined. */
function deleteRefusal(services: CommandServices, node: BlockNode): string | undefined {
  const name = node.nodeName;
  if (services.exports.isExported(node)) return `Node ${name} is in use`;
  const backups = services.jobs.list().filter((job): job is BackupJob => job instanceof BackupJob);
  if (backups.some((job) => job.target === node)) return `Node '${name}' is busy: block device is in use by block job: backup`;
  if (isImplicitChild(services.graph, node)) return `Node ${name} is not owned by the monitor`;
  if (node.parents.size > 0 || node.busyReason !== undefined) return `Block device ${name} is in use`;
  return undefined;
}

/** Register this family's commands on `server`, bound to `services`. */
export function registerBlockCommands(server: CommandRegistrar, services: CommandServices): void {
  server.registerCommand({
    name: 'blockdev-add',
    args: BlockdevOptions,
    handler: async (args) => {
      await addBlockdev(services.graph, args as Options);
    },
  });
  server.registerCommand({
    name: 'blockdev-del',
    args: struct('q_obj_blockdev-del-arg', { 'node-name': str }),
    handler: async (args) => {
      const node = services.graph.get(args['node-name']);
      if (!node) throw new LivebackupError('NOT_FOUND', `Failed to find node with node-name='${args['node-name']}'`);
      const refusal = deleteRefusal(services, node);
      if (refusal !== undefined) throw new LivebackupError('BUSY', refusal);
      await services.graph.remove(node.nodeName);
    },
  });
  server.registerCommand({
    name: 'query-named-block-nodes',
    args: struct('q_obj_query-named-block-nodes-arg', { '*flat': bool }),
    handler: (args) => Promise.all(services.graph.list().reverse().map((node) => blockDeviceInfo(node, args.flat ?? false))),
  });
}
