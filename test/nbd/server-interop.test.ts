import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SeededRandom } from '../helpers/random.js';
import { run, runOk, skipUnlessTools } from '../helpers/tools.js';
import { serveRawImage, startQemuNbd } from './nbd-fixture.js';

const MiB = 1024 * 1024;

/** Run qemu-io commands (-c each, so stdin is never read) against an NBD URI; fails on any verification error. */
async function qemuIo(uri: string, commands: string[]): Promise<string> {
  const result = await run('qemu-io', ['-f', 'raw', ...commands.flatMap((command) => ['-c', command]), uri]);
  const output = result.stdout + result.stderr;
  assert.equal(result.code, 0, output);
  assert.doesNotMatch(output, /Pattern verification failed|error|failed/i, output);
  return output;
}

test('qemu-io over nbd+unix: write -P, read -P, write -z, unaligned, FUA, flush, discard', { skip: skipUnlessTools('qemu-io') }, async (t) => {
  const served = await serveRawImage(t, { size: 4 * MiB });
  const output = await qemuIo(served.uri, [
    'write -P 0xab 0 64k',
    'read -P 0xab 0 64k',
    'write -z 64k 64k',
    'read -P 0 64k 64k',
    'write -f -P 0x11 1M 4k',
    'flush',
    'read -P 0x11 1M 4k',
    'write -P 0x22 3000 5000',
    'read -P 0x22 3000 5000',
    'write -P 0x33 4194303 1',
    'read -P 0x33 4194303 1',
    'discard 2M 64k',
    'aio_write -P 0x44 3M 128k',
    'aio_write -P 0x55 3200k 128k',
    'aio_flush',
    'read -P 0x44 3M 128k',
    'read -P 0x55 3200k 128k',
  ]);
  assert.equal(output.match(/^wrote /gm)?.length, 7, output);
  const expected = Buffer.alloc(4 * MiB);
  expected.fill(0xab, 0, 65536);
  expected.fill(0, 65536, 131072);
  expected.fill(0x22, 3000, 8000);
  expected.fill(0x11, MiB, MiB + 4096);
  expected.fill(0x33, 4 * MiB - 1);
  expected.fill(0x44, 3 * MiB, 3 * MiB + 131072);
  expected.fill(0x55, 3200 * 1024, 3328 * 1024);
  assert.ok((await readFile(served.image)).equals(expected), 'image content differs from what qemu-io wrote');
  // Out of range and read-only errors reach qemu-io as errors, and the server keeps serving.
  const past = await run('qemu-io', ['-f', 'raw', '-c', 'read 4M 512', served.uri]);
  assert.match(past.stdout + past.stderr, /Input\/output error|Invalid argument|out of range|outside/i);
  await qemuIo(served.uri, ['read -P 0xab 8000 57536']);
});

test('qemu-img convert from our export is byte-exact; qemu-img map matches', { skip: skipUnlessTools('qemu-img') }, async (t) => {
  const content = new SeededRandom(11).bytes(6 * MiB + 12345);
  const served = await serveRawImage(t, { content, writable: false });
  const out = join(served.dir, 'out.raw');
  await runOk('qemu-img', ['convert', '-f', 'raw', served.uri, '-O', 'raw', out]);
  // QEMU's NBD client rounds an export size up to 512 bytes and reads the tail as zeroes.
  const converted = await readFile(out);
  assert.equal(converted.length, Math.ceil(content.length / 512) * 512);
  assert.ok(converted.subarray(0, content.length).equals(Buffer.from(content)), 'converted image differs');
  assert.ok(converted.subarray(content.length).every((byte) => byte === 0));
  const map = JSON.parse(await runOk('qemu-img', ['map', '--output=json', '-f', 'raw', served.uri])) as Array<Record<string, unknown>>;
  // All data (the file driver has no hole detection), then QEMU's own zero padding to 512 bytes.
  assert.deepEqual(
    map.map(({ start, length, data, zero }) => ({ start, length, data, zero })),
    [
      { start: 0, length: content.length, data: true, zero: false },
      { start: content.length, length: converted.length - content.length, data: false, zero: true },
    ],
  );
});

test('nbdinfo --json shows size, flags and contexts; --map matches the allocation', { skip: skipUnlessTools('nbdinfo') }, async (t) => {
  const served = await serveRawImage(t, { size: 3 * MiB });
  const info = JSON.parse(await runOk('nbdinfo', ['--json', served.uri])) as { protocol: string; structured: boolean; exports: Array<Record<string, unknown>> };
  assert.equal(info.protocol, 'newstyle-fixed');
  assert.equal(info.structured, true);
  const entry = info.exports[0]!;
  assert.equal(entry['export-name'], 'disk');
  assert.equal(entry['export-size'], 3 * MiB);
  assert.equal(entry.description, 'test disk');
  assert.deepEqual(entry.contexts, ['base:allocation', 'qemu:allocation-depth']);
  for (const flag of ['can_flush', 'can_fua', 'can_trim', 'can_zero', 'can_fast_zero', 'can_df', 'can_multi_conn', 'can_cache']) {
    assert.equal(entry[flag], true, flag);
  }
  assert.equal(entry.is_read_only, false);
  assert.equal(entry.block_size_minimum, 1);
  assert.equal(entry.block_size_preferred, 4096);
  assert.equal(entry.block_size_maximum, 32 * MiB);

  assert.match(await runOk('nbdinfo', ['--map', served.uri]), /^\s*0\s+3145728\s+0\s+data\s*$/);
  assert.match(await runOk('nbdinfo', ['--map=qemu:allocation-depth', served.uri]), /^\s*0\s+3145728\s+1\s+local\s*$/);
  const list = await runOk('nbdinfo', ['--list', '--json', `nbd+unix:///?socket=${served.socket}`]);
  assert.deepEqual((JSON.parse(list) as { exports: Array<{ 'export-name': string }> }).exports.map((e) => e['export-name']), ['disk']);

  const readOnly = await serveRawImage(t, { size: MiB, writable: false, name: 'ro' });
  const roEntry = (JSON.parse(await runOk('nbdinfo', ['--json', readOnly.uri])) as { exports: Array<Record<string, unknown>> }).exports[0]!;
  assert.equal(roEntry.is_read_only, true);
  assert.equal(roEntry.can_trim, false);
  assert.equal(roEntry.can_zero, false);
  assert.equal(roEntry.can_flush, true);
});

