/**
 * Which unexpected member QEMU names when an object has several: QEMU puts
 * the object's keys (in QDict order) into a GLib string hash table, removes
 * each member as it is visited, and reports the first key left when
 * iterating the table. This is a model of that table (open addressing with
 * quadratic probing, prime modulus, tombstones, in-place resizing), used
 * only on that error path so that our error texts match
 * qemu-storage-daemon's exactly.
 */

const MIN_SHIFT = 3;
/** The prime modulus for each table size 1 << shift. */
const PRIME_MOD = [1, 2, 3, 7, 13, 31, 61, 127, 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071, 262139, 524287, 1048573];
const UNUSED = 0;
const TOMBSTONE = 1;
const utf8 = new TextEncoder();

/** GLib's string hash (djb2 over the bytes as signed chars), never 0 or 1. */
function stringHash(key: string): number {
  let hash = 5381;
  for (const byte of utf8.encode(key)) hash = (Math.imul(hash, 33) + (byte >= 0x80 ? byte - 0x100 : byte)) >>> 0;
  return hash < 2 ? 2 : hash;
}

class StringSetModel {
  private size = 0;
  private mod = 0;
  private mask = 0;
  private hashes: number[] = [];
  private keys: Array<string | undefined> = [];
  private nodes = 0;
  private occupied = 0;

  constructor() {
    this.setShift(MIN_SHIFT);
    this.hashes = new Array<number>(this.size).fill(UNUSED);
    this.keys = new Array<string | undefined>(this.size).fill(undefined);
  }

  insert(key: string): void {
    const { index, hash, found } = this.lookup(key);
    if (found) return;
    const previous = this.hashes[index]!;
    this.hashes[index] = hash;
    this.keys[index] = key;
    this.nodes++;
    if (previous === UNUSED) {
      this.occupied++;
      this.maybeResize();
    }
  }

  remove(key: string): void {
    const { index, found } = this.lookup(key);
    if (!found) return;
    this.hashes[index] = TOMBSTONE;
    this.keys[index] = undefined;
    this.nodes--;
    this.maybeResize();
  }

  /** The key iteration yields first. */
  first(): string | undefined {
    for (let i = 0; i < this.size; i++) if (this.hashes[i]! >= 2) return this.keys[i];
    return undefined;
  }

  private setShift(shift: number): void {
    this.size = 1 << shift;
    this.mod = PRIME_MOD[shift]!;
    this.mask = this.size - 1;
  }

  private bucketOf(hash: number): number {
    return (Math.imul(hash, 11) >>> 0) % this.mod;
  }

  private lookup(key: string): { index: number; hash: number; found: boolean } {
    const hash = stringHash(key);
    let index = this.bucketOf(hash);
    let firstTombstone = -1;
    for (let step = 1; this.hashes[index] !== UNUSED; step++) {
      if (this.hashes[index] === hash && this.keys[index] === key) return { index, hash, found: true };
      if (this.hashes[index] === TOMBSTONE && firstTombstone < 0) firstTombstone = index;
      index = (index + step) & this.mask;
    }
    return { index: firstTombstone >= 0 ? firstTombstone : index, hash, found: false };
  }

  private maybeResize(): void {
    const tooSparse = this.size > this.nodes * 4 && this.size > 1 << MIN_SHIFT;
    const tooFull = this.size <= this.occupied + Math.floor(this.occupied / 16);
    if (tooSparse || tooFull) this.resize();
  }

  /** Rehash in place, the way GLib does: evicting and relocating entries in slot order. */
  private resize(): void {
    const oldSize = this.size;
    let wanted = Math.trunc(this.nodes * 1.333);
    let shift = 0;
    for (; wanted > 0; shift++) wanted >>= 1;
    this.setShift(Math.max(shift, MIN_SHIFT));
    for (let i = oldSize; i < this.size; i++) {
      this.hashes[i] = UNUSED;
      this.keys[i] = undefined;
    }
    const relocated = new Set<number>();
    for (let i = 0; i < oldSize; i++) {
      let hash = this.hashes[i]!;
      if (hash < 2) {
        this.hashes[i] = UNUSED;
        continue;
      }
      if (relocated.has(i)) continue;
      this.hashes[i] = UNUSED;
      let key = this.keys[i];
      this.keys[i] = undefined;
      for (;;) {
        let index = this.bucketOf(hash);
        for (let step = 1; relocated.has(index); step++) index = (index + step) & this.mask;
        relocated.add(index);
        const replaced = this.hashes[index]!;
        this.hashes[index] = hash;
        if (replaced < 2) {
          this.keys[index] = key;
          break;
        }
        hash = replaced;
        [key, this.keys[index]] = [this.keys[index], key];
      }
    }
    this.hashes.length = this.size;
    this.keys.length = this.size;
    this.occupied = this.nodes;
  }
}

/**
 * The key QEMU reports as unexpected: `keys` in the order they enter the
 * table (QDict order), `visited` the members removed from it, in visit
 * order. Undefined when nothing is left.
 */
export function firstUnvisitedKey(keys: readonly string[], visited: readonly string[]): string | undefined {
  const table = new StringSetModel();
  for (const key of keys) table.insert(key);
  for (const key of visited) table.remove(key);
  return table.first();
}
