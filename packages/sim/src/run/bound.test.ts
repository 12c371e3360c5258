import { CapacityModel } from "@sageserve/protocol";
import { describe, expect, it } from "vitest";
import { drain, type SimRequest, type Workload } from "../workload/types.js";
import { boundedWorkload, CapacityBound } from "./bound.js";
import { runSimulation, workloadCapacityBound } from "./simulate.js";

// One instance of "m" on h100 carries 1 request/s (200 tokens/s) at its knee and 4 flat out; a pool of N
// carries 4 − 3/√N each. On a100 it carries a tenth of that.
const CAP = new CapacityModel({
  m: {
    h100: [{ meanInputTokens: 100, meanOutputTokens: 100, rps: 1, saturationRps: 4, default: true }],
    a100: [{ meanInputTokens: 100, meanOutputTokens: 100, rps: 0.1, saturationRps: 0.4, default: true }],
  },
});

let nextId = 0;
/** `n` requests of 100 + 100 tokens spread over minute `minute` of `region`. */
function minute(
  minute: number,
  n: number,
  region = "east",
  tier: SimRequest["tier"] = "iw-fast",
): SimRequest[] {
  return Array.from({ length: n }, (_, i) => ({
    id: nextId++,
    arrivalMs: minute * 60_000 + Math.floor((i * 60_000) / n),
    model: "m",
    region,
    tier,
    inputTokens: 100,
    outputTokens: 100,
    ...(tier === "niw" ? { deadlineMs: 24 * 3600_000 } : {}),
  }));
}

describe("CapacityBound", () => {
  it("holds each minute the capacity model's count for its interactive demand, nothing when idle", () => {
    const b = new CapacityBound();
    b.add(minute(0, 60)); // 1 req/s: the knee of one instance
    b.add(minute(2, 180)); // 3 req/s: two instances pooled carry 2 × (4 − 3/√2) = 7.76
    const r = b.result(CAP, ["h100", "a100"])!;
    // (1 + 0 + 2) instance-minutes of an 8-GPU VM on the cheaper type (h100).
    expect(r.interactive).toBeCloseTo((3 / 60) * 8, 6);
    expect(r.batch).toBe(0);
    expect(r.total).toBe(r.interactive);
    expect(r.byModel).toEqual({ m: r.total });
  });

  it("counts batch work only beyond what the interactive instances complete flat out", () => {
    // Spare at saturation (800 tokens/s per instance): minute 0 (800 − 200) × 60 + minute 2 (1600 − 600) × 60.
    const spare = 600 * 60 + 1000 * 60;
    const within = new CapacityBound();
    within.add([...minute(0, 60), ...minute(1, 100, "east", "niw"), ...minute(2, 180)]);
    expect(within.result(CAP, ["h100"])!.batch).toBe(0);
    const beyond = new CapacityBound();
    beyond.add([...minute(0, 60), ...minute(1, 600, "east", "niw"), ...minute(2, 180)]);
    const leftover = 600 * 200 - spare; // 24,000 tokens at 800 tokens/s on 8 GPUs
    expect(beyond.result(CAP, ["h100"])!.batch).toBeCloseTo(
      Math.round((leftover / 800 / 3600) * 8 * 100) / 100,
      6,
    );
  });

  it("pools each model's regions in the pooled variant", () => {
    const b = new CapacityBound();
    b.add([...minute(0, 30, "east"), ...minute(0, 30, "west")]); // 0.5 req/s in each region
    const r = b.result(CAP, ["h100"])!;
    expect(r.interactive).toBeCloseTo((2 / 60) * 8, 2); // one instance per region (GPU-hours to 0.01)
    expect(r.pooled.interactive).toBeCloseTo((1 / 60) * 8, 2); // one for both
    expect(r.pooled.total).toBeLessThan(r.total);
  });

  it("leaves out models the capacity model does not know, and is undefined with none known", () => {
    const b = new CapacityBound();
    b.add([...minute(0, 60), ...minute(0, 60).map((r) => ({ ...r, model: "other" }))]);
    expect(Object.keys(b.result(CAP, ["h100"])!.byModel)).toEqual(["m"]);
    const none = new CapacityBound();
    none.add(minute(0, 60).map((r) => ({ ...r, model: "other" })));
    expect(none.result(CAP, ["h100"])).toBeUndefined();
    expect(b.result(CAP, ["l4"])).toBeUndefined();
  });

  it("counts a workload's requests as they are read, passing them on unchanged", () => {
    const reqs = [...minute(0, 60), ...minute(2, 180)];
    let given = false;
    const w: Workload = {
      name: "w",
      durationMs: 180_000,
      models: ["m"],
      regions: ["east"],
      next: () => {
        if (given) return [];
        given = true;
        return reqs;
      },
    };
    const b = new CapacityBound();
    expect(drain(boundedWorkload(w, b))).toEqual(reqs);
    const direct = new CapacityBound();
    direct.add(reqs);
    expect(b.result(CAP, ["h100"])).toEqual(direct.result(CAP, ["h100"]));
  });
});

describe("a run's capacity bound", () => {
  it("is the bound of its workload alone, the same whether simulated or only read", async () => {
    const opts = { scenario: "smoke", seed: 3, policy: "unified-reactive" } as const;
    const run = await runSimulation(opts);
    const bound = run.report.capacityBound!;
    expect(bound.total).toBeGreaterThan(0);
    expect(bound.pooled.total).toBeLessThanOrEqual(bound.total);
    expect(await workloadCapacityBound({ ...opts, policy: "lt-ua" })).toEqual(bound);
  });
});
