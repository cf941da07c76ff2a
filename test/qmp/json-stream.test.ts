import assert from 'node:assert/strict';
import { test } from 'node:test';
import { JsonMessageStream, parseJsonText, type JsonMessage, type JsonStreamLimits } from '../../src/qmp/json-message-stream.js';
import { toQmpJson } from '../../src/qmp/json-writer.js';
import { SeededRandom } from '../helpers/random.js';

/** Feed `input` in the given chunk sizes and collect what the stream reports. */
function collect(input: string | Uint8Array, chunkSizes: number[] = [], limits?: JsonStreamLimits): JsonMessage[] {
  const messages: JsonMessage[] = [];
  const stream = new JsonMessageStream((message) => messages.push(message), limits);
  const bytes = typeof input === 'string' ? Buffer.from(input, 'utf8') : Buffer.from(input);
  let offset = 0;
  for (const size of chunkSizes) {
    stream.push(bytes.subarray(offset, offset + size));
    offset += size;
  }
  stream.push(bytes.subarray(offset));
  return messages;
}

const summary = (messages: JsonMessage[]): unknown[] =>
  messages.map((message) => (message.kind === 'value' ? message.value : `error: ${message.message}`));

test('messages need no newline between them; any whitespace or none separates them', () => {
  assert.deepEqual(summary(collect('{"a":1}{"b":2} \t\r\n [3]"s" 4 true\n')), [{ a: 1 }, { b: 2 }, [3], 's', 4, true]);
});

test('a message split at every byte boundary gives the same result', () => {
  const input = '{"execute":"x","arguments":{"s":"é\\u00e9\\ud83d\\ude00","n":-12.5e3,"l":[null,false,0]},"id":\'q\'}';
  const whole = summary(collect(input));
  assert.deepEqual(whole, [{ execute: 'x', arguments: { s: 'éé😀', n: -12500, l: [null, false, 0] }, id: 'q' }]);
  const bytes = Buffer.from(input);
  for (let cut = 1; cut < bytes.length; cut++) assert.deepEqual(summary(collect(bytes, [cut])), whole, `cut at ${cut}`);
  const random = new SeededRandom(4242);
  const chunks: number[] = [];
  for (let left = bytes.length; left > 0; ) {
    const size = Math.min(left, random.int(1, 5));
    chunks.push(size);
    left -= size;
  }
  assert.deepEqual(summary(collect(bytes, chunks)), whole, `seed ${random.seed}`);
});

test('syntax errors carry QEMU texts and the stream recovers at the next structural character or newline', () => {
  const cases: Array<[string, unknown[]]> = [
    ['not\n', ["error: JSON parse error, invalid keyword 'not'"]],
    ['{"a":tru}', ["error: JSON parse error, invalid keyword 'tru'"]],
    ['}', ['error: JSON parse error, expecting value']],
    ['{"a":}', ['error: JSON parse error, expecting value']],
    ['[1,]', ['error: JSON parse error, expecting value']],
    ['{"a":1,}', ['error: JSON parse error, expecting value']],
    ['{1:1}', ['error: JSON parse error, key is not a string in object']],
    ['{"a" 1}', ['error: JSON parse error, missing : in object pair']],
    ['{"a":1 "b":2}', ['error: JSON parse error, expected separator in dict']],
    ['[1 2]', ['error: JSON parse error, expected separator in list']],
    ['{"a":1,"a":2}', ['error: JSON parse error, duplicate key']],
    ['"a\\x"', ['error: JSON parse error, invalid escape sequence in string']],
    ['"\\ud800"', ['error: JSON parse error, \\ud800 is not a valid Unicode character']],
    ['@\n[1]', ["error: JSON parse error, stray '@'", [1]]],
    ['{"a":01}\n[2]', ["error: JSON parse error, stray '01'", 'error: JSON parse error, expecting value', [2]]],
    ['{"a":1.}\n', ["error: JSON parse error, stray '1.}'"]],
    ['{"a":"x\ty"}\n', ["error: JSON parse error, stray '\"x\t'", 'error: JSON parse error, expecting value']],
    ['{"a":1}]', [{ a: 1 }, 'error: JSON parse error, expecting value']],
  ];
  for (const [input, expected] of cases) assert.deepEqual(summary(collect(input)), expected, input);
});

