/** Scenario 1: full backup of a qcow2 image to a new qcow2. */
import { fullBackupScenario } from '../lib/full-backup-scenario.js';

export const fullQcow2 = fullBackupScenario('full-qcow2', 'qcow2');
