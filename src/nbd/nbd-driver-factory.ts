/**
 * The `nbd` protocol driver's entry in the driver table: its options, with
 * the NBD client stack loaded only when a node is opened (most commands
 * never need it).
 */
import type { BlockDriver } from '../block/block-driver.js';
import type { BlockDriverFactory, DriverOpenArgs } from '../block/driver-factory.js';

export const nbdDriverFactory: BlockDriverFactory = {
  name: 'nbd',
  options: {
    server: { type: 'object', required: true },
    export: { type: 'string' },
    'tls-creds': { type: 'string' },
    'tls-hostname': { type: 'string' },
    'x-dirty-bitmap': { type: 'string' },
    'reconnect-delay': { type: 'integer' },
    'open-timeout': { type: 'integer' },
  },
  childRoles: [],
  async open(args: DriverOpenArgs): Promise<BlockDriver> {
    const { openNbdDriver } = await import('./nbd-driver.js');
    return openNbdDriver(args);
  },
};
