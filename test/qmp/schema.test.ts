import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LivebackupError } from '../../src/errors.js';
import { any, bool, enumType, int, int8, list, number, size, str, struct, uint32, uint64, alternate, nullType } from '../../src/qmp/schema.js';
import { parseJsonText } from '../../src/qmp/json-message-stream.js';
import { parseSize, validateValue } from '../../src/qmp/schema-validator.js';
import { BlockdevOptions } from './qapi-test-schema.js';

const Transaction = struct('TransactionArgs', {
  actions: list(struct('TransactionAction', {
    type: enumType('TransactionActionKind', ['blockdev-backup', 'abort']),
    data: struct('BlockdevBackup', {
      device: str,
      target: str,
      sync: enumType('MirrorSyncMode', ['top', 'full', 'none', 'incremental', 'bitmap']),
      '*speed': int,
    }),
  })),
});

function refusal(type: Parameters<typeof validateValue>[0], value: unknown, mode: 'qmp' | 'keyval' = 'qmp'): string {
  try {
    validateValue(type, value, mode);
  } catch (error) {
    assert.ok(error instanceof LivebackupError);
    assert.equal(error.code, 'INVALID_ARGUMENT');
    return error.message;
  }
  assert.fail(`accepted ${JSON.stringify(value)}`);
}

test('QMP-mode errors name members exactly as qemu-storage-daemon 7.2 does', () => {
  // Every expected text below was observed from qemu-storage-daemon 7.2 for the same input.
  const cases: Array<[unknown, string]> = [
    [{}, "Parameter 'driver' is missing"],
    [{ driver: 5 }, "Invalid parameter type for 'driver', expected: string"],
    [{ driver: 'nope' }, "Parameter 'driver' does not accept value 'nope'"],
    [{ driver: 'qcow2', 'node-name': 'x' }, "Parameter 'file' is missing"],
    [{ driver: 'qcow2', 'node-name': 5, file: 'n0' }, "Invalid parameter type for 'node-name', expected: string"],
    [{ driver: 'qcow2', file: { driver: 'file' } }, "Parameter 'file.filename' is missing"],
    [{ driver: 'qcow2', file: {} }, "Parameter 'file.driver' is missing"],
    [{ driver: 'qcow2', file: { driver: 'file', filename: 1 } }, "Invalid parameter type for 'file.filename', expected: string"],
    [{ driver: 'qcow2', file: 5 }, "Invalid parameter type for 'file', expected: BlockdevRef"],
    [{ driver: 'qcow2', file: null }, "Invalid parameter type for 'file', expected: BlockdevRef"],
    [{ driver: 'qcow2', file: [] }, "Invalid parameter type for 'file', expected: BlockdevRef"],
    [{ driver: 'qcow2', file: 'n0', backing: 5 }, "Invalid parameter type for 'backing', expected: BlockdevRefOrNull"],
    [{ driver: 'qcow2', file: 'n0', bogus: 5 }, "Parameter 'bogus' is unexpected"],
    [{ driver: 'qcow2', file: { driver: 'file', filename: '/x', bogus: 1 } }, "Parameter 'file.bogus' is unexpected"],
    [{ driver: 'qcow2', file: { driver: 'file', filename: '/x', aio: 'bad' } }, "Parameter 'aio' does not accept value 'bad'"],
    [{ driver: 'qcow2', file: 'n0', cache: { direct: 'x' } }, "Invalid parameter type for 'cache.direct', expected: boolean"],
    [{ driver: 'qcow2', file: 'n0', cache: 5 }, "Invalid parameter type for 'cache', expected: object"],
    [{ driver: 'null-co', 'latency-ns': 'x' }, "Parameter 'latency-ns' expects uint64"],
    [{ driver: 'null-co', 'latency-ns': 1.5 }, "Parameter 'latency-ns' expects uint64"],
    [{ driver: 'null-co', size: 18446744073709551615n }, "Invalid parameter type for 'size', expected: integer"],
    [{ driver: 'blkdebug', image: 'n0', 'max-transfer': 4294967296 }, "Parameter 'max-transfer' expects int32_t"],
    [{ driver: 'blkdebug', image: 'n0', 'max-transfer': 'x' }, "Invalid parameter type for 'max-transfer', expected: integer"],
    [{ driver: 'blkdebug', image: { driver: 'null-co', size: 'x' } }, "Invalid parameter type for 'image.size', expected: integer"],
    [{ driver: 'blkdebug', image: { driver: 'null-co', 'latency-ns': 'x' } }, "Parameter 'image.latency-ns' expects uint64"],
    [{ driver: 'blkdebug', image: 'n0', 'set-state': 5 }, "Invalid parameter type for 'set-state', expected: array"],
    [{ driver: 'blkdebug', image: 'n0', 'set-state': [5] }, "Invalid parameter type for 'set-state[0]', expected: object"],
    [{ driver: 'blkdebug', image: 'n0', 'set-state': [{ event: 'x' }] }, "Parameter 'event' does not accept value 'x'"],
  ];
  for (const [input, message] of cases) assert.equal(refusal(BlockdevOptions, input), message, JSON.stringify(input, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v)));

  assert.equal(refusal(Transaction, { actions: [{ type: 'blockdev-backup', data: { device: 'a', target: 'b' } }] }), "Parameter 'actions[0].data.sync' is missing");
  assert.equal(refusal(Transaction, { actions: [{ data: {} }] }), "Parameter 'actions[0].type' is missing");
  assert.equal(refusal(Transaction, { actions: [1] }), "Invalid parameter type for 'actions[0]', expected: object");
  assert.equal(refusal(Transaction, { actions: [{ type: 'nope', data: {} }] }), "Parameter 'type' does not accept value 'nope'");
  assert.equal(
    refusal(Transaction, { actions: [{ type: 'blockdev-backup', data: { device: 'a', target: 'b', sync: 'full', speed: 'x' } }, 7] }),
    "Invalid parameter type for 'actions[0].data.speed', expected: integer",
  );
  assert.equal(refusal(struct('Caps', { '*enable': list(enumType('QMPCapability', ['oob'])) }), { enable: ['bogus'] }), "Parameter 'null' does not accept value 'bogus'");
  assert.equal(refusal(struct('Caps', { '*enable': list(enumType('QMPCapability', ['oob'])) }), { enable: 'oob' }), "Invalid parameter type for 'enable', expected: array");
  assert.equal(refusal(struct('Bitmap', { granularity: uint32 }), { granularity: -1 }), "Parameter 'granularity' expects uint32_t");
  assert.equal(refusal(struct('Bitmap', { granularity: uint32 }), { granularity: 4294967296 }), "Parameter 'granularity' expects uint32_t");
  assert.equal(refusal(struct('Bitmap', { granularity: uint32 }), { granularity: '64k' }), "Parameter 'granularity' expects uint64");
  assert.equal(refusal(struct('Create', { size }), { size: 'x' }), "Parameter 'size' expects uint64");
  assert.equal(refusal(struct('Flat', { '*flat': bool }), { flat: null }), "Invalid parameter type for 'flat', expected: boolean");
});

