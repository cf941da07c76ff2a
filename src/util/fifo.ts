/**
 * A first-in first-out queue with O(1) take. Array.prototype.shift moves
 * every remaining element, which turns a long queue (one network chunk can
 * hold hundreds of thousands of tiny messages) into quadratic work.
 */
export class Fifo<T> {
  private items: T[] = [];
  private head = 0;

  /** Number of items waiting. */
  get length(): number {
    return this.items.length - this.head;
  }

  /** Append an item at the tail. */
  push(item: T): void {
    this.items.push(item);
  }

  /** Remove and return the item at the head, or undefined when empty. */
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head]!;
    this.items[this.head] = undefined as T;
    this.head++;
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  /** Drop every item. */
  clear(): void {
    this.items = [];
    this.head = 0;
  }
}
