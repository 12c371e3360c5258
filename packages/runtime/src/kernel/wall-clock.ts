import { randomInt } from "node:crypto";
import nodeCron from "node-cron";
import { assertCron } from "./cron.js";
import type { Clock, Rng, Timer } from "./ports.js";
import { createRng } from "./rng.js";

/** The live clock: Date.now, real timers, node-cron for schedules. */
export class WallClock implements Clock {
  readonly kind = "wall" as const;
  readonly seed: number;
  private readonly timers = new Set<{ cancel(): void }>();

  constructor(opts: { seed?: number } = {}) {
    this.seed = opts.seed ?? randomInt(0, 2 ** 31 - 1);
  }

  now(): number {
    return Date.now();
  }

  setTimer(delayMs: number, fn: () => void): Timer {
    const h = setTimeout(
      () => {
        this.timers.delete(t);
        fn();
      },
      Math.max(0, delayMs),
    );
    const t = {
      cancel: () => {
        clearTimeout(h);
        this.timers.delete(t);
      },
    };
    this.timers.add(t);
    return { cancel: () => void t.cancel() };
  }

  every(intervalMs: number, fn: () => void): Timer {
    if (!(intervalMs > 0)) throw new RangeError(`every(): interval must be > 0, got ${intervalMs}`);
    const h = setInterval(fn, intervalMs);
    const t = {
      cancel: () => {
        clearInterval(h);
        this.timers.delete(t);
      },
    };
    this.timers.add(t);
    return { cancel: () => void t.cancel() };
  }

  schedule(cron: string, fn: (firedAtMs: number) => void, opts: { timezone?: string } = {}): Timer {
    assertCron(cron);
    const task = nodeCron.schedule(cron, (ctx) => fn(ctx.date.getTime()), {
      timezone: opts.timezone ?? "UTC",
      noOverlap: false,
    });
    const t = {
      cancel: () => {
        void task.destroy();
        this.timers.delete(t);
      },
    };
    this.timers.add(t);
    return { cancel: () => t.cancel() };
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.setTimer(ms, resolve));
  }

  rng(stream: string): Rng {
    return createRng(this.seed, stream);
  }

  /** Cancel every timer and schedule this clock started (process shutdown). */
  cancelAll(): void {
    for (const t of [...this.timers]) t.cancel();
  }
}
