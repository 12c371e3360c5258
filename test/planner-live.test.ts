import { NatsBus } from "@sageserve/nats";
import { PlannerActor } from "@sageserve/planner";
import { DemandReport, envelope, LoadReport, Plan, PlanRequest, validateReply } from "@sageserve/protocol";
import { RegionAgentActor } from "@sageserve/region-agent";
import { WallClock } from "@sageserve/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NatsFixture, startNats } from "./support/nats.js";

describe("planner over a real nats-server", () => {
  let fx: NatsFixture;
  let planner: PlannerActor;
  let client: NatsBus;
  const clock = new WallClock({ seed: 1 });

  beforeAll(async () => {
    fx = await startNats();
    planner = new PlannerActor(
      { bus: await NatsBus.connect({ servers: fx.url, name: "planner" }), clock },
      {
        models: ["llama2-70b"],
        regions: ["eastus", "westus"],
        capacity: { "llama2-70b": { h100: 2400 } },
        gpuTypes: [{ id: "h100", pricePerHour: 98.32 }],
        supply: { eastus: { h100: 2 }, westus: { h100: 10 } },
        routes: { eastus: ["westus"] },
        strategy: "lt-ua",
        schedule: "0 0 1 1 *", // effectively never during the test: plans come on request
      },
    );
    await planner.start();
    client = await NatsBus.connect({ servers: fx.url, name: "client" });
  });

  afterAll(async () => {
    await planner?.stop();
    await planner?.bus.close();
    await client?.close();
    clock.cancelAll();
    await fx?.stop();
  });

  it("re-plans on request from demand and load reports, publishes the plan and keeps the latest in KV", async () => {
    const plans: unknown[] = [];
    client.subscribe(Plan.subject.build({}), (m) => {
      const d = m.data();
      if (d.ok) plans.push(d.value);
    });
    const minute = Math.floor(Date.now() / 60_000) * 60_000 - 120_000;
    const load = { inputTokens: 6_000 * 60, outputTokens: 3_000 * 60 }; // 9,000 tokens/s of IW in eastus
    for (const region of ["eastus", "westus"]) {
      for (const w of [minute, minute + 60_000]) {
        client.publish(
          DemandReport.subject.build({ region, model: "llama2-70b" }),
          envelope(DemandReport, {
            region,
            model: "llama2-70b",
            windowStartMs: w,
            windowMs: 60_000,
            byTier: {
              "iw-fast":
                region === "eastus"
                  ? { requests: 600, ...load }
                  : { requests: 0, inputTokens: 0, outputTokens: 0 },
              "iw-normal": { requests: 0, inputTokens: 0, outputTokens: 0 },
              niw: { requests: 0, inputTokens: 0, outputTokens: 0 },
            },
          }),
        );
      }
    }
    client.publish(
      LoadReport.subject.build({ region: "eastus", model: "llama2-70b", instance: "e-1" }),
      envelope(LoadReport, {
        ...LoadReport.sample(),
        instanceId: "e-1",
        region: "eastus",
        model: "llama2-70b",
        gpuType: "h100",
      }),
    );
    await client.flush();
    await clock.sleep(200);

    const reply = await client.request(
      PlanRequest.subject.build({}),
      envelope(PlanRequest, { reason: "test", requestedBy: "cli" }),
      {
        timeoutMs: 20_000,
      },
    );
    const d = reply.data();
    const r = d.ok ? validateReply(PlanRequest, d.value) : d;
    expect(r.ok, r.ok ? "" : r.error.message).toBe(true);
    if (!r.ok) return;
    expect(["optimal", "feasible"]).toContain(r.value.status);

    await clock.sleep(200);
    expect(plans).toHaveLength(1);
    const plan = plans[0] as {
      planId: string;
      routing: { from: string; to: string }[];
      targets: { region: string; instances: number }[];
    };
    expect(plan.planId).toBe(r.value.planId);
    // eastus has 2 VMs for ~10,800 tokens/s with headroom: the rest is routed to westus.
    expect(plan.routing.some((x) => x.from === "eastus" && x.to === "westus")).toBe(true);
    const latest = (await client.kvGet("sage-plans", "latest")) as { planId: string } | undefined;
    expect(latest?.planId).toBe(plan.planId);

    // A region agent started after the plan picks it up from KV.
    const agent = new RegionAgentActor(
      { bus: await NatsBus.connect({ servers: fx.url, name: "agent" }), clock },
      { region: "eastus", models: ["llama2-70b"], mode: "unified", gpuTypes: ["h100"], planStrategy: "lt-u" },
    );
    await agent.start();
    const eastTarget = plan.targets.filter((t) => t.region === "eastus").reduce((a, t) => a + t.instances, 0);
    expect(agent.planTargets()).toEqual({ "llama2-70b": Math.max(2, eastTarget) });
    await agent.stop();
    await agent.bus.close();
  }, 30_000);
});
