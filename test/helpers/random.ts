/** A small seeded PRNG (xorshift128+ on 32-bit halves) so randomized tests replay from a seed. */
export class SeededRandom {
  private state0: number;
  private state1: number;

  constructor(readonly seed: number) {
    this.state0 = (seed ^ 0x9e3779b9) >>> 0 || 1;
    this.state1 = (Math.imul(seed, 0x85ebca6b) ^ 0xc2b2ae35) >>> 0 || 2;
  }

  /** A uniform 32-bit unsigned integer. */
  nextUint32(): number {
    let s1 = this.state0;
    const s0 = this.state1;
    this.state0 = s0;
    s1 ^= s1 << 23;
    s1 ^= s1 >>> 17;
    s1 ^= s0;
    s1 ^= s0 >>> 26;
    this.state1 = s1 >>> 0;
    return (this.state0 + this.state1) >>> 0;
  }

  /** A uniform integer in [min, max] (inclusive). */
  int(min: number, max: number): number {
    const span = max - min + 1;
    if (span <= 0x100000000) return min + (this.nextUint32() % span);
    return min + Math.floor((this.nextUint32() * 0x100000000 + this.nextUint32()) % span);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.nextUint32() / 0x100000000 < p;
  }

  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)]!;
  }

  /** Fill buf with pseudo-random bytes. */
  fill(buf: Uint8Array): Uint8Array {
    let i = 0;
    for (; i + 4 <= buf.length; i += 4) {
      const value = this.nextUint32();
      buf[i] = value & 0xff;
      buf[i + 1] = (value >>> 8) & 0xff;
      buf[i + 2] = (value >>> 16) & 0xff;
      buf[i + 3] = value >>> 24;
    }
    for (; i < buf.length; i++) buf[i] = this.nextUint32() & 0xff;
    return buf;
  }

  /** A new buffer of n pseudo-random bytes. */
  bytes(n: number): Uint8Array {
    return this.fill(new Uint8Array(n));
  }
}
