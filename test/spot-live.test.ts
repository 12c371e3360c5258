import { NatsBus } from "@sageserve/nats";
import { NodeAgentActor } from "@sageserve/node-agent";
import { envelope, InferenceRequest, InstanceTransition, type Payload } from "@sageserve/protocol";
import { RegionAgentActor } from "@sageserve/region-agent";
import { freePort, WallClock } from "@sageserve/runtime";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type NatsFixture, startNats } from "./support/nats.js";

const bin = new URL("../packages/cli/bin/sageserve.js", import.meta.url).pathname;

/**
 * A region agent steering node agents with real engine-emulator processes over NATS: an idle endpoint
 * lends a VM to the spot pool, load brings it back (reclaim), and another model's endpoint takes a spot
 * VM by swapping its model (warm migration) — in that order.
 */
describe("spot pool and warm migration, live", () => {
  let fx: NatsFixture;
  const clock = new WallClock({ seed: 5 });
  let buses: NatsBus[] = [];
  let actors: { stop(): Promise<void> }[] = [];
  let transitions: Payload<typeof InstanceTransition>[] = [];

  const ctx = async (name: string) => {
    const bus = await NatsBus.connect({ servers: fx.url, name });
    buses.push(bus);
    return { bus, clock };
  };
  const node = async (id: string, model: string) => {
    const port = await freePort();
    const n = new NodeAgentActor(await ctx(id), {
      nodeId: id,
      region: "westus",
      gpuType: "h100",
      engine: {
        url: `http://127.0.0.1:${port}`,
        kind: "vllm",
        model,
        command: [
          process.execPath,
          bin,
          "emulator",
          "--model",
          "{model}",
          "--port",
          "{port}",
          "--max-model-len",
          "200000",
        ],
      },
      loadReportMs: 150,
      heartbeatMs: 500,
      drainTimeoutMs: 500, // the test's long requests are cut at the end
    });
    actors.push(n);
    await n.start();
    return n;
  };
  const agent = async (models: string[]) => {
    const a = new RegionAgentActor(await ctx("agent"), {
      region: "westus",
      models,
      mode: "unified",
      gpuTypes: ["h100"],
      scalingIntervalMs: 250,
      reactive: { scaleDownCooldownMs: 300 },
      cooldowns: { reclaimMs: 500, swapMs: 500, bootMs: 500 },
    });
    actors.unshift(a);
    await a.start();
    return a;
  };
  const until = async (cond: () => boolean, ms = 15_000) => {
    for (let t = 0; t < ms && !cond(); t += 100) await clock.sleep(100);
    return cond();
  };

  beforeEach(async () => {
    fx = await startNats();
    buses = [];
    actors = [];
    transitions = [];
    const watch = await ctx("watch");
    watch.bus.subscribe(InstanceTransition.subject.pattern({ region: "westus" }), (m) => {
      const d = m.data();
      if (d.ok) transitions.push(d.value as Payload<typeof InstanceTransition>);
    });
  });
  afterEach(async () => {
    for (const a of actors) await a.stop();
    for (const b of buses) await b.close();
    await fx.stop();
  });

  it("lends an idle endpoint's VM to the spot pool, and reclaims it when load returns", async () => {
    const nodes = [
      await node("a1", "llama2-70b"),
      await node("a2", "llama2-70b"),
      await node("a3", "llama2-70b"),
    ];
    expect(await until(() => nodes.every((n) => n.currentState === "serving"))).toBe(true);
    const region = await agent(["llama2-70b"]);
    // Idle (KV use below 0.25) with three instances: one goes to spot, down to the minimum of two.
    expect(await until(() => nodes.filter((n) => n.currentState === "spot").length === 1)).toBe(true);
    const lent = nodes.find((n) => n.currentState === "spot")!;
    await clock.sleep(1_000);
    expect(nodes.filter((n) => n.currentState === "serving")).toHaveLength(2);
    // Load the two serving instances past 0.5 KV use with long requests: the spot VM is reclaimed.
    for (const n of nodes.filter((x) => x.currentState === "serving")) {
      for (let i = 0; i < 2; i++) {
        region.bus.publish(
          InferenceRequest.subject.build({ node: n.instanceId.replace(/-i0$/, "") }),
          envelope(InferenceRequest, {
            ...InferenceRequest.sample(),
            requestId: `load-${n.instanceId}-${i}`,
            model: "llama2-70b",
            instanceId: n.instanceId,
            inputTokens: 30_000,
            maxOutputTokens: 30_000,
          }),
        );
      }
    }
    expect(await until(() => lent.currentState === "serving")).toBe(true);
    const seqOf = () => transitions.filter((t) => t.instanceId === lent.instanceId).map((t) => t.to);
    // The node flips to serving before its StateChange has crossed the bus to this listener: wait for it.
    await until(() => seqOf().indexOf("spot") < seqOf().lastIndexOf("serving"), 5_000);
    const seq = seqOf();
    expect(seq).toEqual(expect.arrayContaining(["draining", "spot", "serving"]));
    expect(seq.indexOf("spot")).toBeLessThan(seq.lastIndexOf("serving"));
    expect(region.actions.makeSpot).toBe(1);
    expect(region.actions.reclaim).toBe(1);
  }, 60_000);

  it("donates a spot VM to another model's endpoint by swapping its model (warm migration)", async () => {
    const a = [
      await node("a1", "llama3.2-3b"),
      await node("a2", "llama3.2-3b"),
      await node("a3", "llama3.2-3b"),
    ];
    expect(await until(() => a.every((n) => n.currentState === "serving"))).toBe(true);
    // The agent serves both models; llama3.1-8b has no instance yet: the spot VM lent by the idle
    // llama3.2-3b endpoint is swapped to llama3.1-8b.
    const region = await agent(["llama3.2-3b", "llama3.1-8b"]);
    expect(
      await until(() => a.some((n) => n.currentModel === "llama3.1-8b" && n.currentState === "serving")),
    ).toBe(true);
    const donor = a.find((n) => n.currentModel === "llama3.1-8b")!;
    const seqOf = () => transitions.filter((t) => t.instanceId === donor.instanceId).map((t) => t.to);
    const four = () => seqOf().slice(seqOf().indexOf("draining"), seqOf().indexOf("draining") + 4);
    // The node's own state can be "serving" a moment before its transition message reaches this watcher.
    await until(() => four().length === 4, 5_000);
    expect(four()).toEqual(["draining", "spot", "swapping", "serving"]);
    expect(region.actions.swap).toBeGreaterThanOrEqual(1);
  }, 60_000);
});
