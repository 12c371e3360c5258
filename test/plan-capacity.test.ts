import {
  deadlineRate,
  forecastErrors,
  PlannerActor,
  type PlannerOptions,
  preloadSolvers,
  valleyFillRate,
} from "@sageserve/planner";
import {
  DemandReport,
  envelope,
  LoadReport,
  type Payload,
  Plan,
  RegionStatus,
  VmCommand,
} from "@sageserve/protocol";
import { RegionAgentActor } from "@sageserve/region-agent";
import { MemoryBroker, VirtualClock } from "@sageserve/runtime";
import { builtinCapacityModel } from "@sageserve/sim";
import { beforeAll, describe, expect, it } from "vitest";

/**
 * The plan and the agents that carry it out count capacity with one model (the SLO knees of the engine
 * sweep): for the same demand they reach the same number of instances. Virtual time, in-memory bus.
 */
const MODEL = "llama2-70b";
const START = Date.UTC(2025, 0, 6);

async function world(opts: Partial<PlannerOptions> = {}) {
  const clock = new VirtualClock({ startMs: START });
  const broker = new MemoryBroker(clock);
  const capacity = builtinCapacityModel(0.5);
  const planner = new PlannerActor(
    { bus: broker.connect("planner"), clock },
    {
      models: [MODEL],
      regions: ["eastus", "westus"],
      capacity: {},
      capacityModel: capacity,
      gpuTypes: [{ id: "h100", pricePerHour: 98.32 }],
      supply: { eastus: { h100: 100 }, westus: { h100: 100 } },
      routes: { eastus: ["westus"], westus: ["eastus"] },
      strategy: "lt-i",
      schedule: "0 0 1 1 *", // effectively never: plans come from the start-up timer and on demand
      ...opts,
    },
  );
  const agent = new RegionAgentActor(
    { bus: broker.connect("agent"), clock },
    {
      region: "eastus",
      models: [MODEL],
      mode: "unified",
      gpuTypes: ["h100"],
      planStrategy: "lt-i",
      capacity,
      scalingIntervalMs: 3_600_000,
      statusIntervalMs: 0,
    },
  );
  await planner.start();
  await agent.start();
  const plans: Payload<typeof Plan>[] = [];
  const client = broker.connect("client");
  client.subscribe(Plan.subject.build({}), (m) => {
    const d = m.data();
    if (d.ok) plans.push(d.value as Payload<typeof Plan>);
  });
  /** One minute of interactive demand per region at `rps` with 1,000-token prompts and 250-token outputs. */
  const demand = (windowStartMs: number, rps: Record<string, number>) => {
    for (const [region, r] of Object.entries(rps)) {
      const requests = Math.round(r * 60);
      client.publish(
        DemandReport.subject.build({ region, model: MODEL }),
        envelope(DemandReport, {
          region,
          model: MODEL,
          windowStartMs,
          windowMs: 60_000,
          byTier: {
            "iw-fast": { requests, inputTokens: requests * 1_000, outputTokens: requests * 250 },
            "iw-normal": { requests: 0, inputTokens: 0, outputTokens: 0 },
            niw: { requests: 0, inputTokens: 0, outputTokens: 0 },
          },
        }),
      );
    }
  };
  const load = (instanceId: string, region: string, state: Payload<typeof LoadReport>["state"]) =>
    client.publish(
      LoadReport.subject.build({ region, model: MODEL, instance: instanceId }),
      envelope(LoadReport, {
        instanceId,
        nodeId: `n-${instanceId}`,
        region,
        model: MODEL,
        gpuType: "h100",
        state,
        kvUtilization: 0.1,
        memoryUtilization: 0.1,
        running: 1,
        waiting: 0,
        outstandingTokens: 0,
        tokensPerSecond: 0,
        kvCapacityTokens: 100_000,
        atMs: clock.now(),
      }),
    );
  /** Minutes of constant demand, each reported at its end as the routers do. */
  const minutes = async (n: number, rps: Record<string, number>) => {
    for (let i = 0; i < n; i++) {
      const start = Math.floor(clock.now() / 60_000) * 60_000;
      await clock.advance(60_000);
      demand(start, rps);
      await clock.advance(1);
    }
  };
  /** A region agent's status with this NIW backlog for MODEL. */
  const status = (
    region: string,
    niwBacklog: { withinMinutes: number; jobs: number; tokens: number }[],
    niwEscalateBeforeMinutes?: number,
  ) =>
    client.publish(
      RegionStatus.subject.build({ region }),
      envelope(RegionStatus, {
        region,
        atMs: clock.now(),
        endpoints: [
          {
            model: MODEL,
            instances: { serving: 1 },
            memoryUtilization: 0.1,
            niwQueueDepth: niwBacklog.at(-1)?.jobs ?? 0,
            niwBacklog,
            ...(niwEscalateBeforeMinutes !== undefined ? { niwEscalateBeforeMinutes } : {}),
          },
        ],
      }),
    );
  return { clock, planner, agent, plans, demand, load, minutes, capacity, status };
}

