/**
 * The member order of QEMU's QDict, so that our output is byte-for-byte
 * what qemu-storage-daemon writes and request members are checked in the
 * order QEMU checks them.
 *
 * A QDict is a hash table of 512 buckets; iteration walks the buckets in
 * ascending order and each bucket from its most recently inserted entry.
 * The bucket of a key comes from the TDB string hash of its UTF-8 bytes.
 */

const BUCKETS = 512;
const utf8 = new TextEncoder();

/** The QDict bucket of a key. */
export function qdictBucket(key: string): number {
  const bytes = utf8.encode(key);
  let value = Math.imul(0x238f13af, bytes.length) >>> 0;
  for (let i = 0; i < bytes.length; i++) value = (value + (bytes[i]! << ((i * 5) % 24))) >>> 0;
  return ((Math.imul(1103515243, value) + 12345) >>> 0) % BUCKETS;
}

/**
 * `keys` (in insertion order) in the order a QDict holding them iterates.
 * (JavaScript lists integer-like keys such as "0" first whatever their
 * insertion order, so for those the order within a bucket may differ.)
 */
export function qdictOrder(keys: readonly string[]): string[] {
  return keys
    .map((key, index) => ({ key, index, bucket: qdictBucket(key) }))
    .sort((a, b) => a.bucket - b.bucket || b.index - a.index)
    .map((entry) => entry.key);
}
