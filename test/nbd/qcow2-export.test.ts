import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BlockGraph } from '../../src/block/block-graph.js';
import type { BlockNode } from '../../src/block/block-node.js';
import { NbdServer } from '../../src/nbd/server.js';
import { NbdClient } from '../../src/nbd/client.js';
import * as p from '../../src/nbd/protocol.js';
import { qemuImgCheck, qemuImgCompare, runOk, skipUnlessTools, type QemuMapEntry } from '../helpers/tools.js';
import { tempDir } from '../helpers/temp-dir.js';
import { RawPeer } from './raw-peer.js';

const MiB = 1024 * 1024;

interface MapEntry {
  start: number;
  length: number;
  value: number;
}

/** Merge neighbouring entries with equal values. */
function merge(entries: MapEntry[]): MapEntry[] {
  const merged: MapEntry[] = [];
  for (const entry of entries) {
    const last = merged[merged.length - 1];
    if (last && last.value === entry.value && last.start + last.length === entry.start) last.length += entry.length;
    else merged.push({ ...entry });
  }
  return merged;
}

/** Parse `nbdinfo --map` lines: start, length, value, description. */
function parseNbdinfoMap(text: string): MapEntry[] {
  return merge(
    text
      .trim()
      .split('\n')
      .map((line) => line.trim().split(/\s+/))
      .map(([start, length, value]) => ({ start: Number(start), length: Number(length), value: Number(value) })),
  );
}

/**
 * A two-layer qcow2 chain made with qemu-io: base data at [0, 1M), top data
 * at [512k, 1M) and [3M, 3M+64k), zero clusters at [2M, 2M+256k).
 */
async function makeChain(dir: string): Promise<string> {
  const base = join(dir, 'base.qcow2');
  const top = join(dir, 'top.qcow2');
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', base, '4M']);
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', top]);
  await runOk('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x11 0 1M', base]);
  await runOk('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x22 512k 512k', '-c', 'write -z 2M 256k', '-c', 'write -P 0x33 3M 64k', top]);
  return top;
}

async function serveQcow2(
  t: Parameters<typeof tempDir>[0],
  image: string,
  writable: boolean,
): Promise<{ uri: string; socket: string; server: NbdServer; node: BlockNode }> {
  const graph = new BlockGraph();
  const node = await graph.open({ driver: 'qcow2', 'read-only': !writable, file: { driver: 'file', filename: image } });
  const server = new NbdServer();
  server.addExport({ name: 'chain', node, writable });
  const socket = join(image + '.sock');
  await server.listen({ type: 'unix', path: socket });
  t.after(async () => {
    await server.close();
    await node.close();
  });
  return { uri: `nbd+unix:///chain?socket=${socket}`, socket, server, node };
}

