/**
 * Binary min-heap of timed events ordered by (time, seq). Hand-written rather
 * than taken from a library because it is the simulator's innermost loop and the
 * seq tie-break (FIFO at equal times) is what makes runs deterministic.
 */
export interface TimedEvent {
  at: number;
  seq: number;
  fn: () => unknown;
  cancelled: boolean;
}

/**
 * Base of an event object queued as it is (`VirtualClock.postEvent`): a subclass carries its own data
 * and `fn`, so scheduling it allocates nothing else (no closure, no timer handle).
 */
export abstract class ClockEvent implements TimedEvent {
  at = 0;
  seq = 0;
  cancelled = false;
  abstract fn(): unknown;
}

export class EventHeap {
  private items: TimedEvent[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): TimedEvent | undefined {
    return this.items[0];
  }

  push(ev: TimedEvent): void {
    const a = this.items;
    a.push(ev);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = a[p]!;
      if (before(parent, ev)) break;
      a[i] = parent;
      i = p;
    }
    a[i] = ev;
  }

  pop(): TimedEvent | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      let i = 0;
      const n = a.length;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && before(a[r]!, a[l]!) ? r : l;
        if (before(last, a[c]!)) break;
        a[i] = a[c]!;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}

function before(x: TimedEvent, y: TimedEvent): boolean {
  return x.at < y.at || (x.at === y.at && x.seq < y.seq);
}

/**
 * Binary min-heap of values ordered by (key, seq): FIFO among equal keys, so the order is deterministic.
 * (The NIW queue by deadline, trace lines sorted back within a window.)
 */
export class KeyedHeap<T> {
  private readonly a: { value: T; key: number; seq: number }[] = [];
  private nextSeq = 0;

  get size(): number {
    return this.a.length;
  }

  /** Every value, in heap (not sorted) order. */
  *values(): IterableIterator<T> {
    for (const x of this.a) yield x.value;
  }

  peek(): T | undefined {
    return this.a[0]?.value;
  }

  /** `seq` breaks ties between equal keys (default: insertion order). */
  push(value: T, key: number, seq = this.nextSeq++): void {
    const a = this.a;
    const x = { value, key, seq };
    let i = a.push(x) - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!keyedBefore(x, a[p]!)) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = x;
  }

  pop(): T | undefined {
    const a = this.a;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const c = l + 1 < a.length && keyedBefore(a[l + 1]!, a[l]!) ? l + 1 : l;
        if (!keyedBefore(a[c]!, last)) break;
        a[i] = a[c]!;
        i = c;
      }
      a[i] = last;
    }
    return top?.value;
  }
}

function keyedBefore(x: { key: number; seq: number }, y: { key: number; seq: number }): boolean {
  return x.key < y.key || (x.key === y.key && x.seq < y.seq);
}
