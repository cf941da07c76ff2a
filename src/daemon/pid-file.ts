/**
 * The --pidfile: written once startup is complete, removed at exit (as
 * qemu-storage-daemon does). The file is replaced atomically so a reader
 * never sees it half written.
 */
import { rename, unlink, writeFile } from 'node:fs/promises';
import { ioError } from '../errors.js';

/** Write `pid` (and a newline) to `path`. Throws IO_ERROR naming the path. */
export async function writePidFile(path: string, pid: number = process.pid): Promise<void> {
  const temporary = `${path}.${pid}.tmp`;
  try {
    await writeFile(temporary, `${pid}\n`, { mode: 0o644 });
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw ioError(`Cannot write pid file '${path}'`, error);
  }
}

/** Remove the pid file; a missing file is fine. */
export async function removePidFile(path: string): Promise<void> {
  await unlink(path).catch(() => undefined);
}