test('qcow2 chain export: nbdinfo --map and allocation depth match qemu-img map; content matches', { skip: skipUnlessTools('qemu-img', 'qemu-io', 'nbdinfo') }, async (t) => {
  const dir = await tempDir(t, 'livebackup-nbd-qcow2-');
  const top = await makeChain(dir);
  const map = JSON.parse(await runOk('qemu-img', ['map', '--output=json', top])) as QemuMapEntry[];
  const { uri, socket } = await serveQcow2(t, top, false);

  const expectedAllocation = merge(map.map((e) => ({ start: e.start, length: e.length, value: (e.data ? 0 : p.NBD_STATE_HOLE) | (e.zero ? p.NBD_STATE_ZERO : 0) })));
  assert.deepEqual(parseNbdinfoMap(await runOk('nbdinfo', ['--map', uri])), expectedAllocation);
  const expectedDepth = merge(map.map((e) => ({ start: e.start, length: e.length, value: e.present ? e.depth + 1 : 0 })));
  assert.deepEqual(parseNbdinfoMap(await runOk('nbdinfo', ['--map=qemu:allocation-depth', uri])), expectedDepth);

  assert.ok(await qemuImgCompare(uri, top, 'raw', 'qcow2'), 'export differs from the qcow2 chain');

  // Zero runs are sent as OFFSET_HOLE chunks; the reassembled read equals qemu-img's view.
  const flat = join(dir, 'flat.raw');
  await runOk('qemu-img', ['convert', '-O', 'raw', top, flat]);
  const expected = await readFile(flat);
  const peer = await RawPeer.connect(socket);
  await peer.enter('chain');
  peer.request(p.NBD_CMD_READ, 1n, 0, 4 * MiB);
  const chunks = await peer.structuredReply();
  assert.ok(chunks.some((chunk) => chunk.type === p.NBD_REPLY_TYPE_OFFSET_HOLE), 'no hole chunk sent for zero clusters');
  const assembled = Buffer.alloc(4 * MiB, 0xff);
  for (const chunk of chunks) {
    if (chunk.type === p.NBD_REPLY_TYPE_OFFSET_DATA) chunk.payload.copy(assembled, p.readU64(chunk.payload, 0), 8);
    else if (chunk.type === p.NBD_REPLY_TYPE_OFFSET_HOLE) {
      const hole = p.decodeOffsetHole(chunk.payload);
      assembled.fill(0, hole.offset, hole.offset + hole.size);
    } else assert.equal(chunk.type, p.NBD_REPLY_TYPE_NONE);
  }
  assert.ok(assembled.equals(expected), 'structured read with holes differs');
  // With DF the same read is one data chunk.
  peer.request(p.NBD_CMD_READ, 2n, 0, 4 * MiB, p.NBD_CMD_FLAG_DF);
  const unfragmented = await peer.structuredReply();
  assert.equal(unfragmented.filter((chunk) => chunk.type === p.NBD_REPLY_TYPE_OFFSET_DATA || chunk.type === p.NBD_REPLY_TYPE_OFFSET_HOLE).length, 1);
  assert.ok(unfragmented[0]!.payload.subarray(8).equals(expected));
  peer.request(p.NBD_CMD_DISC, 3n, 0, 0);
  await peer.closed;
});

test('writable qcow2 export: writes through NbdClient pass qemu-img check and compare', { skip: skipUnlessTools('qemu-img', 'qemu-io') }, async (t) => {
  const dir = await tempDir(t, 'livebackup-nbd-qcow2-');
  const top = await makeChain(dir);
  const reference = join(dir, 'reference.qcow2');
  await runOk('qemu-img', ['convert', '-O', 'qcow2', top, reference]);
  const served = await serveQcow2(t, top, true);
  const client = await NbdClient.connectUri(served.uri, { metaContexts: ['qemu:allocation-depth'] });
  const writes: Array<[number, number, number]> = [
    [0, 4096, 0x41],
    [1536 * 1024, 200_000, 0x42],
    [4 * MiB - 777, 777, 0x43],
  ];
  await Promise.all(writes.map(([offset, length, byte]) => client.write(offset, new Uint8Array(length).fill(byte))));
  await client.writeZeroes(512 * 1024, 128 * 1024);
  await client.flush();
  const depth = await client.blockStatus(1536 * 1024, 4096, { reqOne: true });
  assert.deepEqual(depth.get('qemu:allocation-depth'), [{ length: 4096, flags: 1 }]);
  await client.disconnect();
  await served.server.close();
  await served.node.close();
  const check = await qemuImgCheck(top);
  assert.equal(check.code, 0, check.raw);
  const commands = writes.map(([offset, length, byte]) => `write -P ${byte} ${offset} ${length}`).concat('write -z 512k 128k');
  await runOk('qemu-io', ['-f', 'qcow2', ...commands.flatMap((command) => ['-c', command]), reference]);
  assert.ok(await qemuImgCompare(top, reference, 'qcow2', 'qcow2'), 'qcow2 written over NBD differs from the same writes done by qemu-io');
});
