import { envelope, type Payload, type PromptTiming, RequestDone } from "@sageserve/protocol";
import { MemoryBroker, VirtualClock } from "@sageserve/runtime";
import { describe, expect, it } from "vitest";
import { MetricsCollector } from "./collector.js";
import { sloByModelSection } from "./report.js";

/** Model "m" on GPU "g": 0.5 ms of idle prefill per prompt token, measured up to 4,000 tokens. */
const timing: PromptTiming = {
  has: (model, gpu) => model === "m" && gpu === "g",
  prefillMs: (_m, _g, p) => 0.5 * p,
  measuredPromptTokens: () => 4_000,
};

let seq = 0;
const done = (over: Partial<Payload<typeof RequestDone>>): Payload<typeof RequestDone> => ({
  requestId: `r${seq++}`,
  model: "m",
  tier: "iw-fast",
  region: "westus",
  instanceId: "i-g",
  outcome: "ok",
  inputTokens: 1_000,
  outputTokens: 10,
  arrivalMs: 0,
  ttftMs: 500,
  tbtMs: 20,
  e2eMs: 1_000,
  ...over,
});

async function collect(msgs: Payload<typeof RequestDone>[], trackIds = false) {
  const clock = new VirtualClock();
  const broker = new MemoryBroker(clock);
  const c = new MetricsCollector(
    { bus: broker.connect("collector"), clock },
    { ttftMs: { "iw-fast": 1_000, "iw-normal": 60_000 } },
    trackIds,
    { timing, gpuOf: (id) => (id === "i-g" ? "g" : undefined) },
  );
  await c.start();
  const bus = broker.connect("fleet");
  for (const d of msgs)
    bus.publish(RequestDone.subject.build({ region: d.region, model: d.model }), envelope(RequestDone, d));
  await clock.advance(10);
  return c;
}

describe("MetricsCollector", () => {
  it("counts SLO attainment per tier, judging feasibility by the serving GPU's idle prefill", async () => {
    const c = await collect([
      done({ ttftMs: 900 }), // met
      done({ ttftMs: 1_200 }), // missed, feasible (500 ms idle)
      done({ inputTokens: 3_000, ttftMs: 1_600 }), // infeasible (1,500 ms idle), missed
      done({ inputTokens: 5_000, ttftMs: 2_600 }), // infeasible and beyond the measured 4,000 tokens
      done({ instanceId: "i-unknown", inputTokens: 9_000, ttftMs: 800 }), // GPU unknown: not judged, met
      done({ outcome: "failed", ttftMs: 0 }), // a failure is a miss
      done({ tier: "iw-normal", ttftMs: 30_000 }), // met (60 s target)
    ]);
    const f = c.tiers["iw-fast"];
    expect(f.completed).toBe(5);
    expect(f.failed).toBe(1);
    expect(f.slo).toEqual({ requests: 6, sloMet: 2, infeasible: 2, sloMetFeasible: 2 });
    expect(c.tiers["iw-normal"].slo).toEqual({ requests: 1, sloMet: 1, infeasible: 0, sloMetFeasible: 1 });
    expect(c.beyondProfile.get("m")).toBe(1);
    // The same counts by model (one model here), each tier apart.
    expect(c.sloByModel.get("m")!["iw-fast"]).toEqual(f.slo);
    expect(c.sloByModel.get("m")!["iw-normal"]).toEqual(c.tiers["iw-normal"].slo);
    expect(c.finished).toBe(7);
    // Latencies of completed requests only (the failure's 0 is not a TTFT).
    expect(f.ttft.count).toBe(5);
    expect(f.ttft.max).toBe(2_600);
  });

  it("keeps SLO counts apart per model", async () => {
    const c = await collect([
      done({ ttftMs: 900 }),
      done({ model: "big", instanceId: "i-x", ttftMs: 1_500 }),
      done({ model: "big", instanceId: "i-x", ttftMs: 800 }),
    ]);
    expect(c.sloByModel.get("m")!["iw-fast"]).toMatchObject({ requests: 1, sloMet: 1 });
    expect(c.sloByModel.get("big")!["iw-fast"]).toMatchObject({ requests: 2, sloMet: 1 });
    expect(c.sloByModel.get("big")!.niw.requests).toBe(0);
    // In the report: models in name order, attainment per tier, a tier without requests counted as met.
    const section = sloByModelSection(c)!;
    expect(Object.keys(section)).toEqual(["big", "m"]);
    expect(section.big!["iw-fast"]).toEqual({ requests: 2, attainment: 0.5, attainmentFeasible: 0.5 });
    expect(section.big!.niw).toEqual({ requests: 0, attainment: 1, attainmentFeasible: 1 });
  });

  it("counts an NIW deadline miss for a late or failed batch job, not for one on time", async () => {
    const c = await collect([
      done({ tier: "niw", arrivalMs: 0, e2eMs: 5_000, deadlineMs: 10_000 }), // on time
      done({ tier: "niw", arrivalMs: 0, e2eMs: 15_000, deadlineMs: 10_000 }), // late
      done({ tier: "niw", outcome: "failed", deadlineMs: 10_000 }), // failed
    ]);
    expect(c.tiers.niw.deadlineMisses).toBe(2);
    expect(c.tiers.niw.slo.sloMet).toBe(1);
    expect(c.tiers.niw.completed).toBe(2);
  });

  it("with trackIds, counts a second completion of the same request as a duplicate, not twice", async () => {
    const a = done({});
    const c = await collect([a, a, done({})], true);
    expect(c.duplicates).toBe(1);
    expect(c.finished).toBe(2);
    expect([...c.doneIds].sort()).toEqual([a.requestId, `r${seq - 1}`].sort());
  });
});
