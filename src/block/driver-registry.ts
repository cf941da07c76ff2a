/**
 * The table of block drivers by QAPI name. Adding a driver means adding its
 * factory here.
 */
import type { BlockDriverFactory } from './driver-factory.js';
import { fileDriverFactory } from './drivers/file.js';
import { rawDriverFactory } from './drivers/raw.js';
import { nullCoDriverFactory } from './drivers/null-co.js';
import { qcow2DriverFactory } from './qcow2/qcow2-factory.js';
import { blkdebugDriverFactory } from './drivers/blkdebug.js';
import { nbdDriverFactory } from '../nbd/nbd-driver-factory.js';

const factories = new Map<string, BlockDriverFactory>();

/** Make a driver available by its name. A later registration replaces an earlier one. */
export function registerDriver(factory: BlockDriverFactory): void {
  factories.set(factory.name, factory);
}

/** The factory for a driver name, or undefined. */
export function findDriver(name: string): BlockDriverFactory | undefined {
  return factories.get(name);
}

/** Names of all registered drivers, sorted. */
export function driverNames(): string[] {
  return [...factories.keys()].sort();
}

registerDriver(fileDriverFactory);
registerDriver(rawDriverFactory);
registerDriver(nullCoDriverFactory);
registerDriver(qcow2DriverFactory);
registerDriver(blkdebugDriverFactory);
registerDriver(nbdDriverFactory);
