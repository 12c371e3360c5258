import {
  CapacityModel,
  DemandReport,
  envelope,
  InferenceRequest,
  LoadReport,
  NIW_STREAM,
  NiwJob,
  NodeCommand,
  type Payload,
  Plan,
  RequestDone,
  RunCheck,
  VmCommand,
} from "@sageserve/protocol";
import { MemoryBroker, VirtualClock } from "@sageserve/runtime";
import { describe, expect, it } from "vitest";
import { RegionAgentActor } from "./agent.js";
import type { RegionAgentOptions } from "./options.js";

/** A serving instance's load report (idle unless told otherwise), published on its subject by `bus`. */
function publishLoad(
  bus: { publish(subject: string, data: unknown): void },
  r: { instanceId: string; nodeId: string; region: string; model: string; atMs: number } & Partial<
    Payload<typeof LoadReport>
  >,
): void {
  bus.publish(
    LoadReport.subject.build({ region: r.region, model: r.model, instance: r.instanceId }),
    envelope(LoadReport, {
      gpuType: "h100",
      state: "serving",
      kvUtilization: 0.05,
      memoryUtilization: 0.05,
      running: 1,
      waiting: 0,
      outstandingTokens: 0,
      tokensPerSecond: 0,
      kvCapacityTokens: 1_000_000,
      ...r,
    }),
  );
}

/**
 * The region agent's scaling signal on virtual time: an endpoint whose KV cache is nearly empty but
 * whose engine slots are full (a small model on a big VM) must read as full and get another instance.
 */
async function world(report: Partial<Payload<typeof LoadReport>>) {
  const clock = new VirtualClock({ startMs: 0 });
  const broker = new MemoryBroker(clock);
  const agent = new RegionAgentActor(
    { bus: broker.connect("agent"), clock },
    {
      region: "westus",
      models: ["llama3.2-3b"],
      mode: "unified",
      gpuTypes: ["h100"],
      scalingIntervalMs: 1_000,
      reactive: { minInstances: 1 },
    },
  );
  await agent.start();
  const boots: Payload<typeof VmCommand>[] = [];
  const provider = broker.connect("provider");
  provider.subscribe(VmCommand.subject.build({ region: "westus" }), (m) => {
    const d = m.data();
    if (!d.ok) return;
    const cmd = d.value as Payload<typeof VmCommand>;
    boots.push(cmd);
    // Refused, so the agent keeps asking every interval instead of waiting for a boot.
    m.respond(envelope(VmCommand, { commandId: cmd.commandId, accepted: false, reason: "test" }));
  });
  const client = broker.connect("node");
  /** A load report of instance i1 on n1 (or, with `other`, of another instance). */
  const send = (other: { instanceId: string; nodeId: string } = { instanceId: "i1", nodeId: "n1" }) =>
    publishLoad(client, {
      ...other,
      region: "westus",
      model: "llama3.2-3b",
      kvUtilization: 0.03,
      memoryUtilization: 0.03,
      running: 0,
      kvCapacityTokens: 5_000_000,
      atMs: clock.now(),
      ...report,
    });
  /** `n` seconds of virtual time with a load report of i1 each second. */
  const seconds = async (n: number) => {
    for (let t = 0; t < n; t++) {
      send();
      await clock.advance(1_000);
    }
  };
  return { clock, broker, agent, boots, send, seconds };
}

describe("region agent scaling signal", () => {
  it("reads an instance with full sequence slots as full although its KV cache is nearly empty", async () => {
    const w = await world({ running: 512, waiting: 80, maxRunning: 512 });
    w.send();
    await w.clock.advance(10);
    expect(w.agent.snapshot("llama3.2-3b", undefined).utilization).toBe(1);
    await w.seconds(3);
    expect(w.boots.some((b) => b.action === "boot" && b.model === "llama3.2-3b")).toBe(true);
  });

  it("without a reported slot limit, KV alone decides: the same instance reads as idle", async () => {
    const w = await world({ running: 512, waiting: 80 });
    w.send();
    await w.clock.advance(10);
    expect(w.agent.snapshot("llama3.2-3b", undefined).utilization).toBeCloseTo(0.03);
    await w.seconds(3);
    expect(w.boots.filter((b) => b.action === "boot")).toEqual([]);
  });
});

