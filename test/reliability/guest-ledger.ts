/**
 * GuestLedger: what a guest may expect to read back from its disk. Every
 * resolved write is recorded byte for byte; a write that threw leaves its
 * range unknown (it may have landed in part). `verify` compares a read of the
 * whole disk with every byte still known.
 */
export class GuestLedger {
  /** Expected content, meaningful where `known` is 1. */
  private readonly expected: Uint8Array;
  private readonly known: Uint8Array;

  /** Start from `initial`, the disk content every byte of which is known. */
  constructor(initial: Uint8Array) {
    this.expected = Uint8Array.from(initial);
    this.known = new Uint8Array(initial.length).fill(1);
  }

  /** A write of `data` at `offset` resolved. */
  wrote(offset: number, data: Uint8Array): void {
    this.expected.set(data, offset);
    this.known.fill(1, offset, offset + data.length);
  }

  /** A write-zeroes of `bytes` at `offset` resolved. */
  zeroed(offset: number, bytes: number): void {
    this.expected.fill(0, offset, offset + bytes);
    this.known.fill(1, offset, offset + bytes);
  }

  /** A write of any kind over [offset, offset+bytes) threw: the range is unknown until rewritten. */
  failed(offset: number, bytes: number): void {
    this.known.fill(0, offset, offset + bytes);
  }

  /** The first offset where `actual` differs from a known expected byte, or -1. */
  firstLostByte(actual: Uint8Array): number {
    const chunk = 64 * 1024;
    for (let start = 0; start < this.expected.length; start += chunk) {
      const end = Math.min(this.expected.length, start + chunk);
      if (Buffer.compare(actual.subarray(start, end), this.expected.subarray(start, end)) === 0) continue;
      for (let i = start; i < end; i++) {
        if (this.known[i] === 1 && actual[i] !== this.expected[i]) return i;
      }
    }
    return -1;
  }
}