test('members are checked in schema order, unexpected ones after the known ones', () => {
  const Args = struct('Args', { a: str, b: int });
  assert.equal(refusal(Args, { zzz: 1, b: 'x' }), "Parameter 'a' is missing");
  assert.equal(refusal(Args, { zzz: 1, a: 'x', b: 'y' }), "Invalid parameter type for 'b', expected: integer");
  assert.equal(refusal(Args, { zzz: 1, a: 'x', b: 2 }), "Parameter 'zzz' is unexpected");
});

test('valid input comes back cleaned: union branches, alternates, wrapped negative uint64, bigint to number', () => {
  const options = validateValue(BlockdevOptions, {
    driver: 'qcow2',
    'node-name': 'disk',
    file: { driver: 'file', filename: '/x.qcow2', aio: 'threads' },
    backing: null,
    cache: { direct: false },
  });
  assert.deepEqual(options, { driver: 'qcow2', 'node-name': 'disk', cache: { direct: false }, file: { driver: 'file', filename: '/x.qcow2', aio: 'threads' }, backing: null });
  assert.deepEqual(validateValue(BlockdevOptions, { driver: 'qcow2', file: 'n0', backing: 'base' }), { driver: 'qcow2', file: 'n0', backing: 'base' });
  assert.deepEqual(validateValue(BlockdevOptions, { driver: 'vmdk' }), { driver: 'vmdk' }, 'a driver without a branch adds no members');
  assert.deepEqual(validateValue(BlockdevOptions, { driver: 'null-co', 'latency-ns': -1, size: 9007199254740993n }), {
    driver: 'null-co', size: 9007199254740992, 'latency-ns': 18446744073709551615,
  });
  assert.deepEqual(validateValue(struct('S', { x: any, y: number }), { x: { deep: [12345678901234567890n] }, y: 3n }), { x: { deep: [12345678901234567890n] }, y: 3 });
  assert.deepEqual(validateValue(struct('S', { '*opt': str }), { opt: undefined }), {});
});

