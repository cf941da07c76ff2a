/**
 * `transaction`: several backup actions that all start or none does. Every
 * action is checked and its job created (not started) in order; the first
 * failure takes back the jobs already created (they end as QEMU's do:
 * aborting, concluded, null) and is the command's error. Only when all
 * are created do they start, one after the other, before the reply.
 */
import { LivebackupError } from '../errors.js';
import { any, enumType, list, struct, union } from '../qmp/schema.js';
import { BlockdevBackup, DriveBackup, type BlockdevBackupArgs, type DriveBackupArgs } from './backup-schema.js';
import { prepareBlockdevBackup, prepareDriveBackup, type PreparedBackup } from './backup-commands.js';
import type { CommandRegistrar, CommandServices } from './command-services.js';

const ACTION_KINDS = [
  'abort', 'block-dirty-bitmap-add', 'block-dirty-bitmap-remove', 'block-dirty-bitmap-clear',
  'block-dirty-bitmap-enable', 'block-dirty-bitmap-disable', 'block-dirty-bitmap-merge', 'blockdev-backup',
  'blockdev-snapshot', 'blockdev-snapshot-internal-sync', 'blockdev-snapshot-sync', 'drive-backup',
];

/** QAPI TransactionAction: implemented kinds are typed, the others take any data and are refused by name. */
const TransactionAction = union('TransactionAction', {
  base: { type: enumType('TransactionActionKind', ACTION_KINDS) },
  discriminator: 'type',
  branches: Object.fromEntries(
    ACTION_KINDS.map((kind) => {
      if (kind === 'blockdev-backup') return [kind, { data: BlockdevBackup }];
      if (kind === 'drive-backup') return [kind, { data: DriveBackup }];
      if (kind === 'abort') return [kind, { data: struct('Abort', {}) }];
      return [kind, { data: any }];
    }),
  ),
});

const TransactionArgs = struct('q_obj_transaction-arg', {
  actions: list(TransactionAction),
  '*properties': struct('TransactionProperties', { '*completion-mode': enumType('ActionCompletionMode', ['individual', 'grouped']) }),
});

type Action = { type: 'blockdev-backup'; data: BlockdevBackupArgs } | { type: 'drive-backup'; data: DriveBackupArgs } | { type: string; data: unknown };

/** Check one action and create its job, unstarted. */
async function prepareAction(services: CommandServices, action: Action): Promise<PreparedBackup> {
  switch (action.type) {
    case 'blockdev-backup':
      return prepareBlockdevBackup(services, action.data as BlockdevBackupArgs);
    case 'drive-backup':
      return prepareDriveBackup(services, action.data as DriveBackupArgs);
    case 'abort':
      throw new LivebackupError('INVALID_ARGUMENT', 'Transaction aborted using Abort action');
    default:
      throw new LivebackupError('UNSUPPORTED', `Transaction action '${action.type}' is not supported`);
  }
}

/** Register `transaction` on `server`, bound to `services`. */
export function registerTransactionCommand(server: CommandRegistrar, services: CommandServices): void {
  server.registerCommand({
    name: 'transaction',
    args: TransactionArgs,
    handler: async (args) => {
      if (args.properties?.['completion-mode'] === 'grouped') {
        throw new LivebackupError('UNSUPPORTED', "Transaction completion-mode 'grouped' is not supported yet");
      }
      const prepared: PreparedBackup[] = [];
      try {
        for (const action of args.actions) prepared.push(await prepareAction(services, action as Action));
      } catch (error) {
        for (const backup of prepared.reverse()) await backup.undo();
        throw error;
      }
      for (const backup of prepared) backup.job.start();
    },
  });
}
