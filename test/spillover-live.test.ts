import { type EmulatorHandle, startEmulator } from "@sageserve/engine-emulator";
import { NatsBus } from "@sageserve/nats";
import { NodeAgentActor } from "@sageserve/node-agent";
import {
  envelope,
  InferenceRequest,
  LoadReport,
  type Payload,
  RouteRequest,
  validateReply,
} from "@sageserve/protocol";
import { RouterActor } from "@sageserve/router";
import { WallClock } from "@sageserve/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NatsFixture, startNats } from "./support/nats.js";

/**
 * Two regions, each with a node agent and an engine emulator, one router, a real nats-server:
 * when westus's endpoint is saturated (KV use above the spill threshold), westus traffic spills to eastus.
 */
describe("cross-region spill-over, live", () => {
  let fx: NatsFixture;
  const clock = new WallClock({ seed: 9 });
  const emus: EmulatorHandle[] = [];
  const buses: NatsBus[] = [];
  const nodes: NodeAgentActor[] = [];
  let router: RouterActor;
  let client: NatsBus;
  const loads = new Map<string, Payload<typeof LoadReport>>();
  const ctx = async (name: string) => {
    const bus = await NatsBus.connect({ servers: fx.url, name });
    buses.push(bus);
    return { bus, clock };
  };

  beforeAll(async () => {
    fx = await startNats();
    for (const region of ["westus", "eastus"]) {
      // Real llama2-70b timing: long requests stay on the GPU while the test probes the router.
      const emu = await startEmulator({ model: "llama2-70b", gpu: "h100", maxModelLen: 200_000 });
      emus.push(emu);
      const capacity = emu.engine.kvCapacityTokens;
      nodes.push(
        new NodeAgentActor(await ctx(`node-${region}`), {
          nodeId: `${region}-1`,
          region,
          gpuType: "h100",
          engine: { url: emu.url, kind: "vllm", model: "llama2-70b", kvCapacityTokens: capacity },
          loadReportMs: 150,
        }),
      );
    }
    router = new RouterActor(await ctx("router"), { regions: ["westus", "eastus"], models: ["llama2-70b"] });
    client = (await ctx("client")).bus;
    client.subscribe(LoadReport.subject.pattern(), (m) => {
      const d = m.data();
      if (d.ok) {
        const r = d.value as Payload<typeof LoadReport>;
        loads.set(r.region, r);
      }
    });
    for (const a of [router, ...nodes]) await a.start();
    for (let i = 0; i < 60 && nodes.some((n) => n.currentState !== "serving"); i++) await clock.sleep(100);
    await clock.sleep(300);
  }, 30_000);

  afterAll(async () => {
    // Engines first: their long requests end, so the node agents' streams finish.
    for (const e of emus) await e.close();
    for (const a of [...nodes, router]) await a?.stop();
    for (const b of buses) await b.close();
    clock.cancelAll();
    await fx?.stop();
  });

  const routeOf = async (i: number): Promise<string> => {
    const m = await client.request(
      RouteRequest.subject.build({ region: "westus", model: "llama2-70b" }),
      envelope(RouteRequest, {
        ...RouteRequest.sample(),
        requestId: `probe-${i}`,
        model: "llama2-70b",
        originRegion: "westus",
        maxOutputTokens: 1,
        inputTokens: 10,
      }),
      { timeoutMs: 5_000 },
    );
    const d = m.data();
    const r = d.ok ? validateReply(RouteRequest, d.value) : d;
    return r.ok ? r.value.region : r.error.code;
  };

  it("keeps westus traffic home while westus has room", async () => {
    expect(await routeOf(0)).toBe("westus");
  });

  it("spills westus traffic to eastus once westus's KV cache is above the spill threshold", async () => {
    const capacity = emus[0]!.engine.kvCapacityTokens;
    // Fill about 85 % of westus's KV cache with three long requests sent straight to its node.
    const each = Math.floor((0.85 * capacity) / 3);
    for (let i = 0; i < 3; i++) {
      client.publish(
        InferenceRequest.subject.build({ node: "westus-1" }),
        envelope(InferenceRequest, {
          ...InferenceRequest.sample(),
          requestId: `fill-${i}`,
          model: "llama2-70b",
          originRegion: "westus",
          instanceId: nodes[0]!.instanceId,
          // Paged KV fills as tokens are computed: most of it as prompt, then a long decode keeps it held.
          inputTokens: each - 2_000,
          maxOutputTokens: 2_000,
        }),
      );
    }
    // Each long prompt exceeds the 8,192-token step budget, so it is prefilled in chunks.
    for (let i = 0; i < 200 && (loads.get("westus")?.kvUtilization ?? 0) < 0.7; i++) await clock.sleep(100);
    expect(loads.get("westus")?.kvUtilization).toBeGreaterThan(0.7);
    await clock.sleep(300);
    expect(await routeOf(1)).toBe("eastus");
  }, 40_000);
});