test('keyval mode converts strings by type and names list elements with dots', () => {
  const Args = struct('Args', {
    '*flag': bool, '*count': int, '*small': int8, '*bytes': size, '*big': uint64, '*ratio': number, '*nothing': nullType,
    '*pick': alternate('IntOrStr', [int, str]),
    '*items': list(struct('Item', { value: int })),
  });
  assert.deepEqual(validateValue(Args, { flag: 'on', count: '0x10', small: '-8', bytes: '1.5k', big: '-1', ratio: '2.5', nothing: '', pick: 'x' }, 'keyval'), {
    flag: true, count: 16, small: -8, bytes: 1536, big: 18446744073709551615, ratio: 2.5, nothing: null, pick: 'x',
  });
  for (const word of ['on', 'yes', 'true', 'y']) assert.deepEqual(validateValue(Args, { flag: word }, 'keyval'), { flag: true });
  for (const word of ['off', 'no', 'false', 'n']) assert.deepEqual(validateValue(Args, { flag: word }, 'keyval'), { flag: false });
  assert.deepEqual(validateValue(Args, { count: ' 010' }, 'keyval'), { count: 8 }, 'C syntax: leading blanks, octal');
  assert.equal(refusal(Args, { flag: 'maybe' }, 'keyval'), "Parameter 'flag' expects 'on' or 'off'");
  assert.equal(refusal(Args, { flag: '' }, 'keyval'), "Parameter 'flag' expects 'on' or 'off'");
  assert.equal(refusal(Args, { count: '1k' }, 'keyval'), "Parameter 'count' expects integer");
  assert.equal(refusal(Args, { count: '1e3' }, 'keyval'), "Parameter 'count' expects integer");
  assert.equal(refusal(Args, { count: '18446744073709551615' }, 'keyval'), "Parameter 'count' expects integer");
  assert.equal(refusal(Args, { count: '' }, 'keyval'), "Parameter 'count' expects integer");
  assert.equal(refusal(Args, { small: '200' }, 'keyval'), "Parameter 'small' expects int8_t");
  assert.equal(refusal(Args, { big: '1k' }, 'keyval'), "Parameter 'big' expects integer");
  assert.equal(refusal(Args, { bytes: '16E' }, 'keyval'), "Parameter 'bytes' expects size");
  assert.equal(refusal(Args, { ratio: 'x' }, 'keyval'), "Parameter 'ratio' expects number");
  assert.equal(refusal(Args, { items: [{ value: 'x' }] }, 'keyval'), "Parameter 'items.0.value' expects integer");
  assert.equal(refusal(Args, { count: { a: '1' } }, 'keyval'), "Invalid parameter type for 'count', expected: string");
});

test('sizes take binary suffixes, fractions only with a unit, and stay below 2^64', () => {
  assert.equal(parseSize('512'), 512);
  assert.equal(parseSize('64k'), 65536);
  assert.equal(parseSize('1M'), 1048576);
  assert.equal(parseSize('2g'), 2 * 1024 ** 3);
  assert.equal(parseSize('1.5T'), 1.5 * 1024 ** 4);
  assert.equal(parseSize('0x10'), 16);
  assert.equal(parseSize('15E'), 15 * 1024 ** 6);
  assert.equal(parseSize('16E'), undefined);
  assert.equal(parseSize('1.5'), undefined);
  assert.equal(parseSize('-1'), undefined);
  assert.equal(parseSize('k'), undefined);
  assert.equal(parseSize('1x'), undefined);
});

test('a float literal with an integral value is not an integer, as in QEMU', () => {
  const Args = struct('Args', { '*speed': int, '*ratio': number, '*list': list(int), '*free': any });
  assert.equal(refusal(Args, parseJsonText('{"speed": 1.0}')), "Invalid parameter type for 'speed', expected: integer");
  assert.equal(refusal(Args, parseJsonText('{"speed": 1e5}')), "Invalid parameter type for 'speed', expected: integer");
  assert.equal(refusal(Args, parseJsonText('{"list": [1, 2.0]}')), "Invalid parameter type for 'list[1]', expected: integer");
  assert.deepEqual(validateValue(Args, parseJsonText('{"speed": 100000, "ratio": 1.0, "list": [1, 2], "free": 3.0}')), { speed: 100000, ratio: 1, list: [1, 2], free: 3 });
});

test('with several unexpected members, the one qemu-storage-daemon names is reported', () => {
  // Both outcomes were observed from qemu-storage-daemon 7.2 (qsd-interop.test.ts checks many more live).
  assert.equal(refusal(struct('NoArgs', {}), { x: 1, y: 2 }), "Parameter 'y' is unexpected");
  assert.equal(refusal(BlockdevOptions, { driver: 'qcow2', 'node-name': 'x', file: 'n0', backing: null, bogus: 1, alpha: 2 }), "Parameter 'alpha' is unexpected");
});