describe("region agent latency signal", () => {
  it("scales out a prefill-bound endpoint: KV nearly empty, slots free, but IW-fast requests queue past the SLO", async () => {
    // Long prompts: the engine is busy prefilling, its oldest IW-fast request has waited 800 ms of its 1 s.
    const w = await world({
      kvUtilization: 0.05,
      running: 3,
      waiting: 40,
      maxRunning: 512,
      iwFastWaitMs: 800,
    });
    w.send();
    await w.clock.advance(10);
    expect(w.agent.snapshot("llama3.2-3b", undefined).utilization).toBeCloseTo(0.8);
    await w.seconds(3);
    expect(w.boots.some((b) => b.action === "boot" && b.model === "llama3.2-3b")).toBe(true);
  });

  it("reads the same endpoint as idle once its queue drains (the wait is the signal, not the prompt length)", async () => {
    const w = await world({ kvUtilization: 0.05, running: 3, waiting: 0, maxRunning: 512, iwFastWaitMs: 0 });
    w.send();
    await w.clock.advance(10);
    expect(w.agent.snapshot("llama3.2-3b", undefined).utilization).toBeCloseTo(0.05);
  });
});

describe("region agent, GPU types under a plan (LT-I)", () => {
  it("migrates an endpoint to the GPU type the plan moved it to, one VM at a time, never below the plan", async () => {
    const clock = new VirtualClock({ startMs: 0 });
    const broker = new MemoryBroker(clock);
    const model = "llama3.1-8b";
    const agent = new RegionAgentActor(
      { bus: broker.connect("agent"), clock },
      {
        region: "westus",
        models: [model],
        mode: "unified",
        gpuTypes: ["a100", "h100"],
        scalingIntervalMs: 1_000,
        planStrategy: "lt-i",
        reactive: { minInstances: 1 },
        cooldowns: { bootMs: 2_000, reclaimMs: 2_000, swapMs: 2_000 },
        staleAfterMs: 60_000,
      },
    );
    await agent.start();
    // The fleet as the test's VM provider and node agents see it: instance → GPU type, state.
    const fleet = new Map<string, { gpu: string; state: "booting" | "serving" | "draining"; since: number }>([
      ["a1", { gpu: "a100", state: "serving", since: 0 }],
      ["a2", { gpu: "a100", state: "serving", since: 0 }],
    ]);
    const boots: string[] = [];
    const drains: string[] = [];
    const infra = broker.connect("infra");
    infra.subscribe(VmCommand.subject.build({ region: "westus" }), (m) => {
      const d = m.data();
      if (!d.ok) return;
      const cmd = d.value as Payload<typeof VmCommand>;
      if (cmd.action !== "boot") return;
      const id = `n${boots.length}`;
      boots.push(cmd.gpuType!);
      fleet.set(id, { gpu: cmd.gpuType!, state: "booting", since: clock.now() });
      m.respond(envelope(VmCommand, { commandId: cmd.commandId, accepted: true, nodeId: id, etaMs: 2_000 }));
    });
    infra.subscribe("sage.node.*.cmd", (m) => {
      const d = m.data();
      if (!d.ok) return;
      const id = m.subject.split(".")[2]!;
      drains.push(id);
      fleet.get(id)!.state = "draining";
      m.respond(
        envelope(NodeCommand, { commandId: (d.value as { commandId: string }).commandId, accepted: true }),
      );
    });
    const report = () => {
      for (const [id, vm] of fleet) {
        // Boots take 2 s; a drained VM leaves.
        if (vm.state === "booting" && clock.now() - vm.since >= 2_000) vm.state = "serving";
        publishLoad(infra, {
          instanceId: id,
          nodeId: id,
          region: "westus",
          model,
          gpuType: vm.gpu,
          state: vm.state,
          kvUtilization: 0.3,
          memoryUtilization: 0.3,
          running: 10,
          atMs: clock.now(),
        });
      }
    };
    report();
    await clock.advance(10);
    infra.publish(
      Plan.subject.build({}),
      envelope(Plan, {
        planId: "p1",
        createdAtMs: clock.now(),
        windowStartMs: clock.now(),
        windowEndMs: clock.now() + 3_600_000,
        strategy: "lt-i",
        targets: [{ model, region: "westus", gpuType: "h100", instances: 2, delta: 0 }],
        routing: [],
        forecast: [],
        solver: { status: "optimal", objective: 1, solveMs: 1 },
        notes: [],
      }),
    );
    let minServing = 2;
    for (let t = 0; t < 40; t++) {
      report();
      await clock.advance(1_000);
      const serving = [...fleet.values()].filter((v) => v.state === "serving").length;
      minServing = Math.min(minServing, serving);
    }
    // Two H100 boots (never an A100 one), both A100s drained, and never fewer than 2 serving.
    expect(boots).toEqual(["h100", "h100"]);
    expect(drains.sort()).toEqual(["a1", "a2"]);
    expect(minServing).toBe(2);
    expect(agent.actions.gpuMigrate).toBe(2);
  });
});

