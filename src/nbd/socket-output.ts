/**
 * The sending side of a server socket: back-pressure (wait until the send
 * buffer has drained before producing more replies, so that a peer which
 * sends requests but never reads replies cannot grow our memory) and a
 * graceful close that still delivers queued replies.
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

/** How long a closing socket may take to deliver its last replies before it is dropped. */
export const CLOSE_GRACE_MS = 5000;

/**
 * Close gracefully: send what is queued, then FIN, and resolve when the
 * socket has closed. A peer that neither reads nor closes is dropped after
 * CLOSE_GRACE_MS.
 */
export function endAndClose(socket: Socket): Promise<void> {
  if (socket.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.end();
  });
}