beforeAll(async () => {
  await preloadSolvers();
});

describe("one capacity model for the planner and the region agents", () => {
  it("the plan and the agent count the same instances for the same demand", async () => {
    const w = await world({ firstPlanAfterMs: -1 });
    w.load("i1", "eastus", "serving");
    w.load("i2", "westus", "serving");
    await w.minutes(5, { eastus: 30, westus: 12 });
    await w.planner.plan();
    await w.clock.advance(1);
    const tps = (rps: number) => rps * 1_250;
    const mix = { meanInputTokens: 1_000, meanOutputTokens: 250 };
    const want = (rps: number) => w.capacity.instancesFor(MODEL, "h100", tps(rps), mix);
    expect(want(30)).toBeGreaterThan(4); // a real count, not the 2-instance floor
    const plan = w.plans.at(-1)!;
    const target = (region: string) =>
      plan.targets.filter((t) => t.region === region).reduce((a, t) => a + t.instances, 0);
    expect(target("eastus")).toBe(want(30));
    expect(target("westus")).toBe(want(12));
    expect(w.agent.demandFloor(MODEL, "h100")).toEqual({ up: want(30), hold: want(30) });
  });

  it("the agent's demand floor follows rising demand to its latest minute, falling demand at the mean", async () => {
    const w = await world({ firstPlanAfterMs: -1 });
    w.load("i1", "eastus", "serving");
    const mix = { meanInputTokens: 1_000, meanOutputTokens: 250 };
    const want = (rps: number) => w.capacity.instancesFor(MODEL, "h100", rps * 1_250, mix);
    // A ramp: the 5 minutes' mean (20 req/s) lags the latest minute (30) by two minutes.
    for (const rps of [10, 15, 20, 25, 30]) await w.minutes(1, { eastus: rps });
    expect(want(30)).toBeGreaterThan(want(20));
    expect(w.agent.demandFloor(MODEL, "h100")).toEqual({ up: want(30), hold: want(30) });
    // Falling again: scale-ups follow the mean of the last 5 minutes; the hold keeps the 10 minutes' peak.
    for (const rps of [25, 20, 15, 10, 5]) await w.minutes(1, { eastus: rps });
    expect(w.agent.demandFloor(MODEL, "h100")).toEqual({ up: want(15), hold: want(30) });
  });

  it("makes a first plan at start-up from the history there is, and none before any demand", async () => {
    const quiet = await world({ firstPlanAfterMs: 120_000 });
    await quiet.clock.advance(180_000);
    expect(quiet.plans).toHaveLength(0);

    const w = await world({ firstPlanAfterMs: 150_000 });
    w.load("i1", "eastus", "serving");
    await w.minutes(2, { eastus: 20 });
    expect(w.plans).toHaveLength(0);
    await w.clock.advance(60_000);
    expect(w.plans).toHaveLength(1);
    // All of eastus' demand is planned for: at least the pool that carries it, at most that plus westus'
    // minimum instances (part of the demand may be served there; two pools carry less than one).
    const pool = w.capacity.instancesFor(MODEL, "h100", 20 * 1_250, {
      meanInputTokens: 1_000,
      meanOutputTokens: 250,
    });
    const planned = w.plans[0]!.targets.reduce((a, t) => a + t.instances, 0);
    expect(planned).toBeGreaterThanOrEqual(pool);
    expect(planned).toBeLessThanOrEqual(pool + 2);
  });

  it("re-plans at once when a region loses every instance, and plans nothing there while it is down", async () => {
    const w = await world({ firstPlanAfterMs: -1 });
    w.load("e1", "eastus", "serving");
    w.load("e2", "eastus", "serving");
    w.load("w1", "westus", "serving");
    await w.minutes(3, { eastus: 20, westus: 5 });
    await w.planner.plan();
    await w.clock.advance(1);
    expect(w.plans).toHaveLength(1);
    w.load("e1", "eastus", "failed");
    await w.clock.advance(1);
    expect(w.plans).toHaveLength(1); // one instance left: not a region failure
    w.load("e2", "eastus", "failed");
    await w.clock.advance(1_000);
    expect(w.planner.replans.map((r) => r.reason)).toEqual(["region eastus has no live instance"]);
    expect(w.plans).toHaveLength(2);
    const plan = w.plans[1]!;
    expect(plan.targets.filter((t) => t.region === "eastus").every((t) => t.instances === 0)).toBe(true);
    // eastus' demand is served from westus.
    const moved = plan.routing.find((r) => r.from === "eastus" && r.to === "westus");
    expect(moved?.fraction).toBeCloseTo(1);
    const westus = plan.targets.filter((t) => t.region === "westus").reduce((a, t) => a + t.instances, 0);
    expect(westus).toBe(
      w.capacity.instancesFor(MODEL, "h100", 25 * 1_250, { meanInputTokens: 1_000, meanOutputTokens: 250 }),
    );
  });

  it("re-plans when demand runs far above the forecast, at most once per gap", async () => {
    const w = await world({ firstPlanAfterMs: -1, replanOnForecastError: 0.5, replanMinGapMs: 10 * 60_000 });
    w.load("e1", "eastus", "serving");
    await w.minutes(10, { eastus: 5 });
    await w.planner.plan();
    await w.clock.advance(1);
    await w.minutes(8, { eastus: 15 });
    expect(w.planner.replans).toHaveLength(0); // inside the gap since the last plan
    await w.minutes(6, { eastus: 15 });
    expect(w.planner.replans).toHaveLength(1);
    expect(w.planner.replans[0]!.reason).toMatch(/demand of llama2-70b\|eastus/);
    const last = w.plans.at(-1)!;
    expect(last.targets.reduce((a, t) => a + t.instances, 0)).toBeGreaterThanOrEqual(
      w.capacity.instancesFor(MODEL, "h100", 15 * 1_250, { meanInputTokens: 1_000, meanOutputTokens: 250 }),
    );
  });
});