/**
 * An LT-U region agent with four serving instances of one model (one instance carries 1 request/s of 1,000
 * tokens at the SLO), whose load reports say `kv` (KV use) each second; `minute(rps)` reports a minute of
 * that interactive demand, `plan(id, n)` publishes a plan of n instances here.
 */
async function ltuWorld(extra: Partial<RegionAgentOptions> = {}, o: { capacity?: boolean } = {}) {
  const clock = new VirtualClock({ startMs: 0 });
  const broker = new MemoryBroker(clock);
  const model = "llama3.1-8b";
  const capacity = new CapacityModel(
    { [model]: { h100: [{ meanInputTokens: 900, meanOutputTokens: 100, rps: 1, default: true }] } },
    1,
  );
  const agent = new RegionAgentActor(
    { bus: broker.connect("agent"), clock },
    {
      region: "westus",
      models: [model],
      mode: "unified",
      gpuTypes: ["h100"],
      scalingIntervalMs: 1_000,
      planStrategy: "lt-u",
      reactive: { minInstances: 1 },
      ...(o.capacity === false ? {} : { capacity }),
      staleAfterMs: 60_000,
      ...extra,
    },
  );
  await agent.start();
  const serving = new Set(["n1", "n2", "n3", "n4"]);
  const drains: number[] = [];
  const infra = broker.connect("infra");
  infra.subscribe("sage.node.*.cmd", (m) => {
    const d = m.data();
    if (!d.ok) return;
    serving.delete(m.subject.split(".")[2]!);
    drains.push(clock.now());
    m.respond(
      envelope(NodeCommand, { commandId: (d.value as { commandId: string }).commandId, accepted: true }),
    );
  });
  const w = { clock, broker, agent, serving, drains, kv: 0.05, minute, plan, capacity };
  const reports = () => {
    for (const id of serving)
      publishLoad(infra, {
        instanceId: id,
        nodeId: id,
        region: "westus",
        model,
        kvUtilization: w.kv,
        atMs: clock.now(),
      });
  };
  /** The routers' count of the minute just ended: `rps` interactive requests/s of 1,000 tokens. */
  const demand = (rps: number) => {
    const requests = rps * 60;
    infra.publish(
      DemandReport.subject.build({ region: "westus", model }),
      envelope(DemandReport, {
        region: "westus",
        model,
        windowStartMs: clock.now() - 60_000,
        windowMs: 60_000,
        byTier: {
          "iw-fast": { requests, inputTokens: requests * 900, outputTokens: requests * 100 },
          "iw-normal": { requests: 0, inputTokens: 0, outputTokens: 0 },
          niw: { requests: 0, inputTokens: 0, outputTokens: 0 },
        },
      }),
    );
  };
  async function minute(rps: number) {
    for (let s = 0; s < 60; s++) {
      reports();
      await clock.advance(1_000);
    }
    demand(rps);
  }
  function plan(planId: string, instances: number, niwTokensPerSecond?: number) {
    infra.publish(
      Plan.subject.build({}),
      envelope(Plan, {
        planId,
        createdAtMs: clock.now(),
        windowStartMs: clock.now(),
        windowEndMs: clock.now() + 3_600_000,
        strategy: "lt-u",
        targets: [{ model, region: "westus", gpuType: "h100", instances, delta: 0 }],
        routing: [],
        forecast: [],
        ...(niwTokensPerSecond
          ? { niw: [{ model, region: "westus", tokensPerSecond: niwTokensPerSecond }] }
          : {}),
        solver: { status: "optimal", objective: 1, solveMs: 1 },
        notes: [],
      }),
    );
  }
  return w;
}

