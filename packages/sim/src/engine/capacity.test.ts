import { describe, expect, it } from "vitest";
import { builtinPerformanceModel } from "../perf/builtin.js";
import { workloadStats } from "../workload/stats.js";
import { builtinSloCapacity, deriveCapacityTable, SloCapacity } from "./capacity.js";

describe("SLO capacity (the engine sweep's knee per model, GPU and length mix)", () => {
  it("the committed table covers every built-in model on H100 with its scenario length mix", () => {
    const cap = builtinSloCapacity();
    for (const model of ["llama2-70b", "bloom-176b", "llama3.1-8b", "llama3.2-3b"]) {
      const e = cap.entry(model, "h100");
      expect(e, model).toBeDefined();
      expect(e!.belowRange, model).toBeUndefined();
      expect(e!.iwKneeRps).toBeGreaterThan(0);
      expect(e!.iwKneeRps).toBeLessThan(e!.kneeRps); // IW is 72 % of the mix
    }
    // A bigger model serves fewer requests per instance; long (code) prompts fewer than short ones.
    expect(cap.iwRps("llama2-70b", "h100")!).toBeLessThan(cap.iwRps("llama3.1-8b", "h100", "conv")!);
    expect(cap.iwRps("llama3.1-8b", "h100", "code")!).toBeLessThan(cap.iwRps("llama3.1-8b", "h100", "conv")!);
    expect(cap.iwRps("no-such-model", "h100")).toBeUndefined();
  });

  it("derives a table entry from a sweep (small run)", () => {
    const t = deriveCapacityTable(
      builtinPerformanceModel(),
      workloadStats(),
      ["llama3.2-3b"],
      { "iw-fast": 0.5, "iw-normal": 0.5, niw: 0 },
      { minRequests: 1_000, durationS: 60 },
    );
    const cap = new SloCapacity(t);
    const e = cap.entry("llama3.2-3b", "h100", "conv")!;
    expect(e.iwKneeRps).toBeCloseTo(e.kneeRps, 6); // no NIW in this mix
    expect(e.kneeRps).toBeGreaterThan(1);
  });
});
