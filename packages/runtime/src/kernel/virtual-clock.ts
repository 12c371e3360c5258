import { assertCron, nextCronTime } from "./cron.js";
import { EventHeap, type TimedEvent } from "./heap.js";
import type { Clock, Rng, Timer } from "./ports.js";
import { createRng } from "./rng.js";

export interface VirtualClockOptions {
  /** Virtual epoch at start (ms since 1970). Default 2025-01-06T00:00:00Z (a Monday). */
  startMs?: number;
  seed?: number;
}

/**
 * How to queue an event object on `clock`: the virtual clock's `postEvent` (the object is the heap
 * entry: no closure, no timer handle), else a timer that runs it. The simulator's hot paths (message
 * deliveries, engine wake-ups, trace arrivals) schedule this way.
 */
export function eventPoster(clock: Clock): (delayMs: number, ev: TimedEvent) => void {
  if (clock instanceof VirtualClock) return clock.postEvent.bind(clock);
  return (delayMs, ev) => {
    clock.setTimer(delayMs, () => ev.fn());
  };
}

/**
 * Discrete-event virtual clock: a priority queue of timed events, run in
 * (time, insertion) order with no real timers. After an event whose work
 * continues asynchronously (an async handler, a resolved request, a sleep) the
 * loop lets the microtask queue drain before advancing, so `await` inside actor
 * code resumes at the same virtual instant, deterministically.
 */
export class VirtualClock implements Clock {
  readonly kind = "virtual" as const;
  readonly seed: number;
  private t: number;
  private seq = 0;
  private readonly heap = new EventHeap();
  private asyncPending = false;
  private running = false;
  /** Events executed so far. */
  executed = 0;

  constructor(opts: VirtualClockOptions = {}) {
    this.t = opts.startMs ?? Date.UTC(2025, 0, 6);
    this.seed = opts.seed ?? 1;
  }

  now(): number {
    return this.t;
  }

  /**
   * Schedule fn at absolute virtual time `atMs` (not before now). Virtual time moves in
   * whole milliseconds, like the wall clock's Date.now(): fractional times round up.
   */
  at(atMs: number, fn: () => unknown): Timer {
    const ev: TimedEvent = { at: Math.max(Math.ceil(atMs), this.t), seq: this.seq++, fn, cancelled: false };
    this.heap.push(ev);
    return {
      cancel: () => {
        ev.cancelled = true;
      },
    };
  }

  setTimer(delayMs: number, fn: () => void): Timer {
    return this.at(this.t + Math.max(0, delayMs), fn);
  }

  /** Fire-and-forget event after `delayMs` (no cancel handle: the bus's hot path). */
  post(delayMs: number, fn: () => unknown): void {
    this.heap.push({ at: this.t + Math.max(0, Math.ceil(delayMs)), seq: this.seq++, fn, cancelled: false });
  }

  /** Queue an event object as it is, `delayMs` from now (its `at` and `seq` are set here). */
  postEvent(delayMs: number, ev: TimedEvent): void {
    ev.at = this.t + Math.max(0, Math.ceil(delayMs));
    ev.seq = this.seq++;
    this.heap.push(ev);
  }

  /**
   * Reserve `n` consecutive sequence numbers (tie-break order at equal times) for events to be queued
   * later with {@link postEventAt}: a chain of events (a trace's arrivals) then keeps only its next event
   * in the queue yet runs in exactly the order it would have run had all been queued now.
   */
  reserveSeq(n: number): number {
    const base = this.seq;
    this.seq += n;
    return base;
  }

  /** Queue an event object at absolute time `atMs` (not before now) with a reserved sequence number. */
  postEventAt(ev: TimedEvent, atMs: number, seq: number): void {
    ev.at = Math.max(atMs, this.t);
    ev.seq = seq;
    this.heap.push(ev);
  }

  every(intervalMs: number, fn: () => void): Timer {
    if (!(intervalMs > 0)) throw new RangeError(`every(): interval must be > 0, got ${intervalMs}`);
    // One event object, re-queued after each tick: a periodic timer allocates nothing per tick.
    intervalMs = Math.ceil(intervalMs);
    const ev: TimedEvent = {
      at: this.t + intervalMs,
      seq: this.seq++,
      cancelled: false,
      fn: () => {
        ev.at = this.t + intervalMs;
        ev.seq = this.seq++;
        this.heap.push(ev);
        fn();
      },
    };
    this.heap.push(ev);
    return {
      cancel: () => {
        ev.cancelled = true;
      },
    };
  }

  schedule(cron: string, fn: (firedAtMs: number) => void, opts: { timezone?: string } = {}): Timer {
    assertCron(cron);
    const tz = opts.timezone ?? "UTC";
    let cancelled = false;
    let current: Timer;
    const arm = (): void => {
      const next = nextCronTime(cron, this.t, tz);
      current = this.at(next, () => {
        if (cancelled) return;
        arm();
        fn(next);
      });
    };
    arm();
    return {
      cancel: () => {
        cancelled = true;
        current.cancel();
      },
    };
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.setTimer(ms, () => {
        this.markAsync();
        resolve();
      });
    });
  }

  rng(stream: string): Rng {
    return createRng(this.seed, stream);
  }

  /** Tell the loop that a promise continuation is pending at the current instant. */
  markAsync(): void {
    this.asyncPending = true;
  }

  /** Events still queued (cancelled ones included until popped). */
  get pending(): number {
    return this.heap.size;
  }

  /** Time of the next live event, if any. */
  nextEventAt(): number | undefined {
    this.dropCancelled();
    return this.heap.peek()?.at;
  }

  /** Run events up to and including `untilMs`, then set the clock to `untilMs`. */
  async runUntil(untilMs: number): Promise<void> {
    untilMs = Math.floor(untilMs);
    if (this.running) throw new Error("VirtualClock.runUntil is not re-entrant");
    this.running = true;
    try {
      await this.settle();
      for (;;) {
        const ev = this.heap.peek();
        if (ev === undefined || ev.at > untilMs) break;
        this.heap.pop();
        if (ev.cancelled) continue;
        this.t = ev.at;
        this.executed++;
        const r = ev.fn();
        if (r !== undefined && typeof (r as Promise<unknown>).then === "function") this.asyncPending = true;
        if (this.asyncPending) await this.settle();
      }
      if (untilMs > this.t) this.t = untilMs;
      await this.settle();
    } finally {
      this.running = false;
    }
  }

  advance(ms: number): Promise<void> {
    return this.runUntil(this.t + ms);
  }

  /** Run until no events remain (or the limit, as a guard against endless timers). */
  async runAll(limitMs = Number.POSITIVE_INFINITY): Promise<void> {
    const next = this.nextEventAt();
    if (next === undefined) return;
    await this.runUntil(Math.min(limitMs, Number.MAX_SAFE_INTEGER));
  }

  private async settle(): Promise<void> {
    // setImmediate runs after the whole microtask queue has drained; repeat while
    // the drained continuations themselves scheduled more async work.
    for (let i = 0; i < 1000; i++) {
      this.asyncPending = false;
      await new Promise<void>((r) => setImmediate(r));
      if (!this.asyncPending) return;
    }
  }

  private dropCancelled(): void {
    while (this.heap.peek()?.cancelled) this.heap.pop();
  }
}
