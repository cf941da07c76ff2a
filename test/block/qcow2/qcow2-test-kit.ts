/**
 * Shared helpers of the qcow2 tests: opening images in a private graph,
 * reading a whole node, and comparing with files made by qemu-img.
 */
import { readFile, writeFile } from 'node:fs/promises';
import assert from 'node:assert/strict';
import { BlockGraph } from '../../../src/block/block-graph.js';
import type { BlockNode } from '../../../src/block/block-node.js';
import { LivebackupError } from '../../../src/errors.js';
import { qemuImgCheck, runOk } from '../../helpers/tools.js';

/** Open `filename` as a qcow2 node in a new graph; close it with `graph.closeAll()`. */
export async function openQcow2(
  filename: string,
  options: { readOnly?: boolean; extra?: Record<string, unknown> } = {},
): Promise<{ graph: BlockGraph; node: BlockNode }> {
  const graph = new BlockGraph();
  const node = await graph.open({
    driver: 'qcow2',
    'read-only': options.readOnly ?? false,
    discard: 'unmap',
    file: { driver: 'file', filename },
    ...options.extra,
  });
  return { graph, node };
}

/** The whole guest content of a node, read in 4 MiB requests. */
export async function readAll(node: BlockNode): Promise<Uint8Array> {
  const out = new Uint8Array(node.length);
  const chunk = 4 * 1024 * 1024;
  for (let offset = 0; offset < out.length; offset += chunk) {
    await node.read(offset, out.subarray(offset, Math.min(out.length, offset + chunk)));
  }
  return out;
}

/** `qemu-img convert -O raw` of an image, as bytes. */
export async function qemuRaw(filename: string, rawPath: string, extraArgs: string[] = []): Promise<Uint8Array> {
  await runOk('qemu-img', ['convert', '-U', ...extraArgs, '-O', 'raw', filename, rawPath]);
  return new Uint8Array(await readFile(rawPath));
}

/** Assert two byte arrays are equal, naming the first differing offset. */
export function assertSameBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  if (Buffer.from(actual.buffer, actual.byteOffset, actual.length).equals(Buffer.from(expected.buffer, expected.byteOffset, expected.length))) return;
  let at = 0;
  while (at < actual.length && actual[at] === expected[at]) at++;
  assert.fail(`${what}: first difference at byte ${at} (got ${actual[at]}, expected ${expected[at]})`);
}

/** qemu-img check must report a clean image: exit 0, no leaks, no corruptions. */
export async function assertCleanCheck(filename: string): Promise<void> {
  const check = await qemuImgCheck(filename);
  assert.equal(check.corruptions, 0, `qemu-img check corruptions:\n${check.raw}`);
  assert.equal(check.leaks, 0, `qemu-img check leaks:\n${check.raw}`);
  assert.equal(check.code, 0, `qemu-img check exit code:\n${check.raw}`);
}

/** Write bytes to a raw file. */
export async function writeRaw(path: string, bytes: Uint8Array): Promise<void> {
  await writeFile(path, bytes);
}

/** True when `error` is a LivebackupError, optionally with one of `codes`. */
export function isLivebackupError(error: unknown, ...codes: string[]): boolean {
  return error instanceof LivebackupError && (codes.length === 0 || codes.includes(error.code));
}

/** A write-type operation of the randomized tests. */
export interface ReferenceOp {
  kind: 'write' | 'zero' | 'discard' | 'read';
  offset: number;
  bytes: number;
  data?: Uint8Array;
}

/**
 * Apply an op to an in-memory reference exactly as a version 3 qcow2 node
 * must: discard zeroes the whole clusters inside the range and leaves
 * partial clusters untouched; reads change nothing.
 */
export function applyToReference(reference: Uint8Array, op: ReferenceOp, clusterSize: number): void {
  if (op.kind === 'write') reference.set(op.data!, op.offset);
  else if (op.kind === 'zero') reference.fill(0, op.offset, op.offset + op.bytes);
  else if (op.kind === 'discard') {
    const start = Math.ceil(op.offset / clusterSize) * clusterSize;
    const end = Math.floor((op.offset + op.bytes) / clusterSize) * clusterSize;
    if (end > start) reference.fill(0, start, end);
  }
}
