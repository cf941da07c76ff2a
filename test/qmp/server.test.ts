import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { once } from 'node:events';
import { stat, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { LivebackupError } from '../../src/errors.js';
import { QmpError } from '../../src/qmp/qmp-error.js';
import { enumType, int, list, str, struct, uint32 } from '../../src/qmp/schema.js';
import { QmpServer, type QmpServerOptions } from '../../src/qmp/server.js';
import { QmpClient } from '../helpers/qmp-client.js';
import { tempDir } from '../helpers/temp-dir.js';

async function startServer(t: TestContext, options: QmpServerOptions = {}): Promise<{ server: QmpServer; path: string }> {
  const dir = await tempDir(t, 'livebackup-qmp-');
  const server = new QmpServer(options);
  const path = join(dir, 'qmp.sock');
  await server.listenUnix(path);
  t.after(() => server.close());
  return { server, path };
}

async function connected(t: TestContext, path: string, negotiate = true): Promise<QmpClient> {
  const client = await QmpClient.connect(path, { negotiate });
  t.after(() => client.close());
  return client;
}

const BackupArgs = struct('TestBackupArgs', {
  device: str,
  target: str,
  sync: enumType('MirrorSyncMode', ['top', 'full', 'none', 'incremental', 'bitmap']),
  '*speed': int,
  '*granularity': uint32,
  '*tags': list(str),
});

test('the socket is private to its owner and the greeting has qsd’s shape', async (t) => {
  const { path } = await startServer(t);
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  const client = await connected(t, path, false);
  assert.deepEqual(Object.keys(client.greeting), ['QMP']);
  assert.deepEqual(Object.keys(client.greeting.QMP), ['version', 'capabilities']);
  assert.deepEqual(client.greeting.QMP.version.qemu, { micro: 0, minor: 2, major: 7 });
  assert.match(client.greeting.QMP.version.package, /^livebackup \d+\.\d+\.\d+/);
  assert.deepEqual(client.greeting.QMP.capabilities, ['oob']);
});

test('before qmp_capabilities only qmp_capabilities runs; afterwards it is refused', async (t) => {
  const { path } = await startServer(t);
  const client = await connected(t, path, false);
  assert.deepEqual(await client.execute('query-version', undefined, { id: 1 }), {
    id: 1, error: { class: 'CommandNotFound', desc: "Expecting capabilities negotiation with 'qmp_capabilities'" },
  });
  assert.deepEqual(await client.execute('qmp_capabilities', { enable: ['bogus'] }), {
    error: { class: 'GenericError', desc: "Parameter 'null' does not accept value 'bogus'" },
  });
  assert.deepEqual(await client.execute('qmp_capabilities'), { return: {} });
  assert.deepEqual(await client.execute('qmp_capabilities'), {
    error: { class: 'CommandNotFound', desc: 'Capabilities negotiation is already complete, command ignored' },
  });
  assert.equal((await client.execute('query-version')).return.qemu.major, 7);
});

test('exec-oob is refused unless OOB was enabled, and then no command supports it', async (t) => {
  const { path } = await startServer(t);
  const plain = await connected(t, path);
  plain.sendRaw('{"exec-oob":"query-version"}\n');
  assert.deepEqual(await plain.nextReply(), { error: { class: 'GenericError', desc: "QMP input member 'exec-oob' is unexpected" } });
  const oob = await connected(t, path, false);
  await oob.command('qmp_capabilities', { enable: ['oob'] });
  oob.sendRaw('{"exec-oob":"query-version","id":3}\n{"exec-oob":"nope"}\n{"execute":"x","exec-oob":"y"}\n');
  assert.deepEqual(await oob.nextReply(), { id: 3, error: { class: 'GenericError', desc: 'The command query-version does not support OOB' } });
  assert.deepEqual(await oob.nextReply(), { error: { class: 'CommandNotFound', desc: 'The command nope has not been found' } });
  assert.deepEqual(await oob.nextReply(), { error: { class: 'GenericError', desc: "QMP input member 'execute' clashes with 'exec-oob'" } });
});

test('any id is echoed verbatim, even integers beyond double precision', async (t) => {
  const { path } = await startServer(t);
  const client = await connected(t, path);
  for (const id of ['abc', 0, -1, 1.5, null, true, [1, { a: 'b' }], { nested: { deep: [] } }]) {
    assert.deepEqual((await client.execute('query-version', undefined, { id })).id, id);
  }
  client.sendRaw('{"execute":"query-version","id":12345678901234567890}\n');
  assert.match(await client.nextReplyLine(), /"id": 12345678901234567890}$/);
  client.sendRaw('{"execute":"nope","id":"\u00e9"}\n');
  assert.equal(await client.nextReplyLine(), '{"id": "\\u00E9", "error": {"class": "CommandNotFound", "desc": "The command nope has not been found"}}');
});

