import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatNbdUri, parseNbdUri } from '../../src/nbd/uri.js';
import { LivebackupError } from '../../src/errors.js';

test('nbd-uri.md examples: export names from the path', () => {
  const cases: Array<[string, string]> = [
    ['nbd://example.com/disk', 'disk'],
    ['nbd+unix:///disk?socket=sock', 'disk'],
    ['nbd://example.com/', ''],
    ['nbd://example.com', ''],
    ['nbd://example.com//disk', '/disk'],
    ['nbd://example.com/hello%20world', 'hello world'],
  ];
  for (const [uri, exportName] of cases) assert.equal(parseNbdUri(uri).exportName, exportName, uri);
});

test('addresses: TCP host and port (default 10809, IPv6 literal), unix socket path', () => {
  assert.deepEqual(parseNbdUri('nbd://127.0.0.1:10810/e'), { address: { type: 'inet', host: '127.0.0.1', port: 10810 }, exportName: 'e' });
  assert.deepEqual(parseNbdUri('nbd://host/e').address, { type: 'inet', host: 'host', port: 10809 });
  assert.deepEqual(parseNbdUri('nbd://[::1]:99/e').address, { type: 'inet', host: '::1', port: 99 });
  assert.deepEqual(parseNbdUri('nbd+unix:///x?socket=/tmp/a%20b.sock').address, { type: 'unix', path: '/tmp/a b.sock' });
});

test('bad URIs are INVALID_ARGUMENT naming the problem', () => {
  const bad: Array<[string, RegExp]> = [
    ['not a uri', /not a URI/],
    ['http://host/e', /unknown scheme 'http'/],
    ['nbds://host/e', /TLS/],
    ['nbd+unix:///e', /socket/],
    ['nbd+unix://host/e?socket=/s', /host/],
    ['nbd://host/e?bogus=1', /unknown query parameter 'bogus'/],
    ['nbd://host/%ZZ', /percent|URI/],
  ];
  for (const [uri, pattern] of bad) {
    assert.throws(() => parseNbdUri(uri), (error: unknown) => error instanceof LivebackupError && error.code === 'INVALID_ARGUMENT' && pattern.test(error.message), uri);
  }
});

test('formatNbdUri round-trips through parseNbdUri', () => {
  const addresses = [
    { type: 'unix' as const, path: '/tmp/dir with space/nbd.sock' },
    { type: 'inet' as const, host: '127.0.0.1', port: 12345 },
    { type: 'inet' as const, host: '::1', port: 10809 },
  ];
  for (const address of addresses) {
    for (const exportName of ['disk', '', 'a b/c', 'dísk?#']) {
      assert.deepEqual(parseNbdUri(formatNbdUri(address, exportName)), { address, exportName });
    }
  }
});
