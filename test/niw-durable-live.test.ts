import { type EmulatorHandle, startEmulator } from "@sageserve/engine-emulator";
import { NatsBus } from "@sageserve/nats";
import { NodeAgentActor } from "@sageserve/node-agent";
import { envelope, type Payload, RequestDone, RouteRequest, validateReply } from "@sageserve/protocol";
import { RegionAgentActor } from "@sageserve/region-agent";
import { RouterActor } from "@sageserve/router";
import { WallClock } from "@sageserve/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NatsFixture, startNats } from "./support/nats.js";

/**
 * Batch (NIW) work sits in a JetStream work queue: routers and region agents can restart without
 * losing a job. Real nats-server, node agent and engine emulator.
 */
describe("durable NIW queue over JetStream", () => {
  let fx: NatsFixture;
  let emu: EmulatorHandle;
  const clock = new WallClock({ seed: 4 });
  const buses: NatsBus[] = [];
  const done: Payload<typeof RequestDone>[] = [];
  let client: NatsBus;
  const ctx = async (name: string) => {
    const bus = await NatsBus.connect({ servers: fx.url, name });
    buses.push(bus);
    return { bus, clock };
  };
  const agentOpts = {
    region: "westus",
    models: ["llama3.2-3b"],
    mode: "unified" as const,
    gpuTypes: ["h100"],
    scalingIntervalMs: 200,
    niwAckWaitMs: 1_000,
  };

  beforeAll(async () => {
    fx = await startNats();
    emu = await startEmulator({ model: "llama3.2-3b", gpu: "h100", speedup: 50 });
    client = (await ctx("client")).bus;
    client.subscribe(RequestDone.subject.pattern({ region: "westus" }), (m) => {
      const d = m.data();
      if (d.ok) done.push(d.value as Payload<typeof RequestDone>);
    });
  });

  afterAll(async () => {
    for (const b of buses) await b.close();
    await emu?.close();
    clock.cancelAll();
    await fx?.stop();
  });

  const submitBatch = async (i: number) => {
    const m = await client.request(
      RouteRequest.subject.build({ region: "westus", model: "llama3.2-3b" }),
      envelope(RouteRequest, {
        ...RouteRequest.sample(),
        requestId: `batch-${i}`,
        model: "llama3.2-3b",
        tier: "niw",
        originRegion: "westus",
        maxOutputTokens: 3,
        deadlineMs: Date.now() + 3_600_000,
      }),
      { timeoutMs: 5_000 },
    );
    const d = m.data();
    const r = d.ok ? validateReply(RouteRequest, d.value) : d;
    return r.ok ? r.value.decision : r.error.code;
  };

  it("keeps every job across a router restart and a region agent that dies holding jobs", async () => {
    // 1. Router A queues 20 jobs; nobody consumes yet.
    const routerA = new RouterActor(await ctx("router-a"), { regions: ["westus"], models: ["llama3.2-3b"] });
    await routerA.start();
    for (let i = 0; i < 20; i++) expect(await submitBatch(i)).toBe("queued");
    // 2. Router A goes away; router B takes over and queues 10 more.
    await routerA.stop();
    await routerA.bus.close();
    const routerB = new RouterActor(await ctx("router-b"), { regions: ["westus"], models: ["llama3.2-3b"] });
    await routerB.start();
    for (let i = 20; i < 30; i++) expect(await submitBatch(i)).toBe("queued");
    // 3. A region agent takes the jobs but has no serving instance to release them to, then dies.
    const agent1 = new RegionAgentActor(await ctx("agent-1"), agentOpts);
    await agent1.start();
    for (let i = 0; i < 30 && agent1.queueDepth() < 30; i++) await clock.sleep(100);
    expect(agent1.queueDepth()).toBe(30);
    await agent1.stop();
    await agent1.bus.close();
    expect(done).toHaveLength(0);
    // 4. A node comes up and a new region agent starts: every job is delivered again and completes once.
    const node = new NodeAgentActor(await ctx("node"), {
      nodeId: "w1",
      region: "westus",
      gpuType: "h100",
      engine: { url: emu.url, kind: "vllm", model: "llama3.2-3b", kvCapacityTokens: 5_000_000 },
      loadReportMs: 200,
    });
    await node.start();
    const agent2 = new RegionAgentActor(await ctx("agent-2"), agentOpts);
    await agent2.start();
    for (let i = 0; i < 150 && done.length < 30; i++) await clock.sleep(100);
    const ids = done.filter((d) => d.outcome === "ok").map((d) => d.requestId);
    expect(new Set(ids).size).toBe(30);
    expect(ids).toHaveLength(30);
    expect(done.every((d) => d.tier === "niw")).toBe(true);
    await clock.sleep(1_500); // no late redelivery either
    expect(done).toHaveLength(30);
    for (const a of [agent2, node, routerB]) await a.stop();
  }, 60_000);
});
