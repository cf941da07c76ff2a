/**
 * Fuzz target (b): the NBD server fed mutated client conversations over a
 * real unix socket: handshake flags, options (structured replies, meta
 * contexts, INFO/GO/EXPORT_NAME, LIST), then transmission requests of every
 * kind, against a qcow2 export. The client sends its bytes, half-closes and waits for the server to
 * close. A case fails on an uncaught exception or unhandled rejection in
 * the process, on a connection the server never closes, or on an access
 * outside the exported image; every 250 cases a well-behaved client must
 * still be served (read back what it wrote).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlockGraph } from '../../../src/block/block-graph.js';
import { createImage, openImage } from '../../../src/block/image-file.js';
import { NbdClient } from '../../../src/nbd/client.js';
import { NbdServer } from '../../../src/nbd/server.js';
import { SeededRandom } from '../../helpers/random.js';
import { GuardedMemoryFiles } from './guarded-memory-file.js';
import { ConversationBuilder } from './wire-builder.js';
import type { FuzzSeed, FuzzTarget } from './fuzz-target.js';
import { ProcessFaultWatch } from './process-fault-watch.js';
import { exchange } from './socket-exchange.js';

const KiB = 1024;
const DISK = 1024 * KiB;
const CLOSE_TIMEOUT_MS = 10_000;
const HEALTH_EVERY = 250;

const NBD_OPT = { EXPORT_NAME: 1, ABORT: 2, LIST: 3, INFO: 6, GO: 7, STRUCTURED_REPLY: 8, LIST_META_CONTEXT: 9, SET_META_CONTEXT: 10 } as const;
const NBD_CMD = { READ: 0, WRITE: 1, DISC: 2, FLUSH: 3, TRIM: 4, CACHE: 5, WRITE_ZEROES: 6, BLOCK_STATUS: 7 } as const;

/** Valid client conversations: several handshakes, each followed by a request mix. */
function nbdSeeds(): FuzzSeed[] {
  const random = new SeededRandom(4242);
  const seeds: FuzzSeed[] = [];
  const handshakes: Array<[string, (b: ConversationBuilder) => void]> = [
    ['go-structured', (b) => b.option(NBD_OPT.STRUCTURED_REPLY, new Uint8Array()).metaContext(NBD_OPT.SET_META_CONTEXT, 'disk', ['base:allocation', 'qemu:allocation-depth']).go(NBD_OPT.GO, 'disk', [0, 1, 2, 3])],
    ['go-simple', (b) => b.go(NBD_OPT.GO, 'disk', [])],
    ['export-name', (b) => b.exportName('disk')],
    ['read-only', (b) => b.option(NBD_OPT.STRUCTURED_REPLY, new Uint8Array()).go(NBD_OPT.GO, 'ro', [3])],
    ['list-info', (b) => b.option(NBD_OPT.LIST, new Uint8Array()).go(NBD_OPT.INFO, 'disk', [2]).metaContext(NBD_OPT.LIST_META_CONTEXT, 'disk', ['base:', 'qemu:']).go(NBD_OPT.GO, '', [])],
    ['abort', (b) => b.option(NBD_OPT.ABORT, new Uint8Array())],
  ];
  for (const [name, handshake] of handshakes) {
    const builder = new ConversationBuilder(3);
    handshake(builder);
    for (let i = 0; i < 6; i++) {
      const length = random.pick([512, 4096, 1000, 65536]);
      const offset = random.int(0, DISK - length);
      const command = random.pick([NBD_CMD.READ, NBD_CMD.WRITE, NBD_CMD.WRITE, NBD_CMD.FLUSH, NBD_CMD.TRIM, NBD_CMD.CACHE, NBD_CMD.WRITE_ZEROES, NBD_CMD.BLOCK_STATUS]);
      const flags = random.pick([0, 0, 1, 2, 4, 8, 16]);
      builder.request(command, flags, BigInt(i + 1), offset, command === NBD_CMD.FLUSH ? 0 : length, command === NBD_CMD.WRITE ? random.bytes(length) : undefined);
    }
    builder.request(NBD_CMD.DISC, 0, 99n, 0, 0);
    seeds.push({ name: `nbd-${name}`, bytes: builder.bytes(), hints: { fields: builder.fields, maxLength: 256 * KiB } });
  }
  return seeds;
}

