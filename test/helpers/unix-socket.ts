/** Connecting to a unix socket that a process we started is still setting up. */
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Connect to the unix socket at `path`, retrying while it does not exist
 * yet or exists but does not listen yet (a server binds before it listens,
 * so a connect in between is refused). `failure()` returns a reason to give
 * up (the server exited) or undefined to keep trying; gives up after
 * `timeoutMs` too.
 */
export async function connectWhenListening(path: string, failure: () => string | undefined, timeoutMs = 20_000): Promise<Socket> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const socket = connect(path);
    try {
      await Promise.race([once(socket, 'connect'), once(socket, 'error').then(([error]) => Promise.reject(error as Error))]);
      return socket;
    } catch (error) {
      socket.destroy();
      const code = (error as { code?: string }).code;
      if (code !== 'ENOENT' && code !== 'ECONNREFUSED') throw error;
    }
    const reason = failure();
    if (reason !== undefined) throw new Error(reason);
    if (Date.now() > deadline) throw new Error(`${path} did not start listening within ${timeoutMs} ms`);
    await sleep(10);
  }
}