describe("forecast error over the whole run", () => {
  it("is MAPE over windows with demand and sMAPE over windows with either, excluding windows past the end", () => {
    const r = (fromMs: number, forecast: number, actual: number | undefined) => ({
      model: "m",
      region: "r",
      fromMs,
      toMs: fromMs + 60,
      forecast,
      ...(actual === undefined ? {} : { actual }),
    });
    const e = forecastErrors(
      [r(0, 110, 100), r(60, 90, 100), r(120, 10, 0), r(180, 50, undefined), r(240, 1, 1)],
      200,
    );
    const s = e.get("m|r")!;
    expect(s.windows).toBe(3);
    expect(s.mape).toBeCloseTo(0.1); // (0.1 + 0.1) / 2; the window with no demand has no APE
    expect(s.smape).toBeCloseTo((20 / 210 + 20 / 190 + 2) / 3);
  });
});

describe("batch work in the plan", () => {
  it("needs the rate at which the most pressing deadline bucket finishes a margin early", () => {
    // 36 M tokens due within 2 h, 72 M within 4 h: with a 60-minute margin, 36 M in 1 h = 10 k tokens/s,
    // 72 M in 3 h = 6.7 k: the first bucket decides.
    const backlog = [
      { withinMinutes: 120, tokens: 36_000_000 },
      { withinMinutes: 240, tokens: 72_000_000 },
    ];
    expect(deadlineRate(backlog, 60)).toBeCloseTo(10_000);
    expect(deadlineRate([], 60)).toBe(0);
    // A bucket already inside the margin gets 5 minutes, not a division by zero or a negative time.
    expect(deadlineRate([{ withinMinutes: 30, tokens: 3_000_000 }], 60)).toBeCloseTo(10_000);
  });

  it("valley filling: batch capacity goes where the interactive forecast is low, as late as the deadlines allow", () => {
    const flat = Array.from({ length: 1440 }, () => 5_000);
    const backlog = [
      { withinMinutes: 120, tokens: 36_000_000 },
      { withinMinutes: 240, tokens: 72_000_000 },
    ];
    // A flat forecast: the even rate.
    expect(valleyFillRate(backlog, flat, 60, 65)).toBeCloseTo(deadlineRate(backlog, 60), 6);
    // Six hours of peak (10 k tokens/s), then six of valley (2 k): 100 M tokens due in 13 h (12 h with the
    // margin) fit under a level below the peak, so the peak window gets nothing and the valley all of it.
    const day = Array.from({ length: 1440 }, (_, t) => (t % 720 < 360 ? 10_000 : 2_000));
    const late = [{ withinMinutes: 13 * 60, tokens: 100_000_000 }];
    expect(valleyFillRate(late, day, 60, 65)).toBe(0);
    const inValley = valleyFillRate(late, day.slice(360), 60, 65);
    // 100 M over the 6 h of valley: 4,630 tokens/s on top of the 2 k forecast.
    expect(inValley).toBeCloseTo(100_000_000 / (360 * 60), 0);
    // Staggered: 20 M of it due within 3 h must run in the peak now, at the even rate for that bucket.
    const staggered = [
      { withinMinutes: 180, tokens: 20_000_000 },
      { withinMinutes: 13 * 60, tokens: 100_000_000 },
    ];
    expect(valleyFillRate(staggered, day, 60, 65)).toBeCloseTo(20_000_000 / (120 * 60), 0);
    // Enough work to rise above the peak: the peak runs batch too, less than the valley does.
    const big = [{ withinMinutes: 13 * 60, tokens: 600_000_000 }];
    const peakRate = valleyFillRate(big, day, 60, 65);
    const valleyRate = valleyFillRate(big, day.slice(360), 60, 65);
    expect(peakRate).toBeGreaterThan(0);
    expect(valleyRate - peakRate).toBeCloseTo(8_000, 0);
    // Every bucket still meets its deadline: the room under the level over 12 h holds the 600 M.
    const level = valleyRate + 2_000;
    const room = day.slice(0, 720).reduce((a, x) => a + Math.max(0, level - x) * 60, 0);
    expect(room).toBeGreaterThanOrEqual(600_000_000 * (1 - 1e-9));
    expect(valleyFillRate([], day, 60, 65)).toBe(0);
  });

  it("plans the backlog's deadline-driven batch capacity instead of a flat share, and publishes it", async () => {
    const w = await world({ firstPlanAfterMs: -1 });
    w.load("e1", "eastus", "serving");
    await w.minutes(3, { eastus: 2 });
    const quiet = w.capacity.instancesFor(MODEL, "h100", 2 * 1_250, {
      meanInputTokens: 1_000,
      meanOutputTokens: 250,
    });
    w.status("eastus", [{ withinMinutes: 180, jobs: 60_000, tokens: 60_000 * 1_250 }]);
    await w.clock.advance(1);
    await w.planner.plan();
    await w.clock.advance(1);
    const plan = w.plans.at(-1)!;
    const need = (60_000 * 1_250) / (120 * 60); // due within 3 h, done 1 h early
    expect(plan.niw).toEqual([{ model: MODEL, region: "eastus", tokensPerSecond: Math.round(need) }]);
    const eastus = plan.targets.filter((t) => t.region === "eastus").reduce((a, t) => a + t.instances, 0);
    expect(eastus).toBeGreaterThan(quiet);
    // The agent escalates a job 60 minutes before its deadline: the plan releases the backlog a margin
    // before that point, not before the deadline — 2 h less 1 h, twice the rate.
    w.status("eastus", [{ withinMinutes: 180, jobs: 60_000, tokens: 60_000 * 1_250 }], 60);
    await w.clock.advance(1);
    await w.planner.plan();
    await w.clock.advance(1);
    expect(w.plans.at(-1)!.niw).toEqual([
      { model: MODEL, region: "eastus", tokensPerSecond: Math.round((60_000 * 1_250) / (60 * 60)) },
    ]);
    // Batch capacity stays in its region (only interactive work is routed): eastus alone carries it.
    expect(eastus).toBeGreaterThanOrEqual(
      // Batch work may run an instance up to its knee: it costs the target utilisation's share.
      w.capacity.instancesFor(MODEL, "h100", need * w.capacity.targetUtilization, {
        meanInputTokens: 1_000,
        meanOutputTokens: 250,
      }),
    );
  });
});