/** An NBD server on a private unix socket, exporting a qcow2 in guarded memory writable ('disk') and read-only ('ro'). */
export class NbdFuzzTarget implements FuzzTarget {
  readonly name = 'nbd';
  private server: NbdServer | undefined;
  private graph: BlockGraph | undefined;
  private dir = '';
  private socketPath = '';
  private key = 0;
  private cases = 0;
  private readonly watch = new ProcessFaultWatch();

  async seeds(): Promise<FuzzSeed[]> {
    this.dir = await mkdtemp(join(tmpdir(), 'livebackup-fuzz-nbd-'));
    this.socketPath = join(this.dir, 'nbd.sock');
    // A qcow2 disk with data, zero and unallocated clusters, so reads and block status have holes to describe.
    const imagePath = join(this.dir, 'disk.qcow2');
    await createImage(imagePath, 'qcow2', DISK, { cluster_size: 4096 });
    const writer = new BlockGraph();
    const image = await openImage(imagePath, { graph: writer, format: 'qcow2' });
    const random = new SeededRandom(99);
    for (let i = 0; i < 8; i++) {
      const offset = random.int(0, DISK / 4096 - 16) * 4096;
      if (i % 3 === 2) await image.writeZeroes(offset, 32 * KiB);
      else await image.write(offset, random.bytes(random.int(1, 48 * KiB)));
    }
    await writer.closeAll();
    this.key = GuardedMemoryFiles.put(new Uint8Array(await readFile(imagePath)), { maxGrowth: 64 * 1024 * KiB });
    this.graph = new BlockGraph({ allowBackingFromImage: false });
    const node = await this.graph.open({ driver: 'qcow2', 'node-name': 'fuzz-disk', discard: 'unmap', file: { driver: 'fuzz-memory', key: this.key } });
    this.server = new NbdServer({ handshakeTimeoutMs: 5000, maxInFlightBytes: 8 * 1024 * KiB });
    await this.server.listen({ type: 'unix', path: this.socketPath });
    this.server.addExport({ name: 'disk', node, writable: true });
    this.server.addExport({ name: 'ro', node, writable: false });
    this.watch.start();
    return nbdSeeds();
  }

  async run(bytes: Uint8Array): Promise<string | undefined> {
    const outcome = await exchange(this.socketPath, bytes, CLOSE_TIMEOUT_MS);
    if (typeof outcome === 'string') return outcome;
    const fault = this.watch.take();
    if (fault !== undefined) return fault;
    const violations = GuardedMemoryFiles.violations(this.key);
    if (violations.length > 0) return `access outside the export's image: ${violations.join('; ')}`;
    if (++this.cases % HEALTH_EVERY === 0) return this.checkHealth();
    return undefined;
  }

  async close(): Promise<void> {
    this.watch.stop();
    await this.server?.close();
    await this.graph?.closeAll();
    GuardedMemoryFiles.drop(this.key);
    await rm(this.dir, { recursive: true, force: true });
  }

  /** A well-behaved client must still connect, write, read back and flush. */
  private async checkHealth(): Promise<string | undefined> {
    try {
      const client = await NbdClient.connect({ type: 'unix', path: this.socketPath }, { exportName: 'disk' });
      const data = new SeededRandom(this.cases).bytes(4096);
      await client.write(8192, data);
      const back = new Uint8Array(4096);
      await client.read(8192, back);
      await client.flush();
      await client.disconnect();
      if (Buffer.compare(back, data) !== 0) return 'health check: a well-behaved client read back other data';
      return undefined;
    } catch (error) {
      return `health check: a well-behaved client failed: ${error instanceof Error ? error.message : String(error)}`;
    }
  }
}
