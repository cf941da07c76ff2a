/**
 * Write-side back-pressure for sockets: wait until a socket's send buffer
 * has drained before producing more replies, so that a peer which sends
 * requests but never reads the replies cannot grow our memory.
 */
import type { Socket } from 'node:net';

/** Bytes queued in a socket above which reply producers wait for 'drain'. */
export const SEND_BUFFER_LIMIT = 1024 * 1024;

/** Resolve at once when the send buffer is small, else on 'drain' or when the socket closes. */
export function waitForDrain(socket: Socket): Promise<void> {
  if (socket.destroyed || socket.writableLength <= SEND_BUFFER_LIMIT) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}
