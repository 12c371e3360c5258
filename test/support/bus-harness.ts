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
  /** Let `ms` of (real or virtual) time pass and deliveries happen. */
  settle(ms: number): Promise<void>;
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
    async close() {},
  };
}
