/** Fast all-zero test for I/O buffers (memcmp against a shared zero page). */

const ZERO_PAGE = Buffer.alloc(64 * 1024);

/** True when every byte of buf is zero. Stops at the first non-zero 64 KiB page. */
export function isAllZero(buf: Uint8Array): boolean {
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let offset = 0; offset < view.length; offset += ZERO_PAGE.length) {
    const end = Math.min(view.length, offset + ZERO_PAGE.length);
    if (view.compare(ZERO_PAGE, 0, end - offset, offset, end) !== 0) return false;
  }
  return true;
}
