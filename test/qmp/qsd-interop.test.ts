/**
 * The same QMP conversations played against a real qemu-storage-daemon
 * and against our server must produce the same transcript.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { LivebackupError } from '../../src/errors.js';
import { int, str, struct } from '../../src/qmp/schema.js';
import { QmpServer } from '../../src/qmp/server.js';
import { SeededRandom } from '../helpers/random.js';
import { skipUnlessTools } from '../helpers/tools.js';
import { runTranscript, startQsd, type TranscriptStep } from '../helpers/qsd.js';
import { tempDir } from '../helpers/temp-dir.js';
import { BlockdevOptions } from './qapi-test-schema.js';

const skip = skipUnlessTools('qemu-storage-daemon');

/** Our server with stand-ins for the qsd commands the transcripts use (they only ever fail validation or lookup). */
async function startOurServer(t: TestContext): Promise<string> {
  const server = new QmpServer();
  server.registerCommand({ name: 'query-block-jobs', handler: () => [] });
  server.registerCommand({
    name: 'blockdev-add',
    args: BlockdevOptions,
    handler: () => {
      throw new LivebackupError('UNSUPPORTED', 'blockdev-add stand-in must not run in this test');
    },
  });
  server.registerCommand({
    name: 'block-job-set-speed',
    args: struct('BlockJobSetSpeedArgs', { device: str, speed: int }),
    errorClasses: { NOT_FOUND: 'DeviceNotActive' },
    handler: ({ device }: { device: string }) => {
      throw new LivebackupError('NOT_FOUND', `Block job '${device}' not found`);
    },
  });
  server.registerCommand({
    name: 'job-cancel',
    args: struct('JobCancelArgs', { id: str }),
    handler: () => {
      throw new LivebackupError('NOT_FOUND', 'Job not found');
    },
  });
  const path = join(await tempDir(t, 'livebackup-qmp-'), 'qmp.sock');
  await server.listenUnix(path);
  t.after(() => server.close());
  return path;
}

const blockdevAdd = (args: unknown): TranscriptStep => ({ execute: 'blockdev-add', arguments: args });

