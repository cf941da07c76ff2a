/**
 * Building test images with the real QEMU tools: images written by
 * qemu-io have QEMU's own layout, so our reading of them is checked against
 * the peer, not against ourselves.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runOk } from '../helpers/tools.js';
import type { SeededRandom } from '../helpers/random.js';

/** Run qemu-io commands (e.g. 'write -P 1 0 64k') against an image. */
export async function qemuIo(filename: string, format: string, commands: readonly string[]): Promise<void> {
  await runOk('qemu-io', ['-f', format, ...commands.flatMap((command) => ['-c', command]), filename]);
}

/** Write `bytes` seeded random bytes to `name` in dir, for qemu-io's `write -s FILE`. Returns the path. */
export async function patternFile(dir: string, name: string, random: SeededRandom, bytes: number): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, random.bytes(bytes));
  return path;
}

/** `qemu-img info --output=json` of a file, parsed. */
export async function qemuImgInfo(filename: string, extra: readonly string[] = []): Promise<Record<string, unknown>> {
  return JSON.parse(await runOk('qemu-img', ['info', '--output=json', '-U', ...extra, filename])) as Record<string, unknown>;
}
