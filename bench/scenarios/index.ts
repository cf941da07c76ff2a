/** Every scenario, in the order `npm run bench` runs them. */
import type { Scenario } from '../lib/scenario.js';
import { fullQcow2 } from './full-qcow2.js';
import { fullRaw } from './full-raw.js';
import { guestWrites } from './guest-writes.js';
import { memory } from './memory.js';
import { nbdRead } from './nbd-read.js';
import { sparse } from './sparse.js';

export const SCENARIOS: readonly Scenario[] = [fullQcow2, fullRaw, sparse, guestWrites, nbdRead, memory];
