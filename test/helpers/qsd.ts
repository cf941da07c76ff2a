/**
 * A real qemu-storage-daemon for interop tests, with QMP monitors on unix
 * sockets in a temp dir, and a transcript runner that plays the same QMP
 * conversation against any endpoint (qsd or livebackup) and returns it
 * normalised for comparison.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { QmpClient, type QmpObject, type QmpTarget } from './qmp-client.js';
import { tempDir } from './temp-dir.js';
import { connectWhenListening } from './unix-socket.js';

export interface QsdInstance {
  readonly dir: string;
  /** Monitor sockets; a qsd monitor serves one client at a time, so each client needs its own. */
  readonly socketPaths: readonly string[];
  readonly process: ChildProcess;
  /** Everything qsd wrote to stderr so far. */
  stderr(): string;
  /** Connect to monitor `index` (default 0). */
  connect(options?: { negotiate?: boolean; monitor?: number }): Promise<QmpClient>;
  /** Stop qsd (SIGTERM) and wait for it to exit; safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Start qemu-storage-daemon with `args` plus `monitors` QMP monitors.
 * It is stopped when the test (or suite) `t` ends.
 */
export async function startQsd(t: Pick<TestContext, 'after'>, args: readonly string[] = [], options: { monitors?: number } = {}): Promise<QsdInstance> {
  const dir = await tempDir(t, 'livebackup-qsd-');
  const socketPaths: string[] = [];
  const monitorArgs: string[] = [];
  for (let i = 0; i < (options.monitors ?? 1); i++) {
    const path = join(dir, `qmp-${i}.sock`);
    socketPaths.push(path);
    monitorArgs.push('--chardev', `socket,id=qmp${i},path=${path},server=on,wait=off`, '--monitor', `chardev=qmp${i}`);
  }
  const child = spawn('qemu-storage-daemon', [...monitorArgs, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  let exited = child.exitCode !== null;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', (error) => {
      stderr += `${error.message}\n`; // e.g. not installed: spawn fails without an exit event
      resolve();
    });
  }).then(() => {
    exited = true;
  });
  const stop = async (): Promise<void> => {
    if (!exited) child.kill('SIGTERM');
    await exit;
  };
  t.after(stop);

  for (const path of socketPaths) {
    // qsd creates and then listens on its sockets while starting up: wait until one connect succeeds.
    const probe = await connectWhenListening(path, () => (exited ? `qemu-storage-daemon exited during startup: ${stderr}` : undefined));
    probe.destroy();
  }
  return {
    dir,
    socketPaths,
    process: child,
    stderr: () => stderr,
    connect: (connectOptions = {}) => QmpClient.connect(socketPaths[connectOptions.monitor ?? 0]!, connectOptions),
    stop,
  };
}

/** One step of a QMP conversation. */
export type TranscriptStep =
  /** Send a command; record its reply. */
  | { readonly execute: string; readonly arguments?: unknown; readonly id?: unknown }
  /** Send text verbatim; record the next `replies` replies (default 1). */
  | { readonly raw: string; readonly replies?: number }
  /** Wait for an event; record it. */
  | { readonly event: string };

export interface TranscriptOptions {
  /** Replace values that legitimately differ; return undefined to keep the value. */
  readonly placeholder?: (value: unknown, key: string | undefined) => unknown;
}

const isVersionInfo = (value: unknown): value is QmpObject =>
  typeof value === 'object' && value !== null && 'qemu' in value && 'package' in value;

/**
 * A normalised copy of a QMP message: event timestamps dropped, the
 * micro version and package string of VersionInfo replaced by
 * '<micro>'/'<package>', plus whatever `placeholder` replaces.
 */
export function normalizeQmpMessage(message: unknown, options: TranscriptOptions = {}): unknown {
  const walk = (value: unknown, key: string | undefined): unknown => {
    const replaced = options.placeholder?.(value, key);
    if (replaced !== undefined) return replaced;
    if (Array.isArray(value)) return value.map((item) => walk(item, undefined));
    if (typeof value !== 'object' || value === null) return value;
    const result: QmpObject = {};
    for (const [member, inner] of Object.entries(value)) {
      if (member === 'timestamp' && 'event' in value) continue;
      result[member] = walk(inner, member);
    }
    if (isVersionInfo(result)) {
      result.package = '<package>';
      result.qemu = { ...result.qemu, micro: '<micro>' };
    }
    return result;
  };
  return walk(message, undefined);
}

/**
 * Play `steps` against a QMP endpoint on a fresh, not yet negotiated
 * connection (so negotiation can be part of the conversation). Returns
 * `[{greeting}, {send, receive: [...]}, ...]`, normalised.
 */
export async function runTranscript(target: QmpTarget, steps: readonly TranscriptStep[], options: TranscriptOptions = {}): Promise<unknown[]> {
  const client = await QmpClient.connect(target, { negotiate: false });
  const transcript: unknown[] = [{ greeting: normalizeQmpMessage(client.greeting, options) }];
  try {
    for (const step of steps) {
      if ('execute' in step) {
        const reply = await client.execute(step.execute, step.arguments, { id: step.id });
        transcript.push({ send: step, receive: [normalizeQmpMessage(reply, options)] });
      } else if ('raw' in step) {
        client.sendRaw(step.raw);
        const receive: unknown[] = [];
        for (let i = 0; i < (step.replies ?? 1); i++) receive.push(normalizeQmpMessage(await client.nextReply(), options));
        transcript.push({ send: step, receive });
      } else {
        transcript.push({ send: step, receive: [normalizeQmpMessage(await client.waitForEvent(step.event), options)] });
      }
    }
  } finally {
    await client.close();
  }
  return transcript;
}
