/**
 * The `nbd` protocol driver: a block node whose bytes live on an NBD server
 * (QAPI BlockdevOptionsNbd: `server`, `export`). It wraps one NbdClient;
 * requests are pipelined over that connection. Capabilities follow the
 * transmission flags: without SEND_WRITE_ZEROES zeroing falls back to
 * writes (BlockNode emulation), without SEND_TRIM discard does nothing.
 * Block status uses base:allocation when the server offers it.
 */
import type { BlockDriver, ChildLink, DriverBlockStatus, WriteFlags, WriteZeroesFlags } from '../block/block-driver.js';
import type { DriverOpenArgs } from '../block/driver-factory.js';
import { LivebackupError } from '../errors.js';
import { NbdClient } from './client.js';
import {
  BASE_ALLOCATION,
  NBD_FLAG_SEND_FLUSH,
  NBD_FLAG_SEND_TRIM,
  NBD_FLAG_SEND_WRITE_ZEROES,
  NBD_MAX_PAYLOAD,
  NBD_STATE_ZERO,
} from './protocol.js';
import { socketAddressFromQapi } from './qapi-socket-address.js';

/** Largest block status query sent at once (the wire length is 32 bits). */
const MAX_STATUS_QUERY = 1024 * 1024 * 1024;

/** A BlockDriver over one NbdClient connection (see the file comment). */
export class NbdDriver implements BlockDriver {
  readonly driverName = 'nbd';
  readonly isFormat = false;
  readonly isFilter = false;
  readonly supportsBacking = false;
  readonly requestAlignment: number;
  readonly maxTransfer: number;
  private readonly hasAllocationContext: boolean;

  constructor(private readonly client: NbdClient) {
    const session = client.session;
    this.requestAlignment = Math.max(1, session.minimumBlockSize);
    const maximum = Math.min(session.maximumPayload, NBD_MAX_PAYLOAD);
    this.maxTransfer = Math.max(this.requestAlignment, maximum - (maximum % this.requestAlignment));
    this.hasAllocationContext = session.metaContexts.has(BASE_ALLOCATION);
  }

  read(offset: number, buf: Uint8Array): Promise<void> {
    return this.client.read(offset, buf);
  }

  write(offset: number, buf: Uint8Array, flags: WriteFlags): Promise<void> {
    return this.client.write(offset, buf, { fua: flags.fua });
  }

  async writeZeroes(offset: number, bytes: number, flags: WriteZeroesFlags): Promise<void> {
    if (!this.hasFlag(NBD_FLAG_SEND_WRITE_ZEROES)) {
      throw new LivebackupError('UNSUPPORTED', 'NBD server does not support write zeroes', { errno: 'ENOTSUP' });
    }
    await this.client.writeZeroes(offset, bytes, { fua: flags.fua, noHole: !flags.mayUnmap, fastZero: flags.noFallback });
  }

  async discard(offset: number, bytes: number): Promise<void> {
    if (this.hasFlag(NBD_FLAG_SEND_TRIM)) await this.client.trim(offset, bytes);
  }

  async flush(): Promise<void> {
    if (this.hasFlag(NBD_FLAG_SEND_FLUSH)) await this.client.flush();
  }

  /** One extent from base:allocation (ZERO: zero, else data); all data without the context. */
  async blockStatus(offset: number, bytes: number): Promise<DriverBlockStatus> {
    if (!this.hasAllocationContext) return { bytes, state: 'data' };
    const query = Math.min(bytes, MAX_STATUS_QUERY);
    const extents = (await this.client.blockStatus(offset, query, { reqOne: true })).get(BASE_ALLOCATION) ?? [];
    const first = extents[0];
    if (!first || first.length === 0) throw new LivebackupError('PROTOCOL_ERROR', `NBD server returned no extent for block status at ${offset}`);
    return { bytes: Math.min(first.length, bytes), state: first.flags & NBD_STATE_ZERO ? 'zero' : 'data' };
  }

  async getLength(): Promise<number> {
    return this.client.size;
  }

  children(): readonly ChildLink[] {
    return [];
  }

  async close(): Promise<void> {
    await this.client.disconnect();
  }

  private hasFlag(flag: number): boolean {
    return (this.client.session.transmissionFlags & flag) !== 0;
  }
}

/** Connect to the server named in the options and open the export (the `nbd` factory's open). */
export async function openNbdDriver(args: DriverOpenArgs): Promise<BlockDriver> {
  if (args.options['tls-creds'] !== undefined) throw new LivebackupError('UNSUPPORTED', 'NBD over TLS is not supported');
  if (args.options['x-dirty-bitmap'] !== undefined) throw new LivebackupError('UNSUPPORTED', "Parameter 'x-dirty-bitmap' is not supported");
  const address = socketAddressFromQapi(args.options.server, 'server');
  const exportName = (args.options.export as string | undefined) ?? '';
  const client = await NbdClient.connect(address, { exportName, metaContexts: [BASE_ALLOCATION] });
  if (client.readOnly && !args.readOnly) {
    await client.disconnect();
    throw new LivebackupError('INVALID_ARGUMENT', `NBD export '${exportName}' is read-only; open the node with read-only=true`, { errno: 'EPERM' });
  }
  return new NbdDriver(client);
}
