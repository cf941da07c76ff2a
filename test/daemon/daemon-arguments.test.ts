/**
 * Parsing of the qemu-storage-daemon style command line: option order,
 * both --blockdev forms typed by the BlockdevOptions schema, chardev and
 * monitor forms, listener defaults, and refusals naming the bad option.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DaemonArgumentError, parseDaemonArguments } from '../../src/daemon/daemon-arguments.js';

test('--blockdev keyval is typed by the schema and equals the JSON form', () => {
  const keyval = parseDaemonArguments([
    '--blockdev', 'qcow2,node-name=disk,read-only=on,cache.no-flush=off,file.driver=file,file.filename=/i,,mg.qcow2,backing=base,lazy-refcounts=on',
  ]);
  const json = parseDaemonArguments([
    '--blockdev', JSON.stringify({ driver: 'qcow2', 'node-name': 'disk', 'read-only': true, cache: { 'no-flush': false }, file: { driver: 'file', filename: '/i,mg.qcow2' }, backing: 'base', 'lazy-refcounts': true }),
  ]);
  assert.deepEqual(keyval.steps[0]!.kind === 'blockdev' && keyval.steps[0]!.options, json.steps[0]!.kind === 'blockdev' && json.steps[0]!.options);
  const nullCo = parseDaemonArguments(['--blockdev', 'null-co,node-name=n,size=0x100000,latency-ns=10']).steps[0]!;
  assert.deepEqual(nullCo.kind === 'blockdev' && nullCo.options, { driver: 'null-co', 'node-name': 'n', size: 1048576, 'latency-ns': 10 });
  const blkdebug = parseDaemonArguments(['--blockdev', 'blkdebug,node-name=b,image=n,inject-error.0.event=read_aio,inject-error.0.errno=28,inject-error.1.event=write_aio']).steps[0]!;
  assert.deepEqual(blkdebug.kind === 'blockdev' && blkdebug.options['inject-error'], [{ event: 'read_aio', errno: 28 }, { event: 'write_aio' }]);
});

test('options keep their command-line order; chardev, monitor and --qmp forms', () => {
  const parsed = parseDaemonArguments([
    '--chardev', 'socket,id=a,path=/run/a.sock,server=on,wait=off',
    '--chardev', 'socket,id=b,port=4444,server,nowait',
    '--chardev=socket,id=c,host=::1,port=5555,server=on',
    '--monitor', 'a',
    '--blockdev', 'null-co,node-name=n',
    '--monitor', 'chardev=b,mode=control,pretty=on',
    '--monitor', 'c,pretty',
    '--qmp', 'tcp::6000',
    '--qmp', 'unix:/run/q.sock,server=on,wait=off',
    '--nbd-server', 'addr.type=inet,addr.host=,addr.port=10809,max-connections=2',
    '--export', 'nbd,id=e,node-name=n,writable=on',
    '--pidfile', '/run/lb.pid',
    '--daemonize',
  ]);
  assert.deepEqual(parsed.steps.map((step) => step.kind), ['monitor', 'blockdev', 'monitor', 'monitor', 'monitor', 'monitor', 'nbd-server', 'export']);
  const addresses = parsed.steps.filter((step) => step.kind === 'monitor').map((step) => step.kind === 'monitor' && step.address);
  assert.deepEqual(addresses, [
    { type: 'unix', path: '/run/a.sock' },
    { type: 'inet', host: '127.0.0.1', port: 4444 },
    { type: 'inet', host: '::1', port: 5555 },
    { type: 'inet', host: '127.0.0.1', port: 6000 },
    { type: 'unix', path: '/run/q.sock' },
  ]);
  const nbd = parsed.steps.find((step) => step.kind === 'nbd-server')!;
  assert.deepEqual(nbd.kind === 'nbd-server' && nbd.options, { addr: { type: 'inet', host: '', port: '10809' }, 'max-connections': 2 });
  const exported = parsed.steps.find((step) => step.kind === 'export')!;
  assert.deepEqual(exported.kind === 'export' && exported.options, { type: 'nbd', id: 'e', 'node-name': 'n', writable: true });
  assert.equal(parsed.pidfile, '/run/lb.pid');
  assert.equal(parsed.daemonize, true);
});

test('bad arguments are refused naming the option and the problem', () => {
  const refusals: Array<[string[], RegExp]> = [
    [['--blockdev', 'file,node-name=f'], /^--blockdev file,node-name=f: Parameter 'filename' is missing$/],
    [['--blockdev', 'qcow2,node-name=q,file=f,bogus=1'], /Parameter 'bogus' is unexpected/],
    [['--blockdev', '{"driver": "raw", "file": 3}'], /Invalid parameter type for 'file', expected: BlockdevRef/],
    [['--blockdev', 'raw,file.driver=file,file.filename=x,read-only=maybe'], /read-only/],
    [['--chardev', 'socket,id=a,path=/x'], /server=on/],
    [['--chardev', 'socket,id=a,server=on'], /needs 'path' or 'port'/],
    [['--chardev', 'socket,id=a,port=70000,server=on'], /invalid port '70000'/],
    [['--chardev', 'socket,id=a,path=/x,server=on', '--chardev', 'socket,id=a,path=/y,server=on'], /duplicate chardev id 'a'/],
    [['--monitor', 'chardev=a,mode=readline'], /only QMP monitors/],
    [['--qmp', 'stdio'], /expected 'unix:PATH' or 'tcp:HOST:PORT'/],
    [['--nbd-server', 'addr.type=unix'], /Parameter 'addr.path' is missing/],
    [['--export', 'type=nbd,id=e'], /Parameter 'node-name' is missing/],
    [['--object', 'secret,id=s,data=x'], /--object .*not supported/],
    [['--daemonize=yes'], /--daemonize: takes no value/],
    [['disk.img'], /disk\.img: unexpected argument/],
    [['--pidfile'], /--pidfile: requires an argument/],
  ];
  for (const [argv, message] of refusals) {
    assert.throws(() => parseDaemonArguments(argv), (error: unknown) => {
      assert.ok(error instanceof DaemonArgumentError, argv.join(' '));
      assert.match(error.message, message, argv.join(' '));
      return true;
    });
  }
});
