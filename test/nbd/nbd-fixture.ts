/**
 * Test fixture: a raw image in a temp dir served by a real NbdServer on a
 * unix socket (and optionally TCP), torn down after the test.
 */
import { spawn } from 'node:child_process';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import type { TestContext } from 'node:test';
import { BlockGraph } from '../../src/block/block-graph.js';
import type { BlockNode } from '../../src/block/block-node.js';
import { NbdServer, type NbdServerOptions } from '../../src/nbd/server.js';
import { LivebackupError } from '../../src/errors.js';
import { tempDir } from '../helpers/temp-dir.js';

export interface ServedImage {
  readonly dir: string;
  readonly image: string;
  readonly socket: string;
  readonly uri: string;
  readonly server: NbdServer;
  readonly node: BlockNode;
  readonly graph: BlockGraph;
}

/**
 * Create `image` with `content` (or `size` zero bytes), open it as a raw
 * node with discard=unmap and export it as `name` on a unix socket.
 */
export async function serveRawImage(
  t: Pick<TestContext, 'after'>,
  options: { size?: number; content?: Uint8Array; name?: string; writable?: boolean; allocationDepth?: boolean; server?: NbdServerOptions } = {},
): Promise<ServedImage> {
  const dir = await tempDir(t, 'livebackup-nbd-');
  const image = join(dir, 'disk.raw');
  await writeFile(image, options.content ?? new Uint8Array(options.size ?? 4 * 1024 * 1024));
  const graph = new BlockGraph();
  const node = await graph.open({ driver: 'raw', discard: 'unmap', file: { driver: 'file', filename: image } });
  const server = new NbdServer(options.server);
  const name = options.name ?? 'disk';
  server.addExport({ name, node, writable: options.writable ?? true, description: 'test disk', allocationDepth: options.allocationDepth });
  const socket = join(dir, 'nbd.sock');
  await server.listen({ type: 'unix', path: socket });
  t.after(async () => {
    await server.close();
    await node.close();
  });
  return { dir, image, socket, uri: `nbd+unix:///${name}?socket=${socket}`, server, node, graph };
}

/** Resolve when `predicate` holds, polling on the event loop (no timing thresholds: fails only by the test's own timeout). */
export async function eventually(predicate: () => boolean): Promise<void> {
  while (!predicate()) await new Promise((resolve) => setTimeout(resolve, 5));
}

/**
 * Start `qemu-nbd` serving `file` on a new unix socket in `dir` (extra
 * arguments such as -x NAME, -r, -A go in `args`); stopped after the test.
 * Resolves once the socket accepts connections.
 */
export async function startQemuNbd(t: Pick<TestContext, 'after'>, dir: string, file: string, args: string[]): Promise<string> {
  const socket = join(dir, `qemu-nbd-${process.hrtime.bigint()}.sock`);
  const child = spawn('qemu-nbd', ['-k', socket, '-t', '-e', '8', ...args, file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.after(async () => {
    child.kill('SIGTERM');
    await exited;
  });
  let failed = false;
  void exited.then(() => (failed = true));
  while (!(await canConnect(socket))) {
    if (failed) throw new Error(`qemu-nbd exited early: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return socket;
}

function canConnect(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createConnection(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

/** For assert.throws/rejects: a LivebackupError with this code (and errno, when given). */
export function isError(code: string, errno?: string): (error: unknown) => boolean {
  return (error) => error instanceof LivebackupError && error.code === code && (errno === undefined || error.errno === errno);
}
