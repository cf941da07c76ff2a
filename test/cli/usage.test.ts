import { test } from 'node:test';
import assert from 'node:assert/strict';
import { livebackup } from './cli-runner.js';

test('--help of the program, of img and of every subcommand exits 0 and explains arguments, exit codes and examples', async () => {
  const top = await livebackup('--help');
  assert.equal(top.code, 0);
  assert.match(top.stdout, /Usage: livebackup/);
  assert.match(top.stdout, /img/);
  assert.match(top.stdout, /demo/);
  assert.match(top.stdout, /Exit codes:/);

  const img = await livebackup('img', '--help');
  assert.equal(img.code, 0);
  for (const name of ['create', 'info', 'map', 'compare', 'resize']) assert.match(img.stdout, new RegExp(`\\n  ${name} `));

  for (const name of ['create', 'info', 'map', 'compare', 'resize']) {
    const help = await livebackup('img', name, '--help');
    assert.equal(help.code, 0, name);
    assert.match(help.stdout, new RegExp(`Usage: livebackup img ${name} `), name);
    assert.match(help.stdout, /Exit codes:/, name);
    assert.match(help.stdout, /Examples:/, name);
    assert.equal(help.stderr, '', name);
  }
  const demo = await livebackup('demo', '--help');
  assert.equal(demo.code, 0);
  assert.match(demo.stdout, /Exit codes:/);
  const version = await livebackup('--version');
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
});

test('usage errors exit 2 with a message on stderr', async () => {
  const cases: { args: string[]; message: RegExp }[] = [
    { args: ['frobnicate'], message: /unknown command 'frobnicate'/ },
    { args: ['img', 'info'], message: /missing required argument 'file'/ },
    { args: ['img', 'info', '--bogus', 'x'], message: /unknown option '--bogus'/ },
    { args: ['img', 'map', '--output', 'yaml', 'x'], message: /'yaml' is invalid/ },
    { args: ['img', 'create'], message: /missing required argument 'file'/ },
    { args: ['img'], message: /Usage: livebackup img/ },
    { args: ['demo', '--size', 'lots'], message: /Invalid demo disk size 'lots'/ },
  ];
  for (const { args, message } of cases) {
    const result = await livebackup(...args);
    assert.equal(result.code, 2, `exit code of ${args.join(' ')}`);
    assert.match(result.stderr, message, args.join(' '));
    assert.doesNotMatch(result.stderr, /\n\s+at /, `no stack trace for ${args.join(' ')}`);
  }
});

test('demo: a live backup that holds the point-in-time content, exits 0', async () => {
  const result = await livebackup('demo');
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stderr, '');
  assert.match(result.stdout, /\$ livebackup img info /);
  assert.match(result.stdout, /file format: qcow2\n/);
  assert.match(result.stdout, /virtual size: 256 MiB \(268435456 bytes\)/);
  assert.match(result.stdout, /\$ livebackup img map /);
  assert.match(result.stdout, /Backup complete: .* the guest wrote \d+ MiB meanwhile/);
  assert.match(result.stdout, /backup\.qcow2 \S+point-in-time\.raw\nImages are identical\.\n/);
  assert.match(result.stdout, /disk\.qcow2 \S+backup\.qcow2\nContent mismatch at offset \d+!\n/);
  const small = await livebackup('demo', '--size', '1M');
  assert.equal(small.code, 2);
  assert.match(small.stderr, /Invalid demo disk size '1M': use at least 16M/);
});