describe("LT-U ahead of the ramp", () => {
  it("spends the plan's scale-ups one boot lead before the forecast needs them, at low utilisation", async () => {
    const clock = new VirtualClock({ startMs: START });
    const broker = new MemoryBroker(clock);
    const capacity = builtinCapacityModel(0.5);
    const agent = new RegionAgentActor(
      { bus: broker.connect("agent"), clock },
      {
        region: "eastus",
        models: [MODEL],
        mode: "unified",
        gpuTypes: ["h100"],
        planStrategy: "lt-u",
        capacity,
        scalingIntervalMs: 5_000,
        statusIntervalMs: 0,
        staleAfterMs: 3_600_000,
      },
    );
    await agent.start();
    const client = broker.connect("client");
    const boots: number[] = [];
    client.subscribe(VmCommand.subject.build({ region: "eastus" }), (m) => {
      const d = m.data();
      if (!d.ok) return;
      const cmd = d.value as Payload<typeof VmCommand>;
      if (cmd.action !== "boot") return;
      boots.push(clock.now() - START);
      m.respond(
        envelope(VmCommand, {
          commandId: cmd.commandId,
          accepted: true,
          nodeId: `n${boots.length}`,
          etaMs: 600_000,
        }),
      );
    });
    const serving = () => {
      for (const id of ["i1", "i2"])
        client.publish(
          LoadReport.subject.build({ region: "eastus", model: MODEL, instance: id }),
          envelope(LoadReport, {
            instanceId: id,
            nodeId: `node-${id}`,
            region: "eastus",
            model: MODEL,
            gpuType: "h100",
            state: "serving",
            kvUtilization: 0.05,
            memoryUtilization: 0.05,
            running: 1,
            waiting: 0,
            outstandingTokens: 0,
            tokensPerSecond: 0,
            kvCapacityTokens: 200_000,
            atMs: clock.now(),
          }),
        );
    };
    serving();
    await clock.advance(1);
    // Quiet for 15 minutes, then a ramp to 6× (what 8 instances carry): the forecast knows when.
    const per = capacity.plannedTokensPerSecond(MODEL, "h100")!;
    const quiet = Math.floor(1.5 * per);
    const busy = Math.floor(7.5 * per);
    client.publish(
      Plan.subject.build({}),
      envelope(Plan, {
        planId: "p-test",
        createdAtMs: clock.now(),
        windowStartMs: clock.now(),
        windowEndMs: clock.now() + 3_600_000,
        strategy: "lt-u",
        targets: [{ model: MODEL, region: "eastus", gpuType: "h100", instances: 8, delta: 6 }],
        routing: [],
        forecast: [
          {
            model: MODEL,
            region: "eastus",
            tokensPerSecond: busy,
            profile: [quiet, quiet, quiet, busy, busy, busy, busy, busy, busy, busy, busy, busy],
            binMinutes: 5,
          },
        ],
        solver: { status: "optimal", objective: 1, solveMs: 1 },
        notes: [],
      }),
    );
    for (let t = 0; t < 14 * 60; t += 5) {
      serving();
      await clock.advance(5_000);
    }
    // Utilisation stayed at 5 %: LT-U's budget alone would never have been spent. The forecast's clock
    // spent it 155 s boot + 60 s load + one tick before minute 15: from 11:25 on, not before.
    const lead = 155_000 + 60_000 + 5_000;
    // As many as the pool that carries the ramp needs beyond the 2 serving (pooled: fewer than 7.5 lone knees).
    const need = capacity.instancesFor(MODEL, "h100", busy);
    expect(need).toBeGreaterThan(4);
    expect(boots.length).toBe(need - 2);
    expect(Math.min(...boots)).toBeGreaterThanOrEqual(15 * 60_000 - lead - 5_000);
    expect(Math.max(...boots)).toBeLessThan(15 * 60_000 - lead + 10_000);
    expect(agent.actions.aheadUp).toBe(need - 2);
  });
});