test('strings follow QEMU’s Unicode rules: noncharacters refused, C0 80 is U+0000', () => {
  const decode = (bytes: number[]): unknown => summary(collect(Buffer.from([0x22, ...bytes, 0x22])))[0];
  const invalidUtf8 = 'error: JSON parse error, invalid UTF-8 sequence in string';
  assert.equal(decode([0xc0, 0x80]), '\0');
  assert.equal(decode([0xf0, 0x9f, 0x98, 0x80]), '😀');
  for (const bad of [[0xef, 0xb7, 0x90], [0xef, 0xbf, 0xbe], [0xf0, 0x9f, 0xbf, 0xbf], [0xe0, 0x80, 0x80], [0xc1, 0xbf], [0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80]]) {
    assert.equal(decode(bad), invalidUtf8, bad.map((b) => b.toString(16)).join(' '));
  }
  assert.deepEqual(summary(collect('"\\uffff" "\\ufdd0" "\\u12" "\\u00zz" "\\ud83f\\udffe" "\\ud83d\\u0041" "\\udc00" "\\ud83d\\udfff" "\\u0000"')), [
    'error: JSON parse error, \\uffff is not a valid Unicode character',
    'error: JSON parse error, \\ufdd0 is not a valid Unicode character',
    'error: JSON parse error, \\u12" is not a valid Unicode character',
    'error: JSON parse error, \\u00zz is not a valid Unicode character',
    'error: JSON parse error, \\ud83f\\udffe is not a valid Unicode character',
    'error: JSON parse error, \\ud83d is not a valid Unicode character',
    'error: JSON parse error, \\udc00 is not a valid Unicode character',
    '\u{1F7FF}',
    '\0',
  ]);
  assert.deepEqual(summary(collect(Buffer.from([0x00, 0x0a, 0x5b, 0x5d]))), ["error: JSON parse error, stray ''", []]);
});

test('invalid UTF-8 inside a string is refused; bytes 0xFE/0xFF are stray', () => {
  assert.deepEqual(summary(collect(Buffer.from([0x22, 0x61, 0xc3, 0x22]))), ['error: JSON parse error, invalid UTF-8 sequence in string']);
  assert.deepEqual(summary(collect(Buffer.from([0x22, 0x61, 0xff, 0x22, 0x0a, 0x5b, 0x5d]))), ["error: JSON parse error, stray '\"a\uFFFD'", []]);
});

test('nesting beyond 1024 is refused, and what follows is parsed afresh', () => {
  const ok = `${'['.repeat(1024)}${']'.repeat(1024)}`;
  assert.equal(collect(ok).length, 1);
  assert.equal(collect(ok)[0]!.kind, 'value');
  assert.deepEqual(summary(collect(`${'['.repeat(1025)}\n{"a":1}`)), ['error: JSON nesting depth limit exceeded', { a: 1 }]);
});

test('a message larger than the limit is a fatal error, even inside one unterminated token', () => {
  const limits = { maxMessageBytes: 1000, maxTokens: 100, maxDepth: 8 };
  const big = collect(`{"a":"${'x'.repeat(2000)}`, [100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100], limits);
  assert.deepEqual(big, [{ kind: 'error', message: 'JSON token size limit exceeded', fatal: true }]);
  const tooMany = collect(`[${'1,'.repeat(200)}[1,{"a":2}]]\n{"b":3}`, [7, 64, 100, 1000], limits);
  assert.deepEqual(summary(tooMany), ['error: JSON token count limit exceeded', { b: 3 }], 'the rest of the long message is skipped, not split into a message per token');
});

test('a stream that stopped ignores further input', () => {
  const messages: JsonMessage[] = [];
  const stream = new JsonMessageStream((message) => messages.push(message), { maxMessageBytes: 10, maxTokens: 100, maxDepth: 8 });
  stream.push(Buffer.from('"0123456789abcdef"'));
  stream.push(Buffer.from('{"a":1}'));
  assert.equal(stream.isStopped, true);
  assert.equal(messages.length, 1);
});

test('integers keep their exact value: safe ones as numbers, int64/uint64 ones as bigint', () => {
  assert.deepEqual(parseJsonText('[9007199254740991, 12345678901234567890, -9223372036854775808, 1e400, -0, 1.5]'), [
    9007199254740991, 12345678901234567890n, -9223372036854775808n, Infinity, 0, 1.5,
  ]);
  assert.equal(parseJsonText('123456789012345678901234'), 1.2345678901234568e23);
  assert.equal(parseJsonText('-18446744073709551615'), -18446744073709552000);
  assert.deepEqual(parseJsonText(`[${'9'.repeat(5_000_000)}]`), [Infinity], 'a huge literal is a double, quickly');
});

