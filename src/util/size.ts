/**
 * Byte sizes as people write them: parsing "10G", "512K", "1.5M" into a
 * byte count, and printing a byte count the way qemu-img does ("1.25 MiB").
 * Suffixes are binary (K = 1024) and case-insensitive, like qemu-img.
 */
import { LivebackupError } from '../errors.js';

const UNIT_SHIFT: Readonly<Record<string, number>> = { b: 0, k: 10, m: 20, g: 30, t: 40, p: 50, e: 60 };
const SIZE_PATTERN = /^(\d+)(?:\.(\d+))?\s*([bkmgtpe])?$/i;

/**
 * Parse a size: a non-negative decimal number with an optional unit suffix
 * B, K, M, G, T, P or E (powers of 1024; no suffix means bytes). A fraction
 * needs a suffix and is truncated to whole bytes ("1.5K" = 1536).
 * Throws INVALID_ARGUMENT naming `what` and the bad text, also when the
 * result exceeds Number.MAX_SAFE_INTEGER.
 */
export function parseSize(text: string, what = 'size'): number {
  const match = SIZE_PATTERN.exec(text.trim());
  if (!match) {
    throw new LivebackupError(
      'INVALID_ARGUMENT',
      `Invalid ${what} '${text}': expected a number of bytes with an optional suffix K, M, G, T, P or E (e.g. 512K, 10G)`,
    );
  }
  const [, whole, fraction, unit] = match;
  const shift = UNIT_SHIFT[(unit ?? 'b').toLowerCase()]!;
  if (fraction !== undefined && shift === 0) {
    throw new LivebackupError('INVALID_ARGUMENT', `Invalid ${what} '${text}': a fractional size needs a unit suffix (K, M, G, ...)`);
  }
  const multiplier = 2 ** shift;
  const wholeBytes = BigInt(whole!) * BigInt(multiplier);
  const fractionBytes = fraction === undefined ? 0n : (BigInt(fraction) * BigInt(multiplier)) / 10n ** BigInt(fraction.length);
  const bytes = wholeBytes + fractionBytes;
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new LivebackupError('INVALID_ARGUMENT', `Invalid ${what} '${text}': larger than ${Number.MAX_SAFE_INTEGER} bytes`);
  }
  return Number(bytes);
}

const UNIT_NAMES = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'] as const;

/**
 * A byte count for people, as qemu-img prints sizes: the largest binary
 * unit that keeps the number below 1000, with three significant digits and
 * no trailing zeroes ("0 B", "4 KiB", "1.25 MiB", "64 MiB").
 */
export function formatSize(bytes: number): string {
  let unit = 0;
  while (unit < UNIT_NAMES.length - 1 && bytes / 2 ** (10 * unit) >= 1000) unit++;
  let scaled = Number((bytes / 2 ** (10 * unit)).toPrecision(3));
  if (scaled >= 1000 && unit < UNIT_NAMES.length - 1) {
    unit++;
    scaled = Number((bytes / 2 ** (10 * unit)).toPrecision(3));
  }
  return `${scaled} ${UNIT_NAMES[unit]}`;
}
