import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseOptionArgument } from '../../src/qmp/command-line-option.js';
import { parseKeyval } from '../../src/qmp/keyval.js';
import { BLOCKDEV_OPTION_REFUSALS, BlockdevOptions, BlockExportOptions, EXPORT_OPTION_REFUSALS } from './qapi-test-schema.js';

const options = (text: string, impliedKey?: string): unknown => parseKeyval(text, impliedKey).options;

test('key=value pairs separated by commas; all values stay strings', () => {
  assert.deepEqual(options('driver=file,filename=/x,read-only=on'), { driver: 'file', filename: '/x', 'read-only': 'on' });
  assert.deepEqual(options(''), {});
  assert.deepEqual(options('a=1,'), { a: '1' }, 'a trailing comma is harmless');
  assert.deepEqual(options('a='), { a: '' });
  assert.deepEqual(options('a=x=y'), { a: 'x=y' }, "a value may contain '='");
});

test("',,' is a literal comma inside a value", () => {
  assert.deepEqual(options('filename=/a,,b.img,node-name=n'), { filename: '/a,b.img', 'node-name': 'n' });
  assert.deepEqual(options('filename=,,,,'), { filename: ',,' });
  assert.deepEqual(options('x,,y,a=1', 'driver'), { driver: 'x,y', a: '1' });
});

test('dotted keys build nested objects; numeric fragments build dense lists', () => {
  assert.deepEqual(options('driver=qcow2,file.driver=file,file.filename=/x,file.cache.direct=off'), {
    driver: 'qcow2',
    file: { driver: 'file', filename: '/x', cache: { direct: 'off' } },
  });
  assert.deepEqual(options('set-state.1.event=b,set-state.0.event=a,set-state.0.new_state=1'), {
    'set-state': [{ event: 'a', new_state: '1' }, { event: 'b' }],
  });
  assert.throws(() => options('set-state.1.event=x'), { message: "Parameter 'set-state.0' missing" });
  assert.throws(() => options('set-state.x=1,set-state.0.event=y'), { message: "Parameters 'set-state.*' used inconsistently" });
});

test('the implied key names a first parameter given without key=', () => {
  assert.deepEqual(options('qcow2,node-name=x', 'driver'), { driver: 'qcow2', 'node-name': 'x' });
  assert.deepEqual(options('driver=qcow2,node-name=x', 'driver'), { driver: 'qcow2', 'node-name': 'x' });
  assert.throws(() => options('nul,l', 'driver'), { message: "Expected '=' after parameter 'l'" });
  assert.throws(() => options('qcow2,node-name=x'), { message: "Expected '=' after parameter 'qcow2'" });
  assert.throws(() => options(',null-co', 'driver'), { message: "Invalid parameter ''" });
});

test('a repeated key takes its last value; mixing a value and sub-keys is refused', () => {
  assert.deepEqual(options('node-name=x,node-name=y'), { 'node-name': 'y' });
  assert.throws(() => options('cache.direct=on,cache=1'), { message: "Parameters 'cache.*' used inconsistently" });
  assert.throws(() => options('a=1,a.b=2'), { message: "Parameters 'a.*' used inconsistently" });
  assert.throws(() => options('cache.direct=on,cache.0=1'), { message: "Parameters 'cache.*' used inconsistently" });
});

test('malformed keys are refused with QEMU texts', () => {
  assert.throws(() => options('=x'), { message: "Invalid parameter ''" });
  assert.throws(() => options('a..b=1'), { message: "Invalid parameter 'a..b'" });
  assert.throws(() => options('a.=1'), { message: "Invalid parameter 'a.'" });
  assert.throws(() => options('a b=1'), { message: "Invalid parameter 'a b'" });
  assert.throws(() => options('0=1'), { message: "Invalid parameter '0'" });
  assert.throws(() => options('_a=1'), { message: "Invalid parameter '_a'" });
  assert.throws(() => options('size'), { message: "Expected '=' after parameter 'size'" });
  const long = 'a'.repeat(128);
  assert.throws(() => options(`${long}=1`), { message: `Parameter '${long}' is too long` });
  assert.deepEqual(options(`${'a'.repeat(127)}=1`), { ['a'.repeat(127)]: '1' });
});

test('help and ? ask for help', () => {
  assert.equal(parseKeyval('null-co,help', 'driver').help, true);
  assert.equal(parseKeyval('?').help, true);
  assert.equal(parseKeyval('a=help').help, false);
});

test('option arguments: keyval or JSON, checked against the schema with qsd texts', () => {
  assert.deepEqual(parseOptionArgument('null-co,node-name=x,size=0x10,read-zeroes=yes', BlockdevOptions, { impliedKey: 'driver' }), {
    driver: 'null-co', 'node-name': 'x', size: 16, 'read-zeroes': true,
  });
  assert.deepEqual(parseOptionArgument('raw,file.driver=file,file.filename=/a,,b', BlockdevOptions, { impliedKey: 'driver' }), {
    driver: 'raw', file: { driver: 'file', filename: '/a,b' },
  });
  assert.deepEqual(parseOptionArgument('{"driver":"null-co","size":4096}', BlockdevOptions, { impliedKey: 'driver' }), { driver: 'null-co', size: 4096 });
  // Each expected text is what qemu-storage-daemon 7.2 prints (keyval-interop.test.ts checks that).
  for (const [text, message] of BLOCKDEV_OPTION_REFUSALS) {
    assert.throws(() => parseOptionArgument(text, BlockdevOptions, { impliedKey: 'driver' }), { message }, text);
  }
});

test('export option arguments: nested unions, sizes, lists of alternates, with qsd texts', () => {
  assert.deepEqual(
    parseOptionArgument('vhost-user-blk,id=e,node-name=n0,addr.type=unix,addr.path=/x.sock,logical-block-size=4k,num-queues=2', BlockExportOptions, { impliedKey: 'type' }),
    { type: 'vhost-user-blk', id: 'e', 'node-name': 'n0', addr: { type: 'unix', path: '/x.sock' }, 'logical-block-size': 4096, 'num-queues': 2 },
  );
  assert.deepEqual(
    parseOptionArgument('nbd,id=e,node-name=n0,bitmaps.0=b0,bitmaps.1.node=n1,bitmaps.1.name=b1', BlockExportOptions, { impliedKey: 'type' }),
    { type: 'nbd', id: 'e', 'node-name': 'n0', bitmaps: ['b0', { node: 'n1', name: 'b1' }] },
  );
  for (const [text, message] of EXPORT_OPTION_REFUSALS) {
    assert.throws(() => parseOptionArgument(text, BlockExportOptions, { impliedKey: 'type' }), { message }, text);
  }
});
