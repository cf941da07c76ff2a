/**
 * Measured child processes: wall time from spawn to exit, peak RSS and
 * (with `time -v`) CPU seconds, which stay meaningful when other load on
 * the machine makes wall times noisy.
 * Peak RSS comes from GNU `/usr/bin/time -v` (apt package `time`) when it
 * is installed; otherwise /proc/PID/status VmHWM is polled while the
 * process runs (which can miss a peak reached just before exit).
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, constants } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Measurement } from './pairs.js';
import { connectWhenListening } from '../../test/helpers/unix-socket.js';

const GNU_TIME = '/usr/bin/time';

/** How peak RSS is measured on this machine. */
export type RssMethod = 'time -v' | '/proc VmHWM polling';

/** 'time -v' when GNU time is installed, else VmHWM polling. */
export const rssMethod: RssMethod = (() => {
  try {
    accessSync(GNU_TIME, constants.X_OK);
    return 'time -v' as const;
  } catch {
    return '/proc VmHWM polling' as const;
  }
})();

/** What `time -v` reports that the bench uses. */
export interface TimeVerbose {
  /** "Maximum resident set size (kbytes)", in bytes. */
  readonly peakRssBytes?: number;
  /** User plus system CPU seconds. */
  readonly cpuSeconds?: number;
}

/** Parse the report of GNU `time -v`. */
export function parseTimeVerbose(text: string): TimeVerbose {
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(text);
  const user = /User time \(seconds\): ([\d.]+)/.exec(text);
  const system = /System time \(seconds\): ([\d.]+)/.exec(text);
  return {
    peakRssBytes: rss ? Number(rss[1]) * 1024 : undefined,
    cpuSeconds: user && system ? Number(user[1]) + Number(system[1]) : undefined,
  };
}

/** The VmHWM line of /proc/PID/status, in bytes. */
export function parseVmHwm(text: string): number | undefined {
  const match = /^VmHWM:\s+(\d+) kB/m.exec(text);
  return match ? Number(match[1]) * 1024 : undefined;
}

export interface SpawnOptions {
  readonly env?: NodeJS.ProcessEnv;
  /** stdin: 'pipe' to write to the process, 'ignore' by default. */
  readonly stdin?: 'pipe' | 'ignore';
  /** stdout: 'pipe' to read it, 'ignore' by default. */
  readonly stdout?: 'pipe' | 'ignore';
  /** Folder for the `time -v` report file. */
  readonly scratchDir: string;
}

/** A process being measured. `exited` resolves when it exits with code 0 and rejects otherwise. */
export interface MeasuredProcess {
  readonly child: ChildProcess;
  /** Resolves at exit: wall seconds since spawn and peak RSS. */
  readonly exited: Promise<Measurement>;
  /** Everything the process wrote to stderr so far. */
  stderr(): string;
  /** Send `signal` to the measured program itself (not to the `time` wrapping it). */
  signal(signal: NodeJS.Signals): Promise<void>;
}

let reportCounter = 0;

/** Spawn `argv` measured. A non-zero exit rejects `exited` with the command and its stderr. */
export function spawnMeasured(argv: readonly string[], options: SpawnOptions): MeasuredProcess {
  const [command, ...args] = argv;
  if (!command) throw new Error('spawnMeasured: empty command');
  const report = join(options.scratchDir, `time-${process.pid}-${reportCounter++}.txt`);
  const stdio: StdioOptions = [options.stdin ?? 'ignore', options.stdout ?? 'ignore', 'pipe'];
  const started = performance.now();
  const child =
    rssMethod === 'time -v'
      ? spawn(GNU_TIME, ['-v', '-o', report, command, ...args], { stdio, env: options.env })
      : spawn(command, args, { stdio, env: options.env });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const poller = rssMethod === 'time -v' ? undefined : pollVmHwm(child);
  const exited = (async (): Promise<Measurement> => {
    const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
    const seconds = (performance.now() - started) / 1000;
    const polledPeak = poller?.stop();
    if (code !== 0) {
      await rm(report, { force: true });
      throw new Error(`${argv.join(' ')} ${signal ? `was killed by ${signal}` : `exited ${code}`}: ${stderr.trim().slice(-2000)}`);
    }
    if (rssMethod === 'time -v') {
      const { peakRssBytes, cpuSeconds } = parseTimeVerbose(await readFile(report, 'utf8'));
      await rm(report, { force: true });
      return { seconds, peakRssBytes, cpuSeconds, rssMethod };
    }
    return { seconds, peakRssBytes: polledPeak, rssMethod };
  })();
  exited.catch(() => undefined);
  const signal = async (name: NodeJS.Signals): Promise<void> => {
    if (rssMethod !== 'time -v') {
      child.kill(name);
      return;
    }
    // The measured program is the only child of `time`.
    if (child.pid !== undefined) await runTool(['pkill', `--signal=${name}`, '-P', String(child.pid)]);
  };
  return { child, exited, stderr: () => stderr, signal };
}

/** Run `argv` to completion, measured. */
export function runMeasured(argv: readonly string[], options: SpawnOptions): Promise<Measurement> {
  return spawnMeasured(argv, options).exited;
}

/** Poll VmHWM of a child every 20 ms; stop() returns the last value read. */
function pollVmHwm(child: ChildProcess): { stop(): number | undefined } {
  let peak: number | undefined;
  let reading = false;
  const timer = setInterval(() => {
    if (reading || child.pid === undefined) return;
    reading = true;
    readFile(`/proc/${child.pid}/status`, 'utf8')
      .then((text) => {
        const value = parseVmHwm(text);
        if (value !== undefined) peak = Math.max(peak ?? 0, value);
      })
      .catch(() => undefined)
      .finally(() => (reading = false));
  }, 20);
  return {
    stop() {
      clearInterval(timer);
      return peak;
    },
  };
}

/**
 * Wait until `path` is a listening unix socket (one connect succeeds; a
 * server creates the file when it binds, a moment before it listens);
 * rejects if `process` exits first.
 */
export async function waitForSocket(path: string, measured: MeasuredProcess): Promise<void> {
  let exited = false;
  measured.exited.then(
    () => (exited = true),
    () => (exited = true),
  );
  const socket = await connectWhenListening(path, () =>
    exited ? `${measured.child.spawnargs.join(' ')} exited before listening on ${path}: ${measured.stderr()}` : undefined,
  );
  socket.destroy();
}

/** Run a helper command (not measured) that must succeed; resolves with its stdout. */
export async function runTool(argv: readonly string[]): Promise<string> {
  const [command, ...args] = argv;
  const child = spawn(command!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`${argv.join(' ')} exited ${code}: ${stderr.trim().slice(-2000)}`);
  return stdout;
}

/** True when `name` is on PATH. */
export async function hasCommand(name: string): Promise<boolean> {
  try {
    await runTool(['sh', '-c', `command -v ${name}`]);
    return true;
  } catch {
    return false;
  }
}