describe("region agent giving back what a plan lowered (LT-U)", () => {
  it("owes the scale-downs the recent demand held back and pays them back as that demand passes, before the next plan", async () => {
    const { agent, serving, drains, minute, plan } = await ltuWorld();
    // Under a plan of 4, a busy minute (4 requests/s: 4 instances); then a plan of 2 arrives: the demand
    // of the last 10 minutes still holds 4, so nothing is given back yet.
    plan("p1", 4);
    await minute(4);
    plan("p2", 2);
    await minute(1);
    expect(serving.size).toBe(4);
    // Quiet minutes (1 request/s): once the busy minute is out of the hold (10 windows), the two owed
    // scale-downs are paid, one idle instance at a time — before the next plan, and not below the plan.
    for (let m = 0; m < 14; m++) await minute(1);
    expect(serving.size).toBe(2);
    expect(drains).toHaveLength(2);
    expect(drains[0]!).toBeGreaterThan(10 * 60_000);
    expect(drains[1]! - drains[0]!).toBeGreaterThanOrEqual(60_000); // the scale-down cool-down
    await agent.stop();
  });

  it("cuts busy instances at once only down to what their load needs below the scale-up threshold; owes the rest until idle", async () => {
    const w = await ltuWorld();
    // Little measured demand (the demand floor allows 1), but the four instances are 30 % busy (batch
    // work, say): a plan of 1 takes one at once — three at 0.3 × 4 / 3 = 0.4 stay below 0.5; two would be
    // at 0.6 — and owes the other two.
    w.kv = 0.3;
    w.plan("p1", 4);
    await w.minute(0.5);
    w.plan("p2", 1);
    await w.minute(0.5);
    expect(w.serving.size).toBe(3);
    expect(w.drains).toHaveLength(1);
    // Idle (below 0.25): the owed scale-downs are paid back, one at a time, down to the plan.
    w.kv = 0.05;
    for (let m = 0; m < 4; m++) await w.minute(0.5);
    expect(w.serving.size).toBe(1);
    await w.agent.stop();
  });

  it("counts the measured demand's floor once a capacity model is handed over after start-up (a live cluster's)", async () => {
    const w = await ltuWorld({}, { capacity: false });
    w.plan("p1", 1);
    await w.minute(2);
    await w.clock.advance(100);
    // Without the model the agent cannot count instances for the demand: no floor.
    expect(w.agent.demandFloor("llama3.1-8b", "h100")).toEqual({ up: 0, hold: 0 });
    expect(w.agent.status().endpoints[0]!.demandNeed).toBeUndefined();
    w.agent.useCapacityModel(w.capacity);
    // 2 requests/s of 1,000 tokens at 1 request/s per instance: two, from the demand already measured —
    // and the region's status says so.
    expect(w.agent.demandFloor("llama3.1-8b", "h100")).toEqual({ up: 2, hold: 2 });
    expect(w.agent.status().endpoints[0]!.demandNeed).toBe(2);
    await w.agent.stop();
  });

  it("counts the plan's batch rate in the demand floor while batch jobs are queued here", async () => {
    const w = await ltuWorld();
    // Full instances: a queued job stays queued.
    w.kv = 0.95;
    w.plan("p1", 4, 3_000);
    await w.minute(1);
    await w.clock.advance(100);
    // 1 request/s of interactive demand: one instance; nothing queued, the batch rate is not counted.
    expect(w.agent.demandFloor("llama3.1-8b", "h100").up).toBe(1);
    await w.broker.connect("router").durablePublish(
      NIW_STREAM,
      NiwJob.subject.build({ region: "westus", model: "llama3.1-8b" }),
      envelope(NiwJob, {
        ...NiwJob.sample(),
        model: "llama3.1-8b",
        originRegion: "westus",
        arrivalMs: 0,
        deadlineMs: 86_400_000,
        enqueuedAtMs: w.clock.now(),
      }),
    );
    await w.clock.advance(100);
    expect(w.agent.queueDepth("llama3.1-8b")).toBe(1);
    // Queued: the 3,000 tokens/s the plan has this region release are capacity in use — four instances.
    expect(w.agent.demandFloor("llama3.1-8b", "h100")).toEqual({ up: 4, hold: 4 });
    await w.agent.stop();
  });
});

