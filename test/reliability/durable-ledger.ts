/**
 * DurableLedger: which bytes a crash must not lose. Writes are numbered as
 * they are sent. A write is durable once acknowledged with FUA, or once a
 * FLUSH sent after its acknowledgement is acknowledged. After a crash a
 * byte must hold the value of the last durable write covering it (or the
 * initial content), or the value of any later write covering it (sent,
 * perhaps not acknowledged: it may have landed). A trim is a write of
 * unknown data: its bytes may read as anything until a later write.
 */
interface SentWrite {
  readonly offset: number;
  readonly length: number;
  /** The bytes written; null for a trim (any content allowed). */
  readonly data: Uint8Array | null;
  acknowledged: boolean;
  durable: boolean;
}

export class DurableLedger {
  private readonly writes: SentWrite[] = [];
  private readonly initial: Uint8Array;

  /** `initial`: the disk content, all of it durable, before any write. */
  constructor(initial: Uint8Array) {
    this.initial = initial;
  }

  /** A write (data) or trim (null, with `length`) is about to be sent; returns its id. */
  sent(offset: number, data: Uint8Array | null, length = data?.length ?? 0): number {
    this.writes.push({ offset, length, data, acknowledged: false, durable: false });
    return this.writes.length - 1;
  }

  /** The write was acknowledged (with FUA: it is durable at once). */
  acknowledged(id: number, fua: boolean): void {
    const write = this.writes[id]!;
    write.acknowledged = true;
    if (fua) write.durable = true;
  }

  /** A FLUSH is about to be sent: returns what it will cover (the writes acknowledged so far). */
  flushSent(): number[] {
    const covered: number[] = [];
    this.writes.forEach((write, id) => {
      if (write.acknowledged && !write.durable) covered.push(id);
    });
    return covered;
  }

  /** The FLUSH acknowledged: the writes it covers are durable. */
  flushAcknowledged(covered: readonly number[]): void {
    for (const id of covered) this.writes[id]!.durable = true;
  }

  /** Number of durable writes. */
  get durableCount(): number {
    return this.writes.filter((write) => write.durable).length;
  }

  /** The first offset whose byte no allowed write explains, or -1. */
  firstLostByte(actual: Uint8Array): number {
    const lastDurable = new Int32Array(this.initial.length).fill(-1);
    this.writes.forEach((write, id) => {
      if (write.durable) lastDurable.fill(id, write.offset, write.offset + write.length);
    });
    for (let i = 0; i < actual.length; i++) {
      const id = lastDurable[i]!;
      const write = id < 0 ? undefined : this.writes[id]!;
      if (write && write.data === null) continue;
      const expected = write ? write.data![i - write.offset] : this.initial[i];
      if (actual[i] === expected) continue;
      if (!this.laterWriteExplains(i, id, actual[i]!)) return i;
    }
    return -1;
  }

  /** A human description of what was expected at `offset`. */
  describe(offset: number, actual: number): string {
    const covering = this.writes
      .map((write, id) => ({ write, id }))
      .filter(({ write }) => write.offset <= offset && offset < write.offset + write.length)
      .map(({ write, id }) => `#${id}${write.durable ? ' durable' : write.acknowledged ? ' acked' : ' sent'}=${write.data ? write.data[offset - write.offset] : 'trim'}`);
    return `read ${actual}, initial ${this.initial[offset]}, writes ${covering.join(', ') || 'none'}`;
  }

  private laterWriteExplains(offset: number, after: number, value: number): boolean {
    for (let id = after + 1; id < this.writes.length; id++) {
      const write = this.writes[id]!;
      if (write.offset <= offset && offset < write.offset + write.length && (write.data === null || write.data[offset - write.offset] === value)) return true;
    }
    return false;
  }
}
