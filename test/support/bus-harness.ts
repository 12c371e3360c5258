import { NatsBus } from "@sageserve/nats";
import { type Bus, type Clock, MemoryBroker, VirtualClock, WallClock } from "@sageserve/runtime";
import { type NatsFixture, startNats } from "./nats.js";

/**
 * What the conformance suite needs from an adapter pair: client connections, a
 * clock, and a way to let time pass (real sleep on NATS, event processing on
 * the virtual clock).
 */
export interface BusHarness {
  name: string;
  clock: Clock;
  connect(name: string): Promise<Bus>;
  /** Let `ms` of (real or virtual) time pass and deliveries happen (for checks that something does NOT arrive). */
  settle(ms: number): Promise<void>;
  /**
   * Let deliveries happen until `done()` holds, at most `maxMs` of (real or virtual) time; returns
   * `done()`. Waiting on the condition, not a fixed sleep, keeps the live runs from flaking on a loaded
   * machine while the virtual runs stay exact.
   */
  until(done: () => boolean, maxMs: number): Promise<boolean>;
  close(): Promise<void>;
}

export async function natsHarness(seed = 1): Promise<BusHarness> {
  const fx: NatsFixture = await startNats();
  const clock = new WallClock({ seed });
  const buses: Bus[] = [];
  return {
    name: `nats (${fx.kind})`,
    clock,
    async connect(name) {
      const b = await NatsBus.connect({ servers: fx.url, name });
      buses.push(b);
      return b;
    },
    async settle(ms) {
      for (const b of buses) if (!b.closed) await b.flush();
      await new Promise((r) => setTimeout(r, ms));
    },
    async until(done, maxMs) {
      for (const b of buses) if (!b.closed) await b.flush();
      const end = Date.now() + maxMs;
      while (!done() && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
      return done();
    },
    async close() {
      for (const b of buses) await b.close();
      clock.cancelAll();
      await fx.stop();
    },
  };
}

export async function memoryHarness(seed = 1): Promise<BusHarness> {
  const clock = new VirtualClock({ seed });
  const broker = new MemoryBroker(clock);
  return {
    name: "memory (virtual clock)",
    clock,
    async connect(name) {
      return broker.connect(name);
    },
    settle: (ms) => clock.advance(ms),
    async until(done, maxMs) {
      for (let waited = 0; !done() && waited < maxMs; waited += 5) await clock.advance(5);
      return done();
    },
    async close() {},
  };
}