const CONVERSATION: TranscriptStep[] = [
  { execute: 'query-version', id: 'early' },
  { raw: 'not\n' },
  { raw: '{"execute":"qmp_capabilities","arguments":{"enable":["bogus"]}}\n' },
  { raw: '{"execute":"qmp_capabilities","id":5,"arguments":5}\n' },
  { execute: 'qmp_capabilities' },
  { execute: 'qmp_capabilities' },
  { execute: 'no-such-command', id: 1 },
  { execute: 'query-version', id: { a: [1, 'b'], n: null } },
  { execute: 'query-block-jobs', arguments: { x: 1 } },
  { execute: 'query-block-jobs', id: 'jobs' },
  { raw: '{"execute":1}\n' },
  { raw: '{"execute":"query-version","arguments":[]}\n' },
  { raw: '{"execute":"query-version","arguments":null}\n' },
  { raw: '{"execute":"query-version","foo":1}\n' },
  // Several bad members: QEMU reports the first in its hash-table order.
  { raw: '{"foo":1,"bar":2,"execute":"query-version"}\n' },
  { raw: '{"zeta":1,"alpha":2,"execute":3,"arguments":[]}\n' },
  { raw: '{"arguments":[],"execute":3,"id":9}\n' },
  { raw: '{"exec-oob":"query-version"}\n' },
  { raw: '{}\n' },
  { raw: '[1, 2]\n' },
  { raw: '{"a":}\n' },
  { raw: '{"a" 1}\n' },
  { raw: '[1 2]\n' },
  { raw: '{"a":1,"a":2}\n' },
  { raw: "{'execute':'query-version','id':'single-quoted'}\n" },
  { raw: '{"execute":"query-version","id":"a\\x"}\n' },
  { raw: '{"execute":"query-version","id":"\\ud800"}\n' },
  { raw: '{"execute":"query-version","id":"a\u0001b"}\n', replies: 2 },
  { raw: '{"execute":"query-version","id":01}\n', replies: 2 },
  { raw: '{"execute":"query-version","id":"\u00e9\\ud83d\\ude00"}\n' },
  { raw: '"\\u12"\n' },
  { raw: '"\\u00zz"\n' },
  { raw: '"\\uffff"\n' },
  { raw: '"\\ud83f\\udffe"\n' },
  { raw: '{"execute":"query-version","id":"\\ud83d\\udfff\\u0000"}\n' },
  { raw: '\u0000\n' },
  { raw: 'True\n' },
  // The newline ends '1e+' as its offending byte, so error recovery skips until the next one.
  { raw: '1e+\n.5 ignored\n' },
  { raw: '.5\n' },
  { raw: '{"execute":"query-version","id":-1.5E-3}\n' },
  { raw: '{"execute":"query-version","id":1}\t{"execute":"query-version","id":2}{"execute":"query-version","id":3}', replies: 3 },
  { raw: `${'['.repeat(1025)}\n` },
  { raw: '{"execute":"query-version","id":"after-nesting"}\n' },
  blockdevAdd({}),
  blockdevAdd({ driver: 5 }),
  blockdevAdd({ driver: 'nope' }),
  blockdevAdd({ driver: 'qcow2', 'node-name': 'x' }),
  blockdevAdd({ driver: 'qcow2', 'node-name': 'x', file: { driver: 'file' } }),
  blockdevAdd({ driver: 'qcow2', 'node-name': 'x', file: { driver: 'file', filename: 1 } }),
  blockdevAdd({ driver: 'qcow2', 'node-name': 'x', file: 5 }),
  blockdevAdd({ driver: 'qcow2', 'node-name': 'x', file: 'n0', backing: 5 }),
  blockdevAdd({ driver: 'qcow2', 'node-name': 'x', file: 'n0', bogus: 5 }),
  blockdevAdd({ driver: 'qcow2', 'node-name': 'x', file: { driver: 'file', filename: '/nonexistent', bogus: 1 } }),
  blockdevAdd({ driver: 'qcow2', 'node-name': 'x', file: { driver: 'file', filename: '/nonexistent', aio: 'bad' } }),
  blockdevAdd({ driver: 'qcow2', 'node-name': 'x', file: 'n0', cache: { direct: 'x' } }),
  blockdevAdd({ driver: 'null-co', 'node-name': 'a', 'latency-ns': 'x' }),
  blockdevAdd({ driver: 'blkdebug', 'node-name': 'e', image: 'n0', 'max-transfer': 4294967296 }),
  blockdevAdd({ driver: 'blkdebug', 'node-name': 'e', image: { driver: 'null-co', size: 'x' } }),
  blockdevAdd({ driver: 'blkdebug', 'node-name': 'e', image: 'n0', 'set-state': [5] }),
  blockdevAdd({ driver: 'blkdebug', 'node-name': 'e', image: 'n0', 'set-state': [{ event: 'x' }] }),
  { execute: 'block-job-set-speed', arguments: { device: 'j', speed: 'fast' } },
  { execute: 'block-job-set-speed', arguments: { device: 'j' } },
  { execute: 'block-job-set-speed', arguments: { device: 'nope', speed: 0 }, id: 'speed' },
  { execute: 'job-cancel', arguments: { id: 'nope' } },
  // Integral floats are still floats: integer parameters refuse them.
  { raw: '{"execute":"block-job-set-speed","arguments":{"device":"j","speed":1.0}}\n' },
  { raw: '{"execute":"block-job-set-speed","arguments":{"device":"j","speed":1e5}}\n' },
  { raw: '{"execute":"blockdev-add","arguments":{"driver":"null-co","node-name":"f","latency-ns":2.0}}\n' },
  { raw: '{"execute":"blockdev-add","arguments":{"driver":"blkdebug","node-name":"f","image":"n0","set-state":[{"event":"read_aio","new_state":1.0}]}}\n' },
];

const OOB_CONVERSATION: TranscriptStep[] = [
  { execute: 'qmp_capabilities', arguments: { enable: ['oob'] } },
  { raw: '{"exec-oob":"query-version","id":1}\n' },
  { raw: '{"exec-oob":"no-such-command"}\n' },
  { raw: '{"execute":"query-version","exec-oob":"query-version"}\n' },
  { raw: '{"execute":"query-version","control":{}}\n' },
];