describe("region agent's SLO feedback on the capacity model", () => {
  it("sizes a model that misses its IW-fast SLO here with less capacity per instance, and says so in its status", async () => {
    // One step in the test's six minutes (at the first tick, with the first 100 requests in).
    const calibration = {
      enabled: true,
      windowMs: 600_000,
      stepMs: 400_000,
      minSamples: 50,
      down: 0.2,
      min: 0.5,
    };
    const w = await ltuWorld({ sloCalibration: calibration });
    const off = await ltuWorld({ sloCalibration: { ...calibration, enabled: false } });
    const done = w.broker.connect("node");
    const late = (i: number) =>
      done.publish(
        RequestDone.subject.build({ region: "westus", model: "llama3.1-8b" }),
        envelope(RequestDone, {
          ...RequestDone.sample(),
          requestId: `r-${i}`,
          model: "llama3.1-8b",
          tier: "iw-fast",
          region: "westus",
          instanceId: "n1",
          outcome: "ok",
          ttftMs: i % 10 === 0 ? 5_000 : 200, // 10 % late: far below the band
        }),
      );
    for (const x of [w, off]) x.plan("p1", 4);
    for (let m = 0; m < 6; m++) {
      for (let i = 0; i < 100; i++) late(m * 100 + i);
      await Promise.all([w.minute(2), off.minute(2)]);
    }
    await Promise.all([w.clock.advance(100), off.clock.advance(100)]);
    // 2 requests/s of 1,000 tokens: two instances by the measured knee; with the factor at 0.8, three.
    expect(off.agent.demandFloor("llama3.1-8b", "h100").up).toBe(2);
    expect(w.agent.demandFloor("llama3.1-8b", "h100").up).toBe(3);
    expect(w.agent.status().endpoints[0]!.capacityFactor).toBeCloseTo(0.8);
    expect(off.agent.status().endpoints[0]!.capacityFactor).toBeUndefined();
    await Promise.all([w.agent.stop(), off.agent.stop()]);
  });
});

describe("region agent following successive plans", () => {
  const plan = (id: string, targets: Payload<typeof Plan>["targets"], nowMs: number) =>
    envelope(Plan, {
      planId: id,
      createdAtMs: nowMs,
      windowStartMs: nowMs,
      windowEndMs: nowMs + 3_600_000,
      strategy: "lt-i",
      targets,
      routing: [],
      forecast: [],
      solver: { status: "optimal", objective: 1, solveMs: 1 },
      notes: [],
    });

  it("drops a model's target here when the next plan names the model only in other regions (planned at zero), and keeps an unnamed model's", async () => {
    const clock = new VirtualClock({ startMs: 0 });
    const broker = new MemoryBroker(clock);
    const agent = new RegionAgentActor(
      { bus: broker.connect("agent"), clock },
      {
        region: "westus",
        models: ["llama3.1-8b", "llama3.2-3b"],
        mode: "unified",
        gpuTypes: ["h100"],
        scalingIntervalMs: 60_000,
        planStrategy: "lt-i",
        reactive: { minInstances: 1 },
      },
    );
    await agent.start();
    const planner = broker.connect("planner");
    planner.publish(
      Plan.subject.build({}),
      plan(
        "p1",
        [
          { model: "llama3.1-8b", region: "westus", gpuType: "h100", instances: 6, delta: 6 },
          { model: "llama3.2-3b", region: "westus", gpuType: "h100", instances: 3, delta: 3 },
        ],
        clock.now(),
      ),
    );
    await clock.advance(10);
    expect(agent.planTargets()).toEqual({ "llama3.1-8b": 6, "llama3.2-3b": 3 });
    // The next plan moves llama3.1-8b to eastus (westus left out: zero here, none running yet) and does
    // not name llama3.2-3b at all (not planned this hour: its target stays).
    planner.publish(
      Plan.subject.build({}),
      plan(
        "p2",
        [{ model: "llama3.1-8b", region: "eastus", gpuType: "h100", instances: 6, delta: 6 }],
        clock.now(),
      ),
    );
    await clock.advance(10);
    expect(agent.planTargets()).toEqual({ "llama3.1-8b": 1, "llama3.2-3b": 3 }); // 1: the minimum
    await agent.stop();
  });
});

