import { builtinPerformanceModel } from "@sageserve/engine";
import { describe, expect, it } from "vitest";
import { workloadStats } from "../workload/stats.js";
import { geometricRates, sweepInstance } from "./sweep.js";

describe("engine load sweep", () => {
  const perf = builtinPerformanceModel();
  const conv = workloadStats().azure2023.conv;
  const mix = {
    inputTokens: conv.inputTokens,
    outputTokens: conv.outputTokens,
    tiers: { "iw-fast": 0.45, "iw-normal": 0.27, niw: 0.28 },
  };

  it("finds a knee: the SLO holds below it and breaks above it, and latency grows with load", () => {
    const r = sweepInstance(perf, "llama3.2-3b", "h100", mix, {
      rates: geometricRates(2, 2, 6),
      durationS: 120,
      warmupS: 20,
      minRequests: 2_000,
    });
    expect(r.maxBatchedTokens).toBe(perf.stepTokenBudget("llama3.2-3b", "h100"));
    expect(r.points[0]!.byTier["iw-fast"].attainmentFeasible).toBeGreaterThanOrEqual(0.99);
    expect(r.knee).toBeDefined();
    const i = r.points.indexOf(r.knee!);
    expect(i).toBeLessThan(r.points.length - 1); // the sweep went past it
    const after = r.points[i + 1]!;
    expect(
      after.byTier["iw-fast"].attainmentFeasible < 0.99 ||
        after.byTier["iw-normal"].attainmentFeasible < 0.999,
    ).toBe(true);
    expect(after.byTier["iw-fast"].ttftP99).toBeGreaterThan(r.points[0]!.byTier["iw-fast"].ttftP99);
    // Served throughput follows the offered rate up to the knee.
    for (const p of r.points.slice(0, i + 1))
      expect(p.completedPerSecond / p.ratePerSecond).toBeGreaterThan(0.85);
  });

  it("a slower GPU type has a lower knee for the same model and mix", () => {
    const o = { rates: geometricRates(0.5, 1.5, 12), durationS: 120, warmupS: 20, minRequests: 2_000 };
    const h100 = sweepInstance(perf, "llama3.1-8b", "h100", mix, o).knee?.ratePerSecond ?? 0;
    const a100 = sweepInstance(perf, "llama3.1-8b", "a100", mix, o).knee?.ratePerSecond ?? 0;
    expect(h100).toBeGreaterThan(a100);
  });
});
