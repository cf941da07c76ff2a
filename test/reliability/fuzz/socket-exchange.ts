/**
 * One fuzz conversation over a unix socket: connect, send the bytes,
 * half-close, and collect what the server sends until it closes.
 */
import { createConnection } from 'node:net';

/** Resolves with the server's bytes once it closes, or with a text if it has not closed `timeoutMs` after our EOF. */
export function exchange(path: string, bytes: Uint8Array, timeoutMs: number): Promise<Buffer | string> {
  return new Promise((resolve) => {
    const socket = createConnection(path);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(`hang: the server did not close the connection within ${timeoutMs} ms of EOF`);
    }, timeoutMs);
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('connect', () => socket.end(bytes));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
  });
}
