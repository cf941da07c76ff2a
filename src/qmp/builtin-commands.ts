/**
 * Commands every QMP server has: qmp_capabilities, query-version,
 * query-commands and quit.
 */
import type { CommandTable } from './command-table.js';
import type { QmpSessionContext } from './dispatcher.js';
import { enumType, int, list, str, struct } from './schema.js';
import { versionInfo } from './version.js';

const QMPCapability = enumType('QMPCapability', ['oob']);
const VersionInfo = struct('VersionInfo', {
  qemu: struct('VersionTriple', { major: int, minor: int, micro: int }),
  package: str,
});
const CommandInfo = struct('CommandInfo', { name: str });

/**
 * Register the built-in commands in `table`. `onQuit` runs after the reply
 * to `quit` has been written (qemu-storage-daemon emits no event for quit).
 */
export function registerBuiltinCommands(table: CommandTable, onQuit: () => void): void {
  table.register({
    name: 'qmp_capabilities',
    args: struct('q_obj_qmp_capabilities-arg', { '*enable': list(QMPCapability) }),
    handler: (args, context) => {
      (context as QmpSessionContext).negotiate(args.enable ?? []);
    },
  });
  table.register({ name: 'query-version', returns: VersionInfo, handler: () => versionInfo() });
  table.register({ name: 'query-commands', returns: list(CommandInfo), handler: () => table.names().map((name) => ({ name })) });
  table.register({
    name: 'quit',
    handler: (_args, context) => {
      context.afterReply(onQuit);
    },
  });
}
