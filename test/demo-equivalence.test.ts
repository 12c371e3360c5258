import { NatsBus } from "@sageserve/nats";
import {
  type ActorContext,
  type DemoLogEntry,
  DemoNodeActor,
  DemoRegionActor,
  MemoryBroker,
  VirtualClock,
  WallClock,
} from "@sageserve/runtime";
import { describe, expect, it } from "vitest";
import { startNats } from "./support/nats.js";

const BEATS = 16;
// A command must reach the node before its next beat: a generous interval keeps the live run causal on a busy machine.
const HEARTBEAT_MS = 250;
const SEED = 2024;

const perActor = (log: DemoLogEntry[], actor: string): string[] =>
  log.filter((e) => e.actor === actor).map((e) => `${e.event} ${e.detail}`);

async function runOnNats(): Promise<DemoLogEntry[]> {
  const fx = await startNats();
  const clock = new WallClock({ seed: SEED });
  const log: DemoLogEntry[] = [];
  const buses: NatsBus[] = [];
  const ctx = async (name: string): Promise<ActorContext> => {
    const bus = await NatsBus.connect({ servers: fx.url, name });
    buses.push(bus);
    return { bus, clock };
  };
  const region = new DemoRegionActor(await ctx("region"), { log, heartbeatMs: HEARTBEAT_MS });
  const node = new DemoNodeActor(await ctx("node"), { log, heartbeatMs: HEARTBEAT_MS, maxBeats: BEATS });
  await region.start();
  await node.start();
  for (const b of buses) await b.flush();
  await clock.sleep(HEARTBEAT_MS * (BEATS + 3));
  await node.stop();
  await region.stop();
  for (const b of buses) await b.close();
  clock.cancelAll();
  await fx.stop();
  return log;
}

async function runVirtual(): Promise<DemoLogEntry[]> {
  const clock = new VirtualClock({ seed: SEED });
  const broker = new MemoryBroker(clock);
  const log: DemoLogEntry[] = [];
  const region = new DemoRegionActor(
    { bus: broker.connect("region"), clock },
    { log, heartbeatMs: HEARTBEAT_MS },
  );
  const node = new DemoNodeActor(
    { bus: broker.connect("node"), clock },
    { log, heartbeatMs: HEARTBEAT_MS, maxBeats: BEATS },
  );
  await region.start();
  await node.start();
  await clock.advance(HEARTBEAT_MS * (BEATS + 3));
  return log;
}

describe("the same actor code on NATS and on virtual time", () => {
  it("produces the same message log for the demo node/region pair (modulo timestamps)", async () => {
    const [live, sim] = [await runOnNats(), await runVirtual()];
    for (const actor of ["node n1", "region"]) {
      expect(perActor(live, actor), actor).toEqual(perActor(sim, actor));
    }
    // Not vacuous: the pair exchanged heartbeats, load, commands, acks and transitions.
    const events = new Set(sim.map((e) => e.event));
    for (const e of ["beat", "heartbeat", "load", "command", "ack", "transition"])
      expect(events).toContain(e);
    expect(perActor(sim, "node n1").filter((l) => l.startsWith("beat"))).toHaveLength(BEATS);
  });
});
