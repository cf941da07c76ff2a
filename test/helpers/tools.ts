/**
 * Access to the real QEMU and libnbd tools the interop tests use. When a
 * tool is missing, tests are skipped with a message naming the Debian
 * package, except under CI=true, where a missing tool fails the run.
 */
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

const PACKAGE_OF: Record<string, string> = {
  'qemu-img': 'qemu-utils',
  'qemu-io': 'qemu-utils',
  'qemu-nbd': 'qemu-utils',
  'qemu-storage-daemon': 'qemu-system-common',
  nbdinfo: 'libnbd-bin',
  nbdcopy: 'libnbd-bin',
};

const present = new Map<string, boolean>();

function hasTool(name: string): boolean {
  let known = present.get(name);
  if (known === undefined) {
    known = spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
    present.set(name, known);
  }
  return known;
}

/**
 * For `test(name, { skip: skipUnlessTools('qemu-img') }, fn)`: false when
 * every tool is installed, else a skip message. Under CI=true a missing tool
 * throws instead, so the test file fails rather than skipping.
 */
export function skipUnlessTools(...names: string[]): string | false {
  const missing = names.filter((name) => !hasTool(name));
  if (missing.length === 0) return false;
  const packages = [...new Set(missing.map((name) => PACKAGE_OF[name] ?? name))].join(' ');
  const message = `needs ${missing.join(', ')}: apt-get install -y ${packages}`;
  if (process.env.CI === 'true') throw new Error(`interop tool missing under CI: ${message}`);
  return message;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Run a command; resolves with its output and exit code (never rejects on a non-zero exit). */
export async function run(command: string, args: string[], options: { timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
  try {
    const { stdout, stderr } = await execFileAsync(command, args, {
      maxBuffer: 256 * 1024 * 1024,
      timeout: options.timeoutMs ?? 120_000,
      encoding: 'utf8',
    });
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const failure = error as { stdout?: string; stderr?: string; code?: unknown; killed?: boolean };
    if (typeof failure.code !== 'number') throw error;
    return { stdout: failure.stdout ?? '', stderr: failure.stderr ?? '', code: failure.code };
  }
}

/** Run a command that must succeed; rejects with its stderr otherwise. */
export async function runOk(command: string, args: string[], options: { timeoutMs?: number } = {}): Promise<string> {
  const result = await run(command, args, options);
  if (result.code !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited ${result.code}: ${result.stderr || result.stdout}`);
  }
  return result.stdout;
}

/** One entry of `qemu-img map --output=json`. */
export interface QemuMapEntry {
  start: number;
  length: number;
  depth: number;
  present: boolean;
  zero: boolean;
  data: boolean;
  offset?: number;
}

export interface QemuImgCheck {
  code: number;
  corruptions: number;
  leaks: number;
  checkErrors: number;
  raw: string;
}

/** `qemu-img check --output=json`: exit 0 clean, 2 corruption, 3 leaks only. */
export async function qemuImgCheck(filename: string): Promise<QemuImgCheck> {
  const result = await run('qemu-img', ['check', '--output=json', filename]);
  let parsed: Record<string, number> = {};
  try {
    parsed = JSON.parse(result.stdout) as Record<string, number>;
  } catch {
    // Not JSON: a fatal error; keep the text in raw.
  }
  return {
    code: result.code,
    corruptions: parsed.corruptions ?? 0,
    leaks: parsed.leaks ?? 0,
    checkErrors: parsed['check-errors'] ?? 0,
    raw: result.stdout + result.stderr,
  };
}

/** `qemu-img compare`: true when identical, false when different; rejects on error. */
export async function qemuImgCompare(a: string, b: string, formatA?: string, formatB?: string): Promise<boolean> {
  const args = ['compare', '-U'];
  if (formatA) args.push('-f', formatA);
  if (formatB) args.push('-F', formatB);
  const result = await run('qemu-img', [...args, a, b]);
  if (result.code === 0) return true;
  if (result.code === 1) return false;
  throw new Error(`qemu-img compare failed (${result.code}): ${result.stderr}`);
}
