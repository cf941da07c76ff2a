/** Scenario 2: full backup of a raw image to a new raw image. */
import { fullBackupScenario } from '../lib/full-backup-scenario.js';

export const fullRaw = fullBackupScenario('full-raw', 'raw');