describe("region agent restart while its VMs boot", () => {
  it("counts accepted boots as arriving, and a successor reads them from KV instead of booting again", async () => {
    const clock = new VirtualClock({ startMs: 0 });
    const broker = new MemoryBroker(clock);
    const opts = {
      region: "westus",
      models: ["llama3.2-3b"],
      mode: "unified" as const,
      gpuTypes: ["h100"],
      scalingIntervalMs: 1_000,
      reactive: { minInstances: 2 },
      cooldowns: { bootMs: 30_000 },
    };
    // A cloud provider: accepts every boot; its VMs say nothing while they boot.
    const boots: Payload<typeof VmCommand>[] = [];
    broker.connect("provider").subscribe(VmCommand.subject.build({ region: "westus" }), (m) => {
      const d = m.data();
      if (!d.ok) return;
      const cmd = d.value as Payload<typeof VmCommand>;
      boots.push(cmd);
      m.respond(
        envelope(VmCommand, {
          commandId: cmd.commandId,
          accepted: true,
          nodeId: `vm-${boots.length}`,
          etaMs: 5_000,
        }),
      );
    });
    const first = new RegionAgentActor({ bus: broker.connect("agent-1"), clock }, opts);
    await first.start();
    await clock.advance(5_000);
    // Two boots (the minimum), then nothing more although no VM has reported: they are arriving.
    expect(boots.filter((b) => b.action === "boot")).toHaveLength(2);
    expect(first.bootsInFlight().map((b) => b.nodeId)).toEqual(["vm-1", "vm-2"]);
    await first.stop();
    const second = new RegionAgentActor({ bus: broker.connect("agent-2"), clock }, opts);
    await second.start();
    await clock.advance(10_000);
    expect(boots.filter((b) => b.action === "boot")).toHaveLength(2);
    expect(second.bootsInFlight().map((b) => b.nodeId)).toEqual(["vm-1", "vm-2"]);
    expect(new Set(boots.map((b) => b.commandId)).size).toBe(boots.length);
    // vm-1 reports: no longer in flight. vm-2 never does: after the boot time it is given up, and replaced.
    broker.connect("vm-1").publish(
      LoadReport.subject.build({ region: "westus", model: "llama3.2-3b", instance: "vm-1-i0" }),
      envelope(LoadReport, {
        ...LoadReport.sample(),
        instanceId: "vm-1-i0",
        nodeId: "vm-1",
        region: "westus",
        model: "llama3.2-3b",
        gpuType: "h100",
        state: "loading",
        atMs: clock.now(),
      }),
    );
    await clock.advance(100);
    expect(second.bootsInFlight().map((b) => b.nodeId)).toEqual(["vm-2"]);
    await clock.advance(20_000);
    expect(boots.filter((b) => b.action === "boot").length).toBeGreaterThan(2);
    await second.stop();
  });
});

/** A NIW job in the durable queue, as the router puts it there. */
function queueJob(w: Awaited<ReturnType<typeof world>>, requestId: string) {
  return w.broker.connect(`router-${requestId}`).durablePublish(
    NIW_STREAM,
    NiwJob.subject.build({ region: "westus", model: "llama3.2-3b" }),
    envelope(NiwJob, {
      ...NiwJob.sample(),
      jobId: `j-${requestId}`,
      requestId,
      model: "llama3.2-3b",
      originRegion: "westus",
      arrivalMs: 0,
      deadlineMs: 86_400_000,
      enqueuedAtMs: w.clock.now(),
      resultKey: `batch_t.${requestId.slice(1)}`,
    }),
  );
}

/**
 * Node n1 as the region agent sees it over a lossy bus: `arrives(copy)` decides whether the n-th copy of
 * an InferenceRequest reaches it; it answers RunCheck from what arrived (running) and `finished`.
 */
function lossyNode(w: Awaited<ReturnType<typeof world>>, arrives: (copy: number) => boolean) {
  const node = w.broker.connect("n1");
  const copies: { atMs: number; attempt: number | undefined }[] = [];
  const running = new Set<string>();
  const finished = new Map<string, "ok" | "failed">();
  const asked: { atMs: number; ids: string[] }[] = [];
  node.subscribe(InferenceRequest.subject.build({ node: "n1" }), (m) => {
    const d = m.data();
    if (!d.ok) return;
    const r = d.value as Payload<typeof InferenceRequest>;
    copies.push({ atMs: w.clock.now(), attempt: r.attempt });
    if (arrives(copies.length)) running.add(r.requestId);
  });
  node.subscribe(RunCheck.subject.build({ node: "n1" }), (m) => {
    const d = m.data();
    if (!d.ok) return;
    const ids = (d.value as Payload<typeof RunCheck>).requestIds;
    asked.push({ atMs: w.clock.now(), ids });
    m.respond(
      envelope(RunCheck, {
        running: ids.filter((id) => running.has(id)),
        done: ids.flatMap((id) => (finished.has(id) ? [{ requestId: id, outcome: finished.get(id)! }] : [])),
      }),
    );
  });
  /** The run ends; its RequestDone is lost on the way. */
  const finishSilently = (id: string) => {
    running.delete(id);
    finished.set(id, "ok");
  };
  return { copies, asked, finishSilently };
}

const inQueue = (w: Awaited<ReturnType<typeof world>>) =>
  w.broker.durable.get(NIW_STREAM.name)!.messages.size;