test('unknown commands, and malformed requests, get QEMU’s errors', async (t) => {
  const { path } = await startServer(t);
  const client = await connected(t, path);
  assert.deepEqual(await client.execute('no-such-command', undefined, { id: 'x' }), {
    id: 'x', error: { class: 'CommandNotFound', desc: 'The command no-such-command has not been found' },
  });
  const cases: Array<[string, string]> = [
    ['{"execute":1}', "QMP input member 'execute' must be a string"],
    ['{"execute":"query-version","arguments":[]}', "QMP input member 'arguments' must be an object"],
    ['{"execute":"query-version","foo":1}', "QMP input member 'foo' is unexpected"],
    ['{"arguments":{}}', "QMP input lacks member 'execute'"],
    ['[1,2]', 'QMP input must be a JSON object'],
    ['"text"', 'QMP input must be a JSON object'],
    ['not', "JSON parse error, invalid keyword 'not'"],
    ['{"execute":"query-version","arguments":{"x":1}}', "Parameter 'x' is unexpected"],
  ];
  for (const [input, desc] of cases) {
    client.sendRaw(`${input}\n`);
    assert.deepEqual(await client.nextReply(), { error: { class: 'GenericError', desc } }, input);
  }
});

test('arguments are validated against the command schema before the handler runs', async (t) => {
  const { server, path } = await startServer(t);
  const calls: unknown[] = [];
  server.registerCommand({ name: 'x-backup', args: BackupArgs, handler: (args) => { calls.push(args); return { accepted: true }; } });
  const client = await connected(t, path);
  const refusals: Array<[unknown, string]> = [
    [{}, "Parameter 'device' is missing"],
    [{ device: 'a' }, "Parameter 'target' is missing"],
    [{ device: 1, target: 'b', sync: 'full' }, "Invalid parameter type for 'device', expected: string"],
    [{ device: 'a', target: 'b', sync: 'sideways' }, "Parameter 'sync' does not accept value 'sideways'"],
    [{ device: 'a', target: 'b', sync: 'full', speed: '1' }, "Invalid parameter type for 'speed', expected: integer"],
    [{ device: 'a', target: 'b', sync: 'full', speed: 1.5 }, "Invalid parameter type for 'speed', expected: integer"],
    [{ device: 'a', target: 'b', sync: 'full', granularity: -1 }, "Parameter 'granularity' expects uint32_t"],
    [{ device: 'a', target: 'b', sync: 'full', tags: ['x', 2] }, "Invalid parameter type for 'tags[1]', expected: string"],
    [{ device: 'a', target: 'b', sync: 'full', bogus: true }, "Parameter 'bogus' is unexpected"],
  ];
  for (const [args, desc] of refusals) {
    assert.deepEqual(await client.execute('x-backup', args), { error: { class: 'GenericError', desc } }, JSON.stringify(args));
  }
  assert.deepEqual(calls, []);
  assert.deepEqual(await client.execute('x-backup', { device: 'a', target: 'b', sync: 'full', speed: 0, tags: [] }, { id: 9 }), { return: { accepted: true }, id: 9 });
  assert.deepEqual(calls, [{ device: 'a', target: 'b', sync: 'full', speed: 0, tags: [] }]);
  const names = (await client.command<Array<{ name: string }>>('query-commands')).map((entry) => entry.name);
  for (const name of ['qmp_capabilities', 'query-version', 'query-commands', 'quit', 'x-backup']) assert.ok(names.includes(name), name);
});

