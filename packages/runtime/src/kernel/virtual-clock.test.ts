import { Heartbeat, SageError } from "@sageserve/protocol";
import { describe, expect, it } from "vitest";
import { Actor } from "./actor.js";
import type { ActorContext } from "./actor-context.js";
import { MemoryBroker } from "./memory-broker.js";
import { VirtualClock } from "./virtual-clock.js";

describe("VirtualClock", () => {
  it("runs events in time order, FIFO at equal times, without real timers", async () => {
    const clock = new VirtualClock({ startMs: 0 });
    const order: string[] = [];
    clock.setTimer(20, () => order.push("b@20"));
    clock.setTimer(10, () => order.push("a@10"));
    clock.setTimer(20, () => order.push("c@20"));
    const cancelled = clock.setTimer(15, () => order.push("never"));
    cancelled.cancel();
    await clock.runUntil(100);
    expect(order).toEqual(["a@10", "b@20", "c@20"]);
    expect(clock.now()).toBe(100);
  });

  it("resumes awaiting code at the same virtual instant", async () => {
    const clock = new VirtualClock({ startMs: 0 });
    const seen: number[] = [];
    clock.setTimer(5, async () => {
      seen.push(clock.now());
      await clock.sleep(30);
      seen.push(clock.now());
      await Promise.resolve();
      await clock.sleep(0);
      seen.push(clock.now());
    });
    await clock.runUntil(1000);
    expect(seen).toEqual([5, 35, 35]);
  });

  it("fires an hourly cron exactly on the hour in UTC, 24 times a day", async () => {
    const clock = new VirtualClock({ startMs: Date.UTC(2025, 0, 6, 0, 30) });
    const fired: string[] = [];
    clock.schedule("0 * * * *", (at) => fired.push(new Date(at).toISOString().slice(11, 16)));
    await clock.advance(24 * 3600_000);
    expect(fired).toHaveLength(24);
    expect(fired[0]).toBe("01:00");
    expect(fired.at(-1)).toBe("00:00");
  });

  it("respects a cron timezone", async () => {
    const clock = new VirtualClock({ startMs: Date.UTC(2025, 0, 6, 0, 0) });
    const fired: number[] = [];
    clock.schedule("0 9 * * *", (at) => fired.push(at), { timezone: "America/New_York" });
    await clock.advance(24 * 3600_000);
    expect(fired).toEqual([Date.UTC(2025, 0, 6, 14, 0)]);
  });
});

/** An idle fleet: heartbeats every 5 s, a per-minute check, an hourly plan tick. */
class IdleNode extends Actor {
  beats = 0;
  constructor(ctx: ActorContext, id: string) {
    super(ctx, { role: "idle-node", id });
  }
  protected setup(): void {
    this.every(5000, () => {
      this.beats++;
      this.publish(
        Heartbeat,
        { region: "r1", node: this.identity.id },
        { ...Heartbeat.sample(), nodeId: this.identity.id, seq: this.beats, atMs: this.clock.now() },
      );
    });
  }
}

class IdleWatcher extends Actor {
  heard = 0;
  minutes = 0;
  hours = 0;
  constructor(ctx: ActorContext) {
    super(ctx, { role: "idle-watcher", id: "watcher" });
  }
  protected setup(): void {
    this.on(Heartbeat, { region: "r1" }, () => {
      this.heard++;
    });
    this.every(60_000, () => {
      this.minutes++;
    });
    this.cron("0 * * * *", () => {
      this.hours++;
    });
  }
}

describe("a simulated day of idle actors", () => {
  it("delivers every heartbeat and tick of 24 virtual hours, deterministically", async () => {
    const run = async () => {
      const clock = new VirtualClock({ seed: 3 });
      const broker = new MemoryBroker(clock, { codec: "none" });
      const ctx = (n: string): ActorContext => ({ bus: broker.connect(n), clock });
      const nodes = [0, 1, 2].map((i) => new IdleNode(ctx(`n${i}`), `n${i}`));
      const watcher = new IdleWatcher(ctx("w"));
      for (const a of [...nodes, watcher]) await a.start();
      await clock.advance(24 * 3600_000);
      return { heard: watcher.heard, minutes: watcher.minutes, hours: watcher.hours, events: clock.executed };
    };
    const a = await run();
    expect(a.heard).toBe(3 * 17_280);
    expect(a.minutes).toBe(1440);
    expect(a.hours).toBe(24);
    expect(await run()).toEqual(a);
  });

  it("rejects a timer callback failure without stopping the clock", async () => {
    const clock = new VirtualClock();
    const broker = new MemoryBroker(clock);
    class Flaky extends Actor {
      ticks = 0;
      protected setup(): void {
        this.every(1000, () => {
          this.ticks++;
          if (this.ticks === 2) throw new SageError("HANDLER", "boom");
        });
      }
    }
    const f = new Flaky({ bus: broker.connect(), clock }, { role: "flaky", id: "f" });
    await f.start();
    await clock.advance(5000);
    expect(f.ticks).toBe(5);
    expect(f.stats().handlerErrors).toBe(1);
  });
});
