/**
 * A FIFO queue with O(1) shift and unshift (a head index into an array, compacted now and then): the
 * Instance's waiting queues, where preempted requests go back to the head.
 */
export class Deque<T> {
  private items: T[] = [];
  private head = 0;
  get length(): number {
    return this.items.length - this.head;
  }
  peek(): T | undefined {
    return this.items[this.head];
  }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const x = this.items[this.head++];
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return x;
  }
  push(x: T): void {
    this.items.push(x);
  }
  unshift(x: T): void {
    if (this.head > 0) this.items[--this.head] = x;
    else this.items.unshift(x);
  }
  remove(x: T): boolean {
    const i = this.items.indexOf(x, this.head);
    if (i < 0) return false;
    this.items.splice(i, 1);
    return true;
  }
  /** The first of the first `limit` items that satisfies `pred`. */
  find(pred: (x: T) => boolean, limit: number): T | undefined {
    const end = Math.min(this.items.length, this.head + limit);
    for (let i = this.head; i < end; i++) if (pred(this.items[i]!)) return this.items[i];
    return undefined;
  }
  drain(): T[] {
    const out = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    return out;
  }
  toArray(): T[] {
    return this.items.slice(this.head);
  }
}
