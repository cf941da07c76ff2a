import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { livebackup } from './cli-runner.js';
import { CLI_MAIN } from './cli-runner.js';
import { qemuImgCheck, qemuImgCompare, runOk, skipUnlessTools } from '../helpers/tools.js';
import { tempDir } from '../helpers/temp-dir.js';

const skip = skipUnlessTools('qemu-img', 'qemu-io');

async function qcow2WithData(dir: string, name: string, size = '64M', extraArgs: string[] = []): Promise<string> {
  const path = join(dir, name);
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', ...extraArgs, path, size]);
  await runOk('qemu-io', ['-c', 'write -P 0x5a 1M 3M', '-c', 'write -z 8M 1M', '-c', 'write -P 0xa5 60M 4M', path]);
  return path;
}

test('backup to a new qcow2 and raw: exact, clean, with a summary', { skip }, async (t) => {
  const dir = await tempDir(t);
  const source = await qcow2WithData(dir, 'disk.qcow2');
  const qcow2Target = join(dir, 'backup.qcow2');
  const result = await livebackup('backup', source, qcow2Target);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /Backup complete: 64 MiB/);
  assert.ok(await qemuImgCompare(source, qcow2Target));
  assert.equal((await qemuImgCheck(qcow2Target)).code, 0);
  const rawTarget = join(dir, 'backup.img');
  assert.equal((await livebackup('backup', source, rawTarget)).code, 0);
  assert.ok(await qemuImgCompare(source, rawTarget, 'qcow2', 'raw'));
});

test('--json prints one parseable event per line, from created to null', { skip }, async (t) => {
  const dir = await tempDir(t);
  const source = await qcow2WithData(dir, 'disk.qcow2');
  const result = await livebackup('backup', '--json', '-f', 'qcow2', source, join(dir, 'out'));
  assert.equal(result.code, 0, result.stderr);
  const lines = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, any>);
  const statuses = lines.filter((line) => line.event === 'JOB_STATUS_CHANGE').map((line) => line.data.status);
  assert.deepEqual(statuses.slice(0, 2), ['created', 'running']);
  assert.deepEqual(statuses.slice(-2), ['concluded', 'null']);
  const completed = lines.find((line) => line.event === 'BLOCK_JOB_COMPLETED');
  assert.equal(completed?.data.len, 64 * 1024 * 1024);
  assert.equal(lines.at(-1)?.result?.status, 'completed');
});

test('--sync top creates the target over the same backing file', { skip }, async (t) => {
  const dir = await tempDir(t);
  const base = await qcow2WithData(dir, 'base.qcow2');
  const overlay = join(dir, 'overlay.qcow2');
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', overlay]);
  await runOk('qemu-io', ['-c', 'write -P 0x77 2M 512K', overlay]);
  const target = join(dir, 'top.qcow2');
  const result = await livebackup('backup', '--sync', 'top', '--json', overlay, target);
  assert.equal(result.code, 0, result.stderr);
  const info = JSON.parse(await runOk('qemu-img', ['info', '--output=json', target])) as Record<string, unknown>;
  assert.equal(info['backing-filename'], base);
  assert.ok(await qemuImgCompare(overlay, target));
  const completed = result.stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line)).find((line) => line.event === 'BLOCK_JOB_COMPLETED');
  assert.equal(completed.data.len, 512 * 1024, 'len is the bytes allocated in the top layer');
});

test('usage errors exit 2 with a message: sync none, existing target, missing existing target, bad speed', { skip }, async (t) => {
  const dir = await tempDir(t);
  const source = await qcow2WithData(dir, 'disk.qcow2');
  const none = await livebackup('backup', '--sync', 'none', source, join(dir, 'x.qcow2'));
  assert.equal(none.code, 2);
  assert.match(none.stderr, /--sync none/);
  const existing = join(dir, 'existing.qcow2');
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', existing, '64M']);
  const refused = await livebackup('backup', source, existing);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /already exists.*--force/);
  assert.equal((await livebackup('backup', '--mode', 'existing', source, existing)).code, 0);
  assert.ok(await qemuImgCompare(source, existing));
  const missing = await livebackup('backup', '--mode', 'existing', source, join(dir, 'missing.qcow2'));
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /does not exist/);
  const badSpeed = await livebackup('backup', '--speed', 'fast', source, join(dir, 'y.qcow2'));
  assert.equal(badSpeed.code, 2);
  assert.match(badSpeed.stderr, /speed/);
  const same = await livebackup('backup', '--force', source, source);
  assert.equal(same.code, 2);
  assert.match(same.stderr, /Source and target cannot be the same/);
});

test('SIGINT cancels cleanly: exit 1 and a message that the target is incomplete', { skip }, async (t) => {
  const dir = await tempDir(t);
  const source = await qcow2WithData(dir, 'disk.qcow2');
  const child = spawn(process.execPath, [CLI_MAIN, 'backup', '--speed', '4M', '--json', source, join(dir, 'slow.qcow2')]);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  while (!stdout.includes('"running"')) await new Promise((resolve) => setTimeout(resolve, 20));
  child.kill('SIGINT');
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('close', (...result) => resolve(result)));
  assert.equal(code, 1, `exit ${code} (signal ${signal})\nstderr: ${stderr}\nstdout: ${stdout.slice(-3000)}`);
  assert.match(stderr, /interrupted; .* is incomplete/);
  assert.match(stdout, /BLOCK_JOB_CANCELLED/);
});
