/** The versions the QMP greeting and `query-version` report. */
import { readFileSync } from 'node:fs';

/** The QEMU release whose QMP interface livebackup follows. */
export const QEMU_COMPATIBLE_VERSION = { major: 7, minor: 2, micro: 0 } as const;

let productVersion: string | undefined;

/** livebackup's own version, from package.json. */
export function livebackupVersion(): string {
  if (productVersion === undefined) {
    try {
      const manifest = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
      productVersion = typeof manifest.version === 'string' ? manifest.version : '0.0.0';
    } catch {
      productVersion = '0.0.0';
    }
  }
  return productVersion;
}

/** The VersionInfo object of QMP: `{qemu: {micro, minor, major}, package}`. */
export function versionInfo(): { qemu: { major: number; minor: number; micro: number }; package: string } {
  // Members in schema order, as QEMU's output visitor inserts them (this decides the QDict order on output).
  const { major, minor, micro } = QEMU_COMPATIBLE_VERSION;
  return { qemu: { major, minor, micro }, package: `livebackup ${livebackupVersion()}` };
}