test('"__proto__" is an ordinary key', () => {
  const value = parseJsonText('{"__proto__": {"polluted": 1}}') as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(value), Object.prototype);
  assert.deepEqual(Object.keys(value), ['__proto__']);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

test('parseJsonText wants exactly one complete value', () => {
  assert.throws(() => parseJsonText('{"driver":"null-co"'), { message: 'JSON parse error, premature EOI' });
  assert.throws(() => parseJsonText('{"a":1} {}'), { message: 'Expecting at most one JSON value' });
  assert.throws(() => parseJsonText('  '), { message: 'Expecting a JSON value' });
  assert.throws(() => parseJsonText('"abc'), { message: 'JSON parse error, premature EOI' });
});

test('output is formatted like QEMU: spaces after separators, QDict member order, upper-case escapes, exact bigint', () => {
  assert.equal(toQmpJson({ a: 1, b: [1, 2], c: {}, d: [], e: 'a/b\u007f\u0001\n"\\é😀', f: 12345678901234567890n, g: undefined, h: null }),
    '{"d": [], "e": "a/b\\u007F\\u0001\\n\\"\\\\\\u00E9\\uD83D\\uDE00", "a": 1, "f": 12345678901234567890, "b": [1, 2], "c": {}, "h": null}');
  // Orders observed from qemu-storage-daemon; minor and micro share a bucket, so insertion order matters.
  assert.equal(toQmpJson({ qemu: { major: 7, minor: 2, micro: 0 }, package: 'p' }), '{"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "p"}');
  assert.equal(toQmpJson({ error: { desc: 'd', class: 'c' }, id: 1 }), '{"id": 1, "error": {"class": "c", "desc": "d"}}');
  assert.equal(toQmpJson({ event: 'E', data: {}, timestamp: { microseconds: 1, seconds: 2 } }), '{"timestamp": {"seconds": 2, "microseconds": 1}, "event": "E", "data": {}}');
});

test('doubles are written like C\'s "%.17g", integers in full', () => {
  assert.equal(toQmpJson([0.1, 2.5, -0.0015, 1e-7, 1e20, 1e17, 123456789.123, -0, 0, 5, 1.5e300, 2 ** 53, 1 / 3, 5e-324, Infinity, NaN]),
    '[0.10000000000000001, 2.5, -0.0015, 9.9999999999999995e-08, 1e+20, 1e+17, 123456789.123, -0, 0, 5, 1.5000000000000001e+300, 9007199254740992, 0.33333333333333331, 4.9406564584124654e-324, null, null]');
});

/** A random JSON value (no noncharacters or lone surrogates: QEMU refuses those). */
function randomValue(random: SeededRandom, depth: number): unknown {
  const kind = random.int(0, depth > 3 ? 4 : 6);
  switch (kind) {
    case 0: return null;
    case 1: return random.chance(0.5);
    case 2: return random.chance(0.5) ? random.int(-1e9, 1e9) : random.int(-1e6, 1e6) / 64;
    case 3:
    case 4: {
      let text = '';
      const length = random.int(0, 12);
      for (let i = 0; i < length; i++) {
        const pick = random.int(0, 3);
        text += pick === 0 ? String.fromCharCode(random.int(0, 0x7f)) : pick === 1 ? String.fromCharCode(random.int(0x80, 0xd7ff)) : pick === 2 ? '"\\\'' [random.int(0, 2)]! : String.fromCodePoint(random.int(0x10000, 0x1fffd));
      }
      return text;
    }
    case 5: return Array.from({ length: random.int(0, 4) }, () => randomValue(random, depth + 1));
    default: {
      const value: Record<string, unknown> = {};
      for (let i = random.int(0, 4); i > 0; i--) value[`k${random.int(0, 9)}`] = randomValue(random, depth + 1);
      return value;
    }
  }
}

test('random JSON documents parse to what JSON.parse gives, whatever the chunking', () => {
  const random = new SeededRandom(20261127);
  for (let round = 0; round < 300; round++) {
    const values = Array.from({ length: random.int(1, 4) }, () => randomValue(random, 0));
    const text = values.map((value) => JSON.stringify(value)).join(random.pick(['', ' ', '\n', '\r\n\t']));
    const bytes = Buffer.from(text);
    const chunks: number[] = [];
    for (let left = bytes.length; left > 0; ) {
      const size = Math.min(left, random.int(1, 40));
      chunks.push(size);
      left -= size;
    }
    const parsed = summary(collect(bytes, chunks));
    // Scalars only form messages once the next byte shows they ended; compare the composite ones.
    const expected = values.map((value) => JSON.parse(JSON.stringify(value)) as unknown);
    const composite = (value: unknown): boolean => typeof value === 'object' && value !== null;
    assert.deepEqual(parsed.filter(composite), expected.filter(composite), `seed ${random.seed}, round ${round}: ${text}`);
  }
});

test('random garbage never throws; the stream always recovers for the next good message', () => {
  const random = new SeededRandom(777);
  for (let round = 0; round < 300; round++) {
    const garbage = random.bytes(random.int(1, 200));
    const messages = collect(Buffer.concat([garbage, Buffer.from('\n{"after":1}\n')]), [random.int(1, 50)]);
    for (const message of messages) assert.ok(message.kind === 'value' || (typeof message.message === 'string' && !message.fatal));
    // Unbalanced garbage may swallow the good message; after closing whatever it opened,
    // the next message must come through.
    const openers = garbage.filter((byte) => byte === 0x5b || byte === 0x7b).length;
    const closing = collect(Buffer.concat([garbage, Buffer.from(`\n${']}'.repeat(openers)}\n{"after":2}\n`)]));
    assert.deepEqual(summary(closing).at(-1), { after: 2 }, `seed ${random.seed}, round ${round}`);
  }
});
