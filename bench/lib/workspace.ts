/**
 * The bench's temp folder: images are built once per run on first use and
 * shared by scenarios; targets are scratch files removed after each run;
 * everything is removed at the end. Free space is checked with statfs.
 */
import { mkdtemp, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runTool } from './processes.js';

export class Workspace {
  private readonly images = new Map<string, Promise<string>>();

  private constructor(readonly dir: string) {}

  /** A new folder under `base` (default: $TMPDIR or /tmp). */
  static async create(base: string = tmpdir()): Promise<Workspace> {
    return new Workspace(await mkdtemp(join(base, 'livebackup-bench-')));
  }

  /** Free bytes available to us on the file system of `dir`. */
  static async freeBytes(dir: string): Promise<number> {
    const info = await statfs(dir);
    return info.bavail * info.bsize;
  }

  /** A path in the workspace. */
  path(name: string): string {
    return join(this.dir, name);
  }

  /**
   * The path of image `name`, built by `build(path)` the first time it is
   * asked for; later callers share it. After building, dirty pages are
   * synced so that the writeback does not land in a measurement.
   */
  image(name: string, build: (path: string) => Promise<void>): Promise<string> {
    let ready = this.images.get(name);
    if (!ready) {
      const path = this.path(name);
      ready = build(path).then(async () => {
        await runTool(['sync']);
        return path;
      });
      this.images.set(name, ready);
    }
    return ready;
  }

  /** Remove the folder and everything in it. */
  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}