describe("region agent NIW hand-off check (RunCheck)", () => {
  it("queues a job again when its live node says it never received it (the hand-off was lost), and stops asking once the node runs it", async () => {
    const w = await world({ kvUtilization: 0.05 });
    w.send();
    await w.clock.advance(10);
    // The first copy dies inside a NATS server on its way; the next arrives.
    const n = lossyNode(w, (copy) => copy > 1);
    await queueJob(w, "r1");
    await w.seconds(90);
    // Asked once it was 10 s unconfirmed (the 20-s sweep), queued again, released at the next tick as
    // attempt 1, confirmed at the next sweep, and never asked about or sent again.
    expect(w.agent.niwHandoffsLost).toBe(1);
    expect(w.agent.niwRequeued).toBe(0);
    expect(n.copies.map((c) => c.attempt)).toEqual([undefined, 1]);
    expect(n.copies[1]!.atMs - n.asked[0]!.atMs).toBeLessThanOrEqual(1_000);
    expect(n.asked.map((a) => a.ids)).toEqual([["r1"], ["r1"]]);
    expect(n.asked[0]!.atMs - n.copies[0]!.atMs).toBeGreaterThanOrEqual(10_000);
    expect(n.asked[0]!.atMs - n.copies[0]!.atMs).toBeLessThanOrEqual(30_000);
    // Still held in the work queue until its RequestDone; counted once as released.
    expect(inQueue(w)).toBe(1);
    expect(w.agent.actions.niwReleased).toBe(1);
    expect(w.agent.niwReleasedAgain).toBe(1);
    await w.agent.stop();
  });

  it("asks again about a confirmed job every 5 minutes, and acknowledges it once its node reports it finished (its RequestDone lost)", async () => {
    const w = await world({ kvUtilization: 0.05 });
    w.send();
    await w.clock.advance(10);
    const n = lossyNode(w, () => true);
    await queueJob(w, "r1");
    await w.seconds(25);
    expect(n.asked).toHaveLength(1); // confirmed running
    n.finishSilently("r1");
    await w.seconds(400);
    expect(n.asked).toHaveLength(2);
    expect(n.asked[1]!.atMs - n.asked[0]!.atMs).toBeGreaterThanOrEqual(5 * 60_000);
    expect(n.asked[1]!.atMs - n.asked[0]!.atMs).toBeLessThanOrEqual(5 * 60_000 + 20_000);
    expect(w.agent.niwDoneByCheck).toBe(1);
    expect(n.copies).toHaveLength(1);
    expect(inQueue(w)).toBe(0);
    await w.agent.stop();
  });

  it("acknowledges an unconfirmed job whose node reports it finished (its RequestDone lost), and does not run it again", async () => {
    const w = await world({ kvUtilization: 0.05 });
    w.send();
    await w.clock.advance(10);
    const n = lossyNode(w, () => true);
    await queueJob(w, "r1");
    await w.clock.advance(2_000);
    n.finishSilently("r1"); // done in 2 s; its RequestDone is lost
    await w.seconds(60);
    expect(n.asked.map((a) => a.ids)).toEqual([["r1"]]);
    expect(w.agent.niwDoneByCheck).toBe(1);
    expect(w.agent.niwHandoffsLost).toBe(0);
    expect(n.copies).toHaveLength(1);
    expect(inQueue(w)).toBe(0);
    await w.agent.stop();
  });
});

describe("region agent NIW release count", () => {
  it("counts a batch job once in niwReleased when its instance hands it back and it is released again; the job keeps its body and listener", async () => {
    const w = await world({ kvUtilization: 0.05 });
    w.send();
    await w.clock.advance(10);
    const released: string[] = [];
    const sent: Payload<typeof InferenceRequest>[] = [];
    const node = w.broker.connect("n1");
    node.subscribe(InferenceRequest.subject.build({ node: "n1" }), (m) => {
      const d = m.data();
      if (d.ok) {
        released.push((d.value as Payload<typeof InferenceRequest>).requestId);
        sent.push(d.value as Payload<typeof InferenceRequest>);
      }
    });
    const router = w.broker.connect("router");
    const job = (attempt?: number) =>
      router.durablePublish(
        NIW_STREAM,
        NiwJob.subject.build({ region: "westus", model: "llama3.2-3b" }),
        envelope(NiwJob, {
          ...NiwJob.sample(),
          jobId: "j-r7",
          requestId: "r7",
          model: "llama3.2-3b",
          originRegion: "westus",
          arrivalMs: 0,
          deadlineMs: 86_400_000,
          enqueuedAtMs: w.clock.now(),
          body: { prompt: "summarise this", max_tokens: 16 },
          streamTo: "gateway-westus-1",
          ...(attempt === undefined ? {} : { attempt }),
        }),
      );
    await job();
    await w.clock.advance(100);
    // The instance drained before starting it: the fleet re-routes it, the router queues it again.
    await job(1);
    await w.clock.advance(100);
    expect(released).toEqual(["r7", "r7"]);
    // The engine gets the client's prompt, and the output streams to the gateway that queued the job.
    expect(sent[0]).toMatchObject({ body: { prompt: "summarise this" }, streamTo: "gateway-westus-1" });
    expect(w.agent.actions.niwReleased).toBe(1);
    expect(w.agent.niwReleasedAgain).toBe(1);
    await w.agent.stop();
  });
});