test('handler errors become error replies with the class the command maps them to', async (t) => {
  const { server, path } = await startServer(t);
  server.registerCommand({
    name: 'x-job-op',
    args: struct('JobOpArgs', { id: str }),
    errorClasses: { NOT_FOUND: 'DeviceNotActive' },
    handler: ({ id }: { id: string }) => {
      if (id === 'missing') throw new LivebackupError('NOT_FOUND', `Block job '${id}' not found`);
      if (id === 'busy') throw new LivebackupError('BUSY', `Node '${id}' is busy`);
      if (id === 'explicit') throw new QmpError('DeviceNotFound', 'NOT_FOUND', 'Device not found');
      if (id === 'bug') throw new TypeError('x is undefined');
      return Promise.reject(new LivebackupError('IO_ERROR', 'disk on fire'));
    },
  });
  server.registerCommand({ name: 'x-nothing', handler: async () => undefined });
  const client = await connected(t, path);
  assert.deepEqual(await client.execute('x-job-op', { id: 'missing' }, { id: 1 }), { id: 1, error: { class: 'DeviceNotActive', desc: "Block job 'missing' not found" } });
  assert.deepEqual(await client.execute('x-job-op', { id: 'busy' }), { error: { class: 'GenericError', desc: "Node 'busy' is busy" } });
  assert.deepEqual(await client.execute('x-job-op', { id: 'explicit' }), { error: { class: 'DeviceNotFound', desc: 'Device not found' } });
  assert.deepEqual(await client.execute('x-job-op', { id: 'bug' }), { error: { class: 'GenericError', desc: 'x is undefined' } });
  assert.deepEqual(await client.execute('x-job-op', { id: 'async' }), { error: { class: 'GenericError', desc: 'disk on fire' } });
  assert.deepEqual(await client.execute('x-nothing'), { return: {} });
  assert.throws(() => server.registerCommand({ name: 'x-nothing', handler: () => undefined }), { code: 'ALREADY_EXISTS' });
});

test('replies come in request order even when handlers finish out of order', async (t) => {
  const { server, path } = await startServer(t);
  const pending: Array<() => void> = [];
  server.registerCommand({
    name: 'x-wait',
    args: struct('WaitArgs', { n: int }),
    handler: ({ n }: { n: number }) => (n === 0 ? new Promise<number>((resolve) => pending.push(() => resolve(n))) : n),
  });
  const client = await connected(t, path);
  client.sendRaw('{"execute":"x-wait","arguments":{"n":0},"id":0}{"execute":"x-wait","arguments":{"n":1},"id":1}');
  while (pending.length === 0) await new Promise((resolve) => setImmediate(resolve));
  pending[0]!();
  assert.deepEqual(await client.nextReply(), { return: 0, id: 0 });
  assert.deepEqual(await client.nextReply(), { return: 1, id: 1 });
});

