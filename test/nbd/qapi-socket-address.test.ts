import { test } from 'node:test';
import assert from 'node:assert/strict';
import { socketAddressFromQapi } from '../../src/nbd/qapi-socket-address.js';
import { isError } from './nbd-fixture.js';

test('QAPI SocketAddress (flat) and SocketAddressLegacy (nbd-server-start) become NBD addresses', () => {
  assert.deepEqual(socketAddressFromQapi({ type: 'unix', path: '/run/nbd.sock' }), { type: 'unix', path: '/run/nbd.sock' });
  assert.deepEqual(socketAddressFromQapi({ type: 'unix', data: { path: '/run/nbd.sock' } }), { type: 'unix', path: '/run/nbd.sock' });
  assert.deepEqual(socketAddressFromQapi({ type: 'inet', host: '127.0.0.1', port: '10810' }), { type: 'inet', host: '127.0.0.1', port: 10810 });
  assert.deepEqual(socketAddressFromQapi({ type: 'inet', data: { host: '::1', port: 0 } }), { type: 'inet', host: '::1', port: 0 });
  assert.deepEqual(socketAddressFromQapi({ type: 'inet', host: 'h' }), { type: 'inet', host: 'h', port: 10809 });
});

test('bad QAPI socket addresses name the parameter', () => {
  const bad: Array<[unknown, string, RegExp]> = [
    [null, 'INVALID_ARGUMENT', /'addr' expects a socket address/],
    [{ type: 'unix' }, 'INVALID_ARGUMENT', /'path'/],
    [{ type: 'inet', host: 'h', port: 'http' }, 'INVALID_ARGUMENT', /invalid port 'http'/],
    [{ type: 'inet', host: 'h', port: 70000 }, 'INVALID_ARGUMENT', /invalid port/],
    [{ type: 'inet', port: '1' }, 'INVALID_ARGUMENT', /'host'/],
    [{ type: 'fd', str: '3' }, 'UNSUPPORTED', /'fd' is not supported/],
    [{ type: 'tcp' }, 'INVALID_ARGUMENT', /type must be 'unix' or 'inet'/],
  ];
  for (const [value, code, pattern] of bad) {
    assert.throws(() => socketAddressFromQapi(value), (error: unknown) => isError(code)(error) && pattern.test(String(error)), JSON.stringify(value));
  }
});
