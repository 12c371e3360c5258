import { builtinPerformanceModel } from "@sageserve/engine";
import { describe, expect, it } from "vitest";
import { workloadStats } from "../workload/stats.js";
import {
  builtinCapacityModel,
  builtinCapacityTable,
  capacityData,
  deriveCapacityTable,
  emulatorCapacityModel,
  meanLengths,
} from "./capacity.js";

describe("SLO capacity (the engine sweep's knee per model, GPU and length mix)", () => {
  it("the committed table covers every built-in model on H100 with its scenario length mix", () => {
    const cap = builtinCapacityModel(1);
    for (const model of ["llama2-70b", "bloom-176b", "llama3.1-8b", "llama3.2-3b"]) {
      const c = cap.capacity(model, "h100");
      expect(c, model).toBeDefined();
      expect(c!.rps).toBeGreaterThan(0);
      const e = builtinCapacityTable().entries.find(
        (x) => x.model === model && x.gpu === "h100" && !x.belowRange,
      );
      expect(e!.iwKneeRps).toBeLessThan(e!.kneeRps); // IW is 72 % of the mix
    }
    const stats = workloadStats();
    // A bigger model serves fewer requests per instance; long (code) prompts fewer than short ones.
    expect(cap.capacity("llama2-70b", "h100")!.rps).toBeLessThan(
      cap.capacity("llama3.1-8b", "h100", meanLengths(stats, "conv"))!.rps,
    );
    expect(cap.capacity("llama3.1-8b", "h100", meanLengths(stats, "code"))!.rps).toBeLessThan(
      cap.capacity("llama3.1-8b", "h100", meanLengths(stats, "conv"))!.rps,
    );
    expect(cap.capacity("no-such-model", "h100")).toBeUndefined();
    // Where the SLO never held (bloom on A100) the GPU type is not eligible.
    expect(cap.capacity("bloom-176b", "a100")).toBeUndefined();
    expect(cap.gpus("bloom-176b")).toEqual(["h100"]);
  });

  it("the model's default mix is its scenario's, so capacity without a mix is the table's knee", () => {
    const cap = builtinCapacityModel(1);
    const e = builtinCapacityTable().entries.find(
      (x) => x.model === "llama3.1-8b" && x.gpu === "h100" && x.tokens === "code",
    )!;
    expect(cap.capacity("llama3.1-8b", "h100")!.rps).toBeCloseTo(e.kneeRps, 6);
  });

  it("derives a table entry from a sweep (small run)", () => {
    const t = deriveCapacityTable(
      builtinPerformanceModel(),
      workloadStats(),
      ["llama3.2-3b"],
      { "iw-fast": 0.5, "iw-normal": 0.5, niw: 0 },
      { minRequests: 1_000, durationS: 60 },
    );
    const e = t.entries.find((x) => x.gpu === "h100" && x.tokens === "conv")!;
    expect(e.iwKneeRps).toBeCloseTo(e.kneeRps, 6); // no NIW in this mix
    expect(e.kneeRps).toBeGreaterThan(1);
    const data = capacityData(t, workloadStats());
    expect(data["llama3.2-3b"]!.h100!.find((p) => p.default)!.rps).toBe(
      t.entries.find((x) => x.gpu === "h100" && x.tokens === "conv")!.kneeRps,
    );
  });

  it("measures emulated engines on their own settings: a laptop emulator carries a fraction of an H100", () => {
    const emu = emulatorCapacityModel({
      models: ["llama3.2-3b"],
      gpus: ["h100"],
      speedup: 0.5,
      kvTokens: 8_000,
      maxRunning: 256,
      maxInputTokens: 2_048,
    });
    const hw = builtinCapacityModel(0.5);
    const e = emu.plannedTokensPerSecond("llama3.2-3b", "h100")!;
    expect(e).toBeGreaterThan(0);
    // Half the speed and 1/600 of the KV cache: the hardware table would overstate it many times over.
    expect(hw.plannedTokensPerSecond("llama3.2-3b", "h100")! / e).toBeGreaterThan(5);
    expect(emu.gpus("llama3.2-3b")).toEqual(["h100"]);
  }, 60_000);
});