test('events reach every negotiated client, with timestamps, and no client before negotiation', async (t) => {
  const { server, path } = await startServer(t);
  const first = await connected(t, path);
  const second = await connected(t, path);
  const unnegotiated = await connected(t, path, false);
  const before = Date.now();
  server.emitEvent('JOB_STATUS_CHANGE', { status: 'running', id: 'j1' });
  server.emitEvent('STOP');
  for (const client of [first, second]) {
    const event = await client.waitForEvent('JOB_STATUS_CHANGE');
    assert.deepEqual(Object.keys(event), ['timestamp', 'event', 'data']);
    assert.deepEqual(event.data, { status: 'running', id: 'j1' });
    const { seconds, microseconds } = event.timestamp;
    assert.ok(Number.isInteger(seconds) && Number.isInteger(microseconds) && microseconds >= 0 && microseconds < 1e6);
    assert.ok(seconds * 1000 + microseconds / 1000 >= before - 1);
    const stop = await client.waitForEvent('STOP');
    assert.deepEqual(Object.keys(stop), ['timestamp', 'event'], 'an event without data has no data member');
  }
  await unnegotiated.command('qmp_capabilities');
  server.emitEvent('RESUME');
  await unnegotiated.waitForEvent('RESUME');
  assert.deepEqual(unnegotiated.events.map((event) => event.event), ['RESUME']);
});

test('garbage, deep nesting and split messages do not disturb the session', async (t) => {
  const { path } = await startServer(t);
  const client = await connected(t, path);
  client.sendRaw(Buffer.from([0x40, 0x0a]));
  assert.deepEqual(await client.nextReply(), { error: { class: 'GenericError', desc: "JSON parse error, stray '@'" } });
  client.sendRaw(`${'['.repeat(1025)}\n`);
  assert.deepEqual(await client.nextReply(), { error: { class: 'GenericError', desc: 'JSON nesting depth limit exceeded' } });
  for (const piece of ['{"exe', 'cute": "query-', 'version", "id"', ': 5}']) client.sendRaw(piece);
  assert.equal((await client.nextReply()).id, 5);
});

test('a message over 16 MiB is cut off with an error, and other clients are still served', async (t) => {
  const { path } = await startServer(t);
  const bystander = await connected(t, path);
  const flooder = await connected(t, path);
  const chunk = Buffer.alloc(1024 * 1024, 0x61);
  flooder.sendRaw('{"execute":"query-version","id":"');
  for (let i = 0; i < 17; i++) flooder.sendRaw(chunk);
  assert.deepEqual(await flooder.nextReply(), { error: { class: 'GenericError', desc: 'JSON token size limit exceeded' } });
  await flooder.closed;
  assert.equal((await bystander.execute('query-version', undefined, { id: 'still here' })).id, 'still here');
});

test('a client that sends many requests in one go gets every reply, in order', async (t) => {
  const { path } = await startServer(t);
  const client = await connected(t, path);
  const count = 2000;
  let batch = '';
  for (let i = 0; i < count; i++) batch += `{"execute":"query-version","id":${i}}`;
  client.sendRaw(batch);
  for (let i = 0; i < count; i++) assert.equal((await client.nextReply()).id, i);
});

test('quit replies first, then runs the quit hook', async (t) => {
  let quitting: () => void = () => undefined;
  const quit = new Promise<void>((resolve) => (quitting = resolve));
  const { path } = await startServer(t, { onQuit: () => quitting() });
  const client = await connected(t, path);
  assert.deepEqual(await client.execute('quit'), { return: {} });
  await quit;
});

test('without a quit hook, quit closes the server', { timeout: 60_000 }, async (t) => {
  const { server, path } = await startServer(t);
  const client = await connected(t, path);
  assert.deepEqual(await client.execute('quit'), { return: {} });
  await client.closed;
  assert.equal(server.clientCount, 0);
  // Closing finishes asynchronously; the socket file goes last.
  while (await stat(path).then(() => true, () => false)) await new Promise((resolve) => setImmediate(resolve));
  await assert.rejects(QmpClient.connect(path), { code: 'ENOENT' });
});

test('TCP listening defaults to 127.0.0.1', async (t) => {
  const server = new QmpServer();
  t.after(() => server.close());
  const address = await server.listenTcp(0);
  assert.equal(address.address, '127.0.0.1');
  const client = await QmpClient.connect({ port: address.port });
  t.after(() => client.close());
  assert.equal((await client.command('query-version')).qemu.minor, 2);
});

