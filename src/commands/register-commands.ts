/**
 * Every QMP command of the storage daemon, registered on a QmpServer (whose
 * built-ins already cover qmp_capabilities, query-version, query-commands
 * and quit) or on a registrar that wraps one.
 */
import { registerBackupCommands } from './backup-commands.js';
import { registerBlockCommands } from './block-commands.js';
import type { CommandRegistrar, CommandServices } from './command-services.js';
import { registerExportCommands } from './export-commands.js';
import { registerJobCommands } from './job-commands.js';
import { registerTransactionCommand } from './transaction-command.js';

/** Register the block, backup, job, export and transaction commands on `server`. */
export function registerDaemonCommands(server: CommandRegistrar, services: CommandServices): void {
  registerBlockCommands(server, services);
  registerBackupCommands(server, services);
  registerJobCommands(server, services);
  registerExportCommands(server, services);
  registerTransactionCommand(server, services);
}
