/**
 * QAPI types of QEMU 7.2's backup commands (blockdev-backup, drive-backup)
 * in our schema language, and their TypeScript shapes.
 */
import { bool, enumType, int, int64, str, struct, type ValueOf } from '../qmp/schema.js';

export const MirrorSyncMode = enumType('MirrorSyncMode', ['top', 'full', 'none', 'incremental', 'bitmap']);
export const BitmapSyncMode = enumType('BitmapSyncMode', ['on-success', 'never', 'always']);
export const BlockdevOnError = enumType('BlockdevOnError', ['report', 'ignore', 'enospc', 'stop', 'auto']);
export const NewImageMode = enumType('NewImageMode', ['existing', 'absolute-paths']);

export const BackupPerf = struct('BackupPerf', { '*use-copy-range': bool, '*max-workers': int, '*max-chunk': int64 });

export const BackupCommon = struct('BackupCommon', {
  '*job-id': str,
  device: str,
  sync: MirrorSyncMode,
  '*speed': int,
  '*bitmap': str,
  '*bitmap-mode': BitmapSyncMode,
  '*compress': bool,
  '*on-source-error': BlockdevOnError,
  '*on-target-error': BlockdevOnError,
  '*auto-finalize': bool,
  '*auto-dismiss': bool,
  '*filter-node-name': str,
  '*x-perf': BackupPerf,
});

export const BlockdevBackup = struct('BlockdevBackup', { target: str }, BackupCommon);
export const DriveBackup = struct('DriveBackup', { target: str, '*format': str, '*mode': NewImageMode }, BackupCommon);

/** BackupCommon as the handlers receive it (validated). */
export type BackupCommonArgs = ValueOf<typeof BackupCommon>;
export type BlockdevBackupArgs = ValueOf<typeof BlockdevBackup>;
export type DriveBackupArgs = ValueOf<typeof DriveBackup>;