describe("region agent NIW acknowledgement", () => {
  it("acknowledges a released job only on its RequestDone, and queues a job again when its instance is lost", async () => {
    const w = await world({ kvUtilization: 0.05 });
    w.send();
    await w.clock.advance(10);
    const released: { requestId: string; instanceId: string; attempt?: number | undefined }[] = [];
    const nodes = w.broker.connect("nodes");
    for (const n of ["n1", "n2"])
      nodes.subscribe(InferenceRequest.subject.build({ node: n }), (m) => {
        const d = m.data();
        if (d.ok) {
          const r = d.value as Payload<typeof InferenceRequest>;
          released.push({ requestId: r.requestId, instanceId: r.instanceId, attempt: r.attempt });
        }
      });
    await queueJob(w, "r1");
    await queueJob(w, "r2");
    await w.clock.advance(100);
    expect(released.map((r) => [r.requestId, r.instanceId])).toEqual([
      ["r1", "i1"],
      ["r2", "i1"],
    ]);
    // r1 finishes; r2 is still running on i1 when i1 goes silent (its node died).
    const done = w.broker.connect("node-done");
    done.publish(
      RequestDone.subject.build({ region: "westus", model: "llama3.2-3b" }),
      envelope(RequestDone, {
        ...RequestDone.sample(),
        requestId: "r1",
        model: "llama3.2-3b",
        tier: "niw",
        region: "westus",
        instanceId: "i1",
        outcome: "ok",
      }),
    );
    await w.clock.advance(100);
    // Another instance serves; i1 reports no more. Past the stale bound r2 is queued again and released there.
    const i2 = () => w.send({ instanceId: "i2", nodeId: "n2" });
    for (let t = 0; t < 70; t++) {
      i2();
      await w.clock.advance(1_000);
    }
    expect(w.agent.niwRequeued).toBe(1);
    expect(released.slice(2)).toEqual([{ requestId: "r2", instanceId: "i2", attempt: 1 }]);
    // In the work queue: r1 is gone (acknowledged when done); r2 is still there, held, until its RequestDone.
    const queued = () => [...w.broker.durable.get(NIW_STREAM.name)!.messages.values()].map((m) => m.subject);
    expect(queued()).toHaveLength(1);
    done.publish(
      RequestDone.subject.build({ region: "westus", model: "llama3.2-3b" }),
      envelope(RequestDone, {
        ...RequestDone.sample(),
        requestId: "r2",
        model: "llama3.2-3b",
        tier: "niw",
        region: "westus",
        instanceId: "i2",
        outcome: "ok",
      }),
    );
    await w.clock.advance(100);
    expect(queued()).toHaveLength(0);
    await w.agent.stop();
  });
});

describe("region agent status", () => {
  it("reports a held job's backlog by deadline with the escalation bound the planner paces it against", async () => {
    // Full instances: the job is held (its deadline is a day away, beyond the 4 h escalation bound).
    const w = await world({ kvUtilization: 0.95 });
    w.send();
    await w.clock.advance(10);
    await queueJob(w, "r1");
    await w.clock.advance(100);
    const ep = w.agent.status().endpoints.find((e) => e.model === "llama3.2-3b")!;
    expect(ep.niwQueueDepth).toBe(1);
    expect(ep.niwEscalateBeforeMinutes).toBe(240);
    // Cumulative buckets: nothing due within 12 h, the job within 24 h.
    expect(ep.niwBacklog?.find((b) => b.withinMinutes === 720)?.jobs).toBe(0);
    expect(ep.niwBacklog?.find((b) => b.withinMinutes === 1440)?.jobs).toBe(1);
    await w.agent.stop();
  });
});