test('nbdcopy both ways (multi-connection) is byte-exact', { skip: skipUnlessTools('nbdcopy') }, async (t) => {
  const size = 16 * MiB;
  const source = new SeededRandom(21).bytes(size);
  source.fill(0, 4 * MiB, 9 * MiB); // a zero run nbdcopy may send as zeroes
  const served = await serveRawImage(t, { size });
  const sourceFile = join(served.dir, 'source.raw');
  await writeFile(sourceFile, source);
  await runOk('nbdcopy', ['--connections=4', '--requests=8', sourceFile, served.uri]);
  assert.ok((await readFile(served.image)).equals(Buffer.from(source)), 'image -> export copy differs');
  const back = join(served.dir, 'back.raw');
  await runOk('nbdcopy', [served.uri, back]);
  assert.ok((await readFile(back)).equals(Buffer.from(source)), 'export -> file copy differs');
});

test('TCP export: nbd://127.0.0.1:PORT/EXPORT with qemu-img and nbdinfo', { skip: skipUnlessTools('qemu-img', 'nbdinfo') }, async (t) => {
  const content = new SeededRandom(31).bytes(2 * MiB);
  const served = await serveRawImage(t, { content });
  const bound = await served.server.listen({ type: 'inet', host: '127.0.0.1', port: 0 });
  assert.equal(bound.type, 'inet');
  const uri = `nbd://127.0.0.1:${bound.type === 'inet' ? bound.port : 0}/disk`;
  const out = join(served.dir, 'tcp.raw');
  await runOk('qemu-img', ['convert', '-f', 'raw', uri, '-O', 'raw', out]);
  assert.ok((await readFile(out)).equals(Buffer.from(content)));
  const info = JSON.parse(await runOk('nbdinfo', ['--json', uri])) as { exports: Array<Record<string, unknown>> };
  assert.equal(info.exports[0]!['export-size'], 2 * MiB);
  // Writes over TCP land in the image.
  await runOk('qemu-io', ['-f', 'raw', '-c', 'write -P 0x5a 1M 64k', uri]);
  const image = await readFile(served.image);
  assert.ok(image.subarray(MiB, MiB + 65536).every((byte) => byte === 0x5a));
});

test('nbdinfo --json of our export equals qemu-nbd serving the same image (writable, read-only, no allocation depth, one client)', { skip: skipUnlessTools('nbdinfo', 'qemu-nbd') }, async (t) => {
  const cases = [
    { writable: true, allocationDepth: true, maxConnections: undefined },
    { writable: false, allocationDepth: true, maxConnections: undefined },
    { writable: true, allocationDepth: false, maxConnections: undefined },
    { writable: true, allocationDepth: true, maxConnections: 1 },
  ];
  for (const { writable, allocationDepth, maxConnections } of cases) {
    const served = await serveRawImage(t, { size: 3 * MiB, writable, allocationDepth, server: { maxConnections } });
    const peerArgs = ['-f', 'raw', '-x', 'disk', '-D', 'test disk', '-e', String(maxConnections ?? 8)];
    if (allocationDepth) peerArgs.push('-A');
    if (!writable) peerArgs.push('-r');
    const peerSocket = await startQemuNbd(t, served.dir, served.image, peerArgs);
    const describe = async (uri: string) => {
      const info = JSON.parse(await runOk('nbdinfo', ['--json', uri])) as { exports: Array<Record<string, unknown>> };
      for (const entry of info.exports) delete entry.uri;
      return info;
    };
    const ours = await describe(served.uri);
    assert.deepEqual(ours, await describe(`nbd+unix:///disk?socket=${peerSocket}`), JSON.stringify({ writable, allocationDepth, maxConnections }));
    assert.equal(ours.exports[0]!.can_multi_conn, maxConnections !== 1);
  }
});

test('qemu-img convert -n into our export (fast-zero probe, zero runs, data) is byte-exact', { skip: skipUnlessTools('qemu-img') }, async (t) => {
  const size = 8 * MiB;
  const source = new SeededRandom(41).bytes(size);
  source.fill(0, MiB, 5 * MiB);
  const served = await serveRawImage(t, { content: new Uint8Array(size).fill(0x77) });
  const sourceFile = join(served.dir, 'source.raw');
  await writeFile(sourceFile, source);
  await runOk('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', '-t', 'writeback', sourceFile, served.uri]);
  assert.ok((await readFile(served.image)).equals(Buffer.from(source)), 'image written by qemu-img convert differs');
});
