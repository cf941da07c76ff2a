/**
 * A seeded byte-level mutator for fuzzing: from a valid seed it makes
 * hostile variants by bit flips, bytes and words set to interesting values
 * (0, -1, sign boundaries, powers of two), length-like fields nudged by
 * small amounts or set huge, splices with another seed, inserted and
 * deleted runs, and truncation. A few mutations are stacked per case.
 */
import { SeededRandom } from '../../helpers/random.js';

const INTERESTING_8 = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x10, 0x20, 0x40];
const INTERESTING_32 = [0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0x10000, 0x200, 0x1000, 0xfffffffe, 64, 16];

/** What a mutation may be told about its input, to aim at fields. */
export interface MutationHints {
  /** Offsets of big-endian length or offset fields worth tweaking (4 or 8 bytes wide). */
  readonly fields?: readonly { offset: number; width: 4 | 8 }[];
  /** Largest output length (default: 2x the input + 64 KiB). */
  readonly maxLength?: number;
}

export class Mutator {
  constructor(private readonly random: SeededRandom) {}

  /** A mutated copy of `input` (1 to 4 stacked mutations); `others` feed splices. */
  mutate(input: Uint8Array, others: readonly Uint8Array[] = [], hints: MutationHints = {}): Uint8Array {
    let data: Uint8Array = Uint8Array.from(input);
    const count = this.random.int(1, 4);
    for (let i = 0; i < count; i++) data = this.once(data, others, hints);
    const maxLength = hints.maxLength ?? input.length * 2 + 65536;
    return data.length > maxLength ? data.subarray(0, maxLength) : data;
  }

  private once(data: Uint8Array, others: readonly Uint8Array[], hints: MutationHints): Uint8Array {
    const random = this.random;
    if (data.length === 0) return random.bytes(random.int(1, 64));
    const at = random.int(0, data.length - 1);
    switch (random.int(0, 9)) {
      case 0: // bit flip
        data[at]! ^= 1 << random.int(0, 7);
        return data;
      case 1: // interesting byte
        data[at] = random.pick(INTERESTING_8);
        return data;
      case 2: // interesting 32-bit word, either endianness
        return this.setWord(data, at, random.pick(INTERESTING_32), random.chance(0.8));
      case 3: // length field nudged or set huge
        return this.tweakField(data, hints);
      case 4: { // random byte run overwritten
        const length = Math.min(data.length - at, random.int(1, 32));
        data.set(random.bytes(length), at);
        return data;
      }
      case 5: { // splice with another input
        const other = others.length > 0 ? random.pick(others) : data;
        const from = random.int(0, Math.max(0, other.length - 1));
        const tail = other.subarray(from, from + random.int(1, 4096));
        const out = new Uint8Array(at + tail.length);
        out.set(data.subarray(0, at));
        out.set(tail, at);
        return out;
      }
      case 6: { // insert a run (random or repeated byte)
        const length = random.int(1, 256);
        const run = random.chance(0.5) ? random.bytes(length) : new Uint8Array(length).fill(random.pick(INTERESTING_8));
        const out = new Uint8Array(data.length + length);
        out.set(data.subarray(0, at));
        out.set(run, at);
        out.set(data.subarray(at), at + length);
        return out;
      }
      case 7: { // delete a run
        const length = Math.min(data.length - at, random.int(1, 256));
        const out = new Uint8Array(data.length - length);
        out.set(data.subarray(0, at));
        out.set(data.subarray(at + length), at);
        return out;
      }
      case 8: // truncate
        return data.subarray(0, at);
      default: { // copy a block within the input
        const length = Math.min(data.length - at, random.int(1, 64));
        const to = random.int(0, data.length - length);
        data.copyWithin(to, at, at + length);
        return data;
      }
    }
  }

  private setWord(data: Uint8Array, at: number, value: number, bigEndian: boolean): Uint8Array {
    if (at + 4 > data.length) return data;
    new DataView(data.buffer, data.byteOffset, data.length).setUint32(at, value >>> 0, !bigEndian);
    return data;
  }

  private tweakField(data: Uint8Array, hints: MutationHints): Uint8Array {
    const random = this.random;
    const fields = (hints.fields ?? []).filter((field) => field.offset + field.width <= data.length);
    const field = fields.length > 0 ? random.pick(fields) : { offset: random.int(0, Math.max(0, data.length - 4)) & ~3, width: 4 as const };
    if (field.offset + field.width > data.length) return data;
    const view = new DataView(data.buffer, data.byteOffset, data.length);
    if (field.width === 8) {
      const old = view.getBigUint64(field.offset);
      const choices = [old + 1n, old - 1n, old + 512n, old * 2n, 0n, 1n << 62n, 0xffffffffffffffffn, 1n << 53n, old + BigInt(random.int(1, 1 << 20))];
      view.setBigUint64(field.offset, BigInt.asUintN(64, random.pick(choices)));
    } else {
      const old = view.getUint32(field.offset);
      const choices = [old + 1, old - 1, old + 8, old * 2, 0, 0xffffffff, 0x7fffffff, old + random.int(1, 1 << 16)];
      view.setUint32(field.offset, random.pick(choices) >>> 0);
    }
    return data;
  }
}