test('the same conversation gives the same transcript from qemu-storage-daemon and from livebackup', { skip }, async (t) => {
  const qsd = await startQsd(t, [], { monitors: 2 });
  const ours = await startOurServer(t);

  const theirs = await runTranscript(qsd.socketPaths[0]!, CONVERSATION);
  const mine = await runTranscript(ours, CONVERSATION);
  // The transcript holds what we expect to compare, not just two empty lists.
  assert.equal(theirs.length, CONVERSATION.length + 1);
  assert.deepEqual(theirs[0], { greeting: { QMP: { version: { qemu: { micro: '<micro>', minor: 2, major: 7 }, package: '<package>' }, capabilities: ['oob'] } } });
  assert.deepEqual((theirs[1] as { receive: unknown[] }).receive, [
    { id: 'early', error: { class: 'CommandNotFound', desc: "Expecting capabilities negotiation with 'qmp_capabilities'" } },
  ]);
  for (let i = 0; i < theirs.length; i++) assert.deepEqual(mine[i], theirs[i], `step ${i}: ${JSON.stringify(CONVERSATION[i - 1])}`);
  assert.deepEqual(mine, theirs);

  const theirsOob = await runTranscript(qsd.socketPaths[1]!, OOB_CONVERSATION);
  const mineOob = await runTranscript(ours, OOB_CONVERSATION);
  assert.deepEqual(mineOob, theirsOob);
});

test('transcripts record events without their timestamps, and placeholders hide values that legitimately differ', { skip }, async (t) => {
  const qsd = await startQsd(t);
  const steps: TranscriptStep[] = [
    { execute: 'qmp_capabilities' },
    { execute: 'blockdev-add', arguments: { driver: 'null-co', 'node-name': 'n1', size: 1048576 } },
    { execute: 'blockdev-create', arguments: { 'job-id': 'create-1', options: { driver: 'qcow2', file: 'n1', size: 65536 } } },
    { event: 'JOB_STATUS_CHANGE' },
    { execute: 'query-named-block-nodes', arguments: { flat: true } },
  ];
  const transcript = await runTranscript(qsd.socketPaths[0]!, steps, {
    placeholder: (value, key) => (key === 'inserted' || key === 'image' || key === 'backing_file_depth' ? '<detail>' : undefined),
  });
  assert.deepEqual((transcript[4] as { receive: unknown[] }).receive, [{ event: 'JOB_STATUS_CHANGE', data: { status: 'created', id: 'create-1' } }]);
  const nodes = (transcript[5] as { receive: Array<{ return: Array<Record<string, unknown>> }> }).receive[0]!.return;
  assert.equal(nodes[0]!['node-name'], 'n1');
  assert.equal(nodes[0]!.image, '<detail>');

  const server = new QmpServer();
  server.registerCommand({ name: 'x-poke', handler: () => server.emitEvent('POKED', { by: 'test' }) });
  const path = join(await tempDir(t, 'livebackup-qmp-'), 'qmp.sock');
  await server.listenUnix(path);
  t.after(() => server.close());
  const ours = await runTranscript(path, [{ execute: 'qmp_capabilities' }, { execute: 'x-poke' }, { event: 'POKED' }]);
  assert.deepEqual(ours.slice(2), [
    { send: { execute: 'x-poke' }, receive: [{ return: {} }] },
    { send: { event: 'POKED' }, receive: [{ event: 'POKED', data: { by: 'test' } }] },
  ]);
});

/** Send `input`, shut down our side, and return every byte the server sent until it closed. */
async function rawExchange(path: string, input: string): Promise<string> {
  const socket = connect(path);
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  await once(socket, 'connect');
  socket.end(input);
  await once(socket, 'close');
  return Buffer.concat(chunks).toString('utf8');
}

