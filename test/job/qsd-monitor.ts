/**
 * Just enough of a QMP client to drive a real qemu-storage-daemon's block
 * jobs from the job tests and record the events it emits, for comparison
 * with our Job.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { tempDir } from '../helpers/temp-dir.js';
import { connectWhenListening } from '../helpers/unix-socket.js';

export interface QmpEvent {
  event: string;
  data: Record<string, unknown>;
}

export type QmpReply = { return: unknown } | { error: { class: string; desc: string } };

export class QsdMonitor {
  /** Every event received so far, in order. */
  readonly events: QmpEvent[] = [];
  private buffer = '';
  private readonly replies: Array<(reply: QmpReply) => void> = [];
  private readonly eventWaiters: Array<{ match: (event: QmpEvent) => boolean; resolve: () => void }> = [];

  private constructor(private readonly socket: Socket, private readonly child: ChildProcess) {
    socket.setEncoding('utf8').on('data', (text: string) => this.receive(text));
  }

  /** Start qemu-storage-daemon with `args` and a monitor; it is killed when the test ends. */
  static async start(t: Pick<TestContext, 'after'>, args: readonly string[]): Promise<QsdMonitor> {
    const dir = await tempDir(t, 'livebackup-job-qsd-');
    const path = join(dir, 'qmp.sock');
    const child = spawn('qemu-storage-daemon', [...args, '--chardev', `socket,id=qmp,path=${path},server=on,wait=off`, '--monitor', 'chardev=qmp'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const exited = once(child, 'exit');
    t.after(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    });
    const socket = await connectWhenListening(path, () => (child.exitCode !== null ? `qemu-storage-daemon exited: ${stderr}` : undefined));
    const monitor = new QsdMonitor(socket, child);
    await monitor.nextReply(); // the greeting
    await monitor.execute('qmp_capabilities');
    t.after(() => socket.destroy());
    return monitor;
  }

  /** Run a command; resolves with its reply (never rejects on a QMP error). */
  execute(command: string, args?: Record<string, unknown>): Promise<QmpReply> {
    const reply = this.nextReply();
    this.socket.write(JSON.stringify(args === undefined ? { execute: command } : { execute: command, arguments: args }) + '\n');
    return reply;
  }

  /**
   * Resolves once an event matching `match` has arrived, counting those
   * already received at positions after `after` (default: all of them).
   */
  waitFor(match: (event: QmpEvent) => boolean, after = -1): Promise<void> {
    if (this.events.some((event, index) => index > after && match(event))) return Promise.resolve();
    return new Promise((resolve) => this.eventWaiters.push({ match, resolve }));
  }

  /** Resolves once JOB_STATUS_CHANGE to `status` has arrived (after position `after`, if given). */
  waitForStatus(status: string, after = -1): Promise<void> {
    return this.waitFor((event) => event.event === 'JOB_STATUS_CHANGE' && event.data.status === status, after);
  }

  /** Position of the first event named `name` (status name for JOB_STATUS_CHANGE), or -1. */
  indexOf(name: string): number {
    return this.names.indexOf(name);
  }

  /** The compact event sequence: status names for JOB_STATUS_CHANGE, event names otherwise. */
  get names(): string[] {
    return this.events.map((event) => (event.event === 'JOB_STATUS_CHANGE' ? String(event.data.status) : event.event));
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  private nextReply(): Promise<QmpReply> {
    return new Promise((resolve) => this.replies.push(resolve));
  }

  private receive(text: string): void {
    this.buffer += text;
    for (let newline = this.buffer.indexOf('\n'); newline >= 0; newline = this.buffer.indexOf('\n')) {
      const line = this.buffer.slice(0, newline).trim();
      this.buffer = this.buffer.slice(newline + 1);
      if (line === '') continue;
      const message = JSON.parse(line) as Record<string, unknown>;
      if (typeof message.event === 'string') {
        const event = { event: message.event, data: (message.data ?? {}) as Record<string, unknown> };
        this.events.push(event);
        for (const waiter of [...this.eventWaiters]) {
          if (waiter.match(event)) {
            this.eventWaiters.splice(this.eventWaiters.indexOf(waiter), 1);
            waiter.resolve();
          }
        }
      } else {
        this.replies.shift()?.(message as QmpReply);
      }
    }
  }
}