test('a stale socket file is replaced; any other file is refused', async (t) => {
  const dir = await tempDir(t, 'livebackup-qmp-');
  const path = join(dir, 'qmp.sock');
  // A daemon killed while listening leaves its socket file behind.
  const crashed = spawnSync(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`]);
  assert.equal(crashed.signal, 'SIGKILL');
  assert.ok((await stat(path)).isSocket());
  const second = new QmpServer();
  t.after(() => second.close());
  await second.listenUnix(path);
  const socket = connect(path);
  await once(socket, 'connect');
  socket.destroy();

  const file = join(dir, 'not-a-socket');
  await writeFile(file, 'data');
  const third = new QmpServer();
  await assert.rejects(third.listenUnix(file), { code: 'ALREADY_EXISTS' });
});

test('a client that shuts down its sending side still gets the replies to what it sent', async (t) => {
  const { path } = await startServer(t);
  const socket = connect(path);
  t.after(() => socket.destroy());
  await once(socket, 'connect');
  let received = '';
  socket.setEncoding('utf8').on('data', (text: string) => (received += text));
  socket.end('{"execute":"qmp_capabilities"}{"execute":"query-version","id":"last"}\n');
  await once(socket, 'close');
  const lines = received.split('\r\n');
  assert.equal(lines.length, 4, received);
  assert.equal(lines[3], '');
  assert.deepEqual(JSON.parse(lines[1]!), { return: {} });
  assert.equal(JSON.parse(lines[2]!).id, 'last');
});

test('unexpected handler failures are logged, and commands, replies and events are traced', async (t) => {
  const warnings: Array<{ details: object; message: string }> = [];
  const logger = { debug: () => undefined, warn: (details: object, message: string) => warnings.push({ details, message }) };
  const { server, path } = await startServer(t, { logger });
  server.registerCommand({ name: 'x-bug', handler: () => { throw new TypeError('oops'); } });
  server.registerCommand({ name: 'x-refuse', handler: () => { throw new LivebackupError('INVALID_STATE', 'not now'); } });
  const traced: Array<[string, unknown]> = [];
  const subscriptions = (['handle-command', 'respond', 'event'] as const).map((name) => {
    const listener = (message: unknown): void => { traced.push([name, message]); };
    subscribe(`livebackup:qmp:${name}`, listener);
    return () => unsubscribe(`livebackup:qmp:${name}`, listener);
  });
  t.after(() => subscriptions.forEach((unsubscribeOne) => unsubscribeOne()));
  const client = await connected(t, path);
  await client.execute('x-refuse');
  await client.execute('x-bug', undefined, { id: 7 });
  server.emitEvent('STOP');
  assert.equal(warnings.length, 1);
  assert.equal(warnings[0]!.message, 'QMP command failed unexpectedly');
  assert.equal((warnings[0]!.details as { command: string }).command, 'x-bug');
  const commands = traced.filter(([name]) => name === 'handle-command').map(([, message]) => (message as { command: string }).command);
  assert.deepEqual(commands, ['qmp_capabilities', 'x-refuse', 'x-bug']);
  const lastReply = traced.filter(([name]) => name === 'respond').at(-1)![1] as { sessionId: unknown; reply: unknown };
  assert.equal(typeof lastReply.sessionId, 'number');
  assert.deepEqual(lastReply.reply, { id: 7, error: { class: 'GenericError', desc: 'oops' } });
  assert.deepEqual(traced.at(-1), ['event', { event: 'STOP', data: undefined }]);
});

test('with checkReplies, a reply that does not match the command’s return type is refused', async (t) => {
  const { server, path } = await startServer(t, { checkReplies: true });
  const JobInfo = list(struct('JobInfo', { id: str, '*speed': int }));
  let jobs: unknown = [{ id: 'j1' }, { id: 'j2', speed: 5 }];
  server.registerCommand({ name: 'x-query-jobs', returns: JobInfo, handler: () => jobs });
  const client = await connected(t, path);
  assert.deepEqual(await client.execute('x-query-jobs'), { return: [{ id: 'j1' }, { id: 'j2', speed: 5 }] });
  jobs = [{ id: 'j1', status: 'running' }];
  assert.deepEqual(await client.execute('x-query-jobs'), {
    error: { class: 'GenericError', desc: "Reply to x-query-jobs does not match its schema: Parameter '[0].status' is unexpected" },
  });
  assert.equal((await client.command('query-version')).qemu.major, 7, 'built-in commands satisfy their own return types');
  assert.ok((await client.command<unknown[]>('query-commands')).length >= 5);
});

test('a reply that cannot be encoded, or a failing quit hook, does not take the server down', async (t) => {
  const { server, path } = await startServer(t, { onQuit: () => { throw new Error('hook failed'); } });
  server.registerCommand({
    name: 'x-cycle',
    handler: () => {
      const value: Record<string, unknown> = {};
      value.self = value;
      return value;
    },
  });
  const client = await connected(t, path);
  const reply = await client.execute('x-cycle', undefined, { id: 'c' });
  assert.equal(reply.id, 'c');
  assert.equal(reply.error?.class, 'GenericError');
  assert.match(reply.error!.desc, /^Reply could not be encoded: /);
  assert.deepEqual(await client.execute('quit'), { return: {} });
  assert.equal((await client.execute('query-version', undefined, { id: 'alive' })).id, 'alive');
});

test('connections beyond maxClients are closed at once; a freed slot can be reused', { timeout: 60_000 }, async (t) => {
  const { server, path } = await startServer(t, { maxClients: 2 });
  const first = await connected(t, path);
  await connected(t, path);
  await assert.rejects(QmpClient.connect(path), /closed/);
  await first.close();
  while (server.clientCount > 1) await new Promise((resolve) => setImmediate(resolve));
  const again = await connected(t, path);
  assert.equal((await again.execute('query-version', undefined, { id: 'slot' })).id, 'slot');
});

test('a socket path that cannot be bound is a clear error naming it', async (t) => {
  const dir = await tempDir(t, 'livebackup-qmp-');
  const server = new QmpServer();
  t.after(() => server.close());
  const tooLong = join(dir, `${'s'.repeat(150)}.sock`);
  await assert.rejects(server.listenUnix(tooLong), (error: unknown) => {
    assert.ok(error instanceof LivebackupError);
    assert.equal(error.code, 'INVALID_ARGUMENT');
    assert.ok(error.message.startsWith(`Cannot listen on '${tooLong}'`), error.message);
    return true;
  });
  await assert.rejects(server.listenUnix(join(dir, 'missing-dir', 'qmp.sock')), { code: 'IO_ERROR' });
  assert.equal(server.clientCount, 0);
});

test('a flood of tiny malformed messages gets one reply each, in order, and the session goes on', async (t) => {
  const { path } = await startServer(t);
  const client = await connected(t, path);
  const count = 20_000;
  // Alternate two kinds of bad input so that replies out of order would show.
  client.sendRaw(`${'1 {"x":1} '.repeat(count / 2)}{"execute":"query-version","id":"after"}\n`);
  for (let i = 0; i < count; i++) {
    const desc = i % 2 === 0 ? 'QMP input must be a JSON object' : "QMP input member 'x' is unexpected";
    assert.deepEqual(await client.nextReply(), { error: { class: 'GenericError', desc } }, `reply ${i}`);
  }
  assert.equal((await client.nextReply()).id, 'after');
});

test('a message over the token limit is skipped whole: one error, then the next command is answered', async (t) => {
  const { path } = await startServer(t);
  const client = await connected(t, path);
  client.sendRaw(`[${'1,'.repeat(300_000)}1]\n{"execute":"query-version","id":"next"}\n`);
  assert.deepEqual(await client.nextReply(), { error: { class: 'GenericError', desc: 'JSON token count limit exceeded' } });
  assert.equal((await client.nextReply()).id, 'next');
});
