import { envelope, LoadReport, type Payload, type PromptTiming, RequestDone } from "@sageserve/protocol";
import { MemoryBroker, VirtualClock } from "@sageserve/runtime";
import { describe, expect, it } from "vitest";
import { DashboardActor } from "./observer.js";

/** Model "m": 0.2 ms of idle prefill per prompt token on "fast" GPUs, 0.5 ms on "slow"; measured up to 4,000 tokens. */
const timing: PromptTiming = {
  has: (model, gpu) => model === "m" && (gpu === "fast" || gpu === "slow"),
  prefillMs: (_m, gpu, p) => p * (gpu === "fast" ? 0.2 : 0.5),
  measuredPromptTokens: () => 4_000,
};

let seq = 0;
const done = (instanceId: string, inputTokens: number, ttftMs: number): Payload<typeof RequestDone> => ({
  requestId: `r${seq++}`,
  model: "m",
  tier: "iw-fast",
  region: "westus",
  instanceId,
  outcome: "ok",
  inputTokens,
  outputTokens: 10,
  arrivalMs: 0,
  ttftMs,
  tbtMs: 20,
  e2eMs: 2_000,
});

async function observe(promptTiming?: PromptTiming) {
  const clock = new VirtualClock();
  const broker = new MemoryBroker(clock);
  const d = new DashboardActor(
    { bus: broker.connect("dashboard"), clock },
    { port: 0, summaryMs: 0, ...(promptTiming ? { promptTiming } : {}) },
  );
  await d.start();
  const bus = broker.connect("node");
  for (const [instance, gpuType] of [
    ["i-fast", "fast"],
    ["i-slow", "slow"],
  ] as const)
    bus.publish(
      LoadReport.subject.build({ region: "westus", model: "m", instance }),
      envelope(LoadReport, {
        ...LoadReport.sample(),
        instanceId: instance,
        model: "m",
        gpuType,
        atMs: clock.now(),
      }),
    );
  await clock.advance(10);
  // 3,000 tokens: 600 ms idle on "fast", 1,500 ms on "slow" (infeasible for IW-fast's 1 s);
  // 5,000 tokens are beyond the measured 4,000.
  for (const r of [
    done("i-slow", 3_000, 1_600), // infeasible, missed
    done("i-fast", 3_000, 700), // met
    done("i-fast", 5_000, 1_100), // feasible (1,000 ms ≤ 1 s idle), missed, beyond the profile
    done("i-gone", 9_000, 300), // an instance never reported: not judged, met
  ])
    bus.publish(RequestDone.subject.build({ region: "westus", model: "m" }), envelope(RequestDone, r));
  await clock.advance(2_100);
  return d;
}

describe("dashboard SLO feasibility", () => {
  it("judges each request on the GPU type its instance reported: attainment over all and over feasible", async () => {
    const d = await observe(timing);
    const s = d.summary();
    expect(s.tiers["iw-fast"]).toMatchObject({
      completed: 4,
      sloMet: 2,
      attainment: 0.5,
      infeasible: 1,
      infeasibleShare: 0.25,
      attainmentFeasible: 2 / 3,
    });
    expect(s.tiers.niw).toMatchObject({ attainment: null, infeasible: 0, attainmentFeasible: null });
    expect(s.feasibilityJudged).toBe(true);
    expect(s.beyondProfile).toEqual({ m: 1 });
    const last = d.state().points.at(-1)!;
    expect(last.attainment["iw-fast"]).toBe(0.5);
    expect(last.attainmentFeasible["iw-fast"]).toBeCloseTo(2 / 3);
    const page = await (await fetch(d.url)).text();
    expect(page).toContain("SLO (feasible)");
    expect(page).toContain("feasible only: ");
    await d.stop();
  });

  it("without a performance model every request counts as feasible", async () => {
    const d = await observe();
    expect(d.summary().tiers["iw-fast"]).toMatchObject({
      attainment: 0.5,
      infeasible: 0,
      attainmentFeasible: 0.5,
    });
    expect(d.summary()).toMatchObject({ feasibilityJudged: false, beyondProfile: {} });
    await d.stop();
  });
});

describe("dashboard SLO over time", () => {
  it("shows the last 5 minutes apart from since the start: a burst of misses long past no longer pins it", async () => {
    const clock = new VirtualClock();
    const broker = new MemoryBroker(clock);
    const d = new DashboardActor({ bus: broker.connect("dashboard"), clock }, { port: 0, summaryMs: 0 });
    await d.start();
    const bus = broker.connect("node");
    const publish = (ttftMs: number) =>
      bus.publish(
        RequestDone.subject.build({ region: "westus", model: "m" }),
        envelope(RequestDone, done("i-fast", 100, ttftMs)),
      );
    for (let i = 0; i < 3; i++) publish(5_000); // a burst of IW-fast misses
    await clock.advance(10 * 60_000);
    publish(200);
    await clock.advance(2_100);
    const fast = d.summary().tiers["iw-fast"];
    expect(fast.attainment).toBe(0.25);
    expect(fast.attainmentRecent).toBe(1);
  });
});