test('the bytes on the wire match qemu-storage-daemon: separators, escapes, member order, CRLF', { skip }, async (t) => {
  const qsd = await startQsd(t);
  const ours = await startOurServer(t);
  const input = [
    '{"execute":"qmp_capabilities","id":{"b":[1,2.5,true,null],"a":"x"}}',
    '{"execute":"query-version","id":"\u00e9\\u0001\\n\\"/\\\\\\ud83d\\ude00"}',
    '{"execute":"no-such-command","id":-7}',
    '{"execute":"no-such-command","id":[0.1,2.5,-0.0015,1e-7,1e20,1e17,123456789.123,-0.0,-0,1.5e300,0.3,100.25,1e-5,0.0001,1.7976931348623157e308,5e-324,9007199254740993.0,1.0,-12345678901234567890]}',
    '{"execute":"query-version","id":{"a":1,"b":[1,2],"c":{},"d":[],"e":"x","f":12345678901234567890,"h":null}}',
    `{"execute":"query-version","id":${JSON.stringify(Object.fromEntries(
      ['type', 'device', 'len', 'offset', 'busy', 'paused', 'speed', 'io-status', 'ready', 'status', 'auto-finalize', 'auto-dismiss',
        'node-name', 'sync', 'target', 'job-id', 'bitmap', 'on-source-error', 'on-target-error', 'filter-node-name', 'x-perf', 'error']
        .map((key, index) => [key, index]),
    ))}}`,
    '{"execute":"query-block-jobs"}',
    '{"execute":"query-block-jobs","arguments":{"x":1},"id":[]}',
    'not',
    '{"execute":"block-job-set-speed","arguments":{"device":"j","speed":0},"id":{}}',
  ].join('\n');
  const versionInfo = /\{"qemu": \{"micro": \d+, "minor": 2, "major": 7\}, "package": "[^"]*"\}/g;
  const normalise = (text: string): string => text.replace(versionInfo, '<VersionInfo>');
  const theirs = normalise(await rawExchange(qsd.socketPaths[0]!, `${input}\n`));
  const mine = normalise(await rawExchange(ours, `${input}\n`));
  assert.equal(theirs.split('\r\n').length, 12, theirs);
  assert.equal(mine, theirs);
});

test('with several unexpected members, the same one is named as by qemu-storage-daemon', { skip }, async (t) => {
  const qsd = await startQsd(t);
  const ours = await startOurServer(t);
  const random = new SeededRandom(4711);
  const valid: Record<string, unknown> = {
    'node-name': 'n', discard: 'ignore', cache: { direct: false }, 'read-only': false, 'auto-read-only': false,
    'force-share': false, 'detect-zeroes': 'off', size: 4096, 'latency-ns': 0, 'read-zeroes': true,
  };
  const extras = ['alpha', 'beta', 'gamma', 'x', 'y', 'zz', 'foo', 'bar', 'qux', 'k1', 'k2', 'abc', 'bogus', 'file', 'backing',
    'image', 'filename', 'aio', 'locking', 'delta', 'epsilon', 'omega', 'iops', 'bps', 'node_name', 'Size', 'é'];
  const steps: TranscriptStep[] = [{ execute: 'qmp_capabilities' }];
  for (let round = 0; round < 150; round++) {
    const members = Object.keys(valid).filter(() => random.chance(0.5));
    const unexpected = extras.filter(() => random.chance(0.2)).concat(random.pick(extras));
    const keys = [...new Set(['driver', ...members, ...unexpected])];
    for (let i = keys.length - 1; i > 0; i--) {
      const j = random.int(0, i);
      [keys[i], keys[j]] = [keys[j]!, keys[i]!];
    }
    const args = Object.fromEntries(keys.map((key) => [key, key === 'driver' ? 'null-co' : key === 'node-name' ? `n${round}` : valid[key] ?? 1]));
    steps.push({ execute: 'blockdev-add', arguments: args });
    steps.push({ execute: 'query-block-jobs', arguments: Object.fromEntries(unexpected.map((key) => [key, 1])) });
  }
  const theirs = await runTranscript(qsd.socketPaths[0]!, steps);
  const mine = await runTranscript(ours, steps);
  assert.equal(theirs.length, steps.length + 1);
  for (let i = 2; i < theirs.length; i++) assert.deepEqual(mine[i], theirs[i], `seed ${random.seed}, step ${i}: ${JSON.stringify(steps[i - 1])}`);
});
