import { describe, expect, it } from "vitest";
import { CapacityModel, type CapacityTableData, mixOf } from "./capacity.js";

const table: CapacityTableData = {
  m: {
    h100: [
      { meanInputTokens: 1_000, meanOutputTokens: 200, rps: 10, default: true },
      { meanInputTokens: 2_000, meanOutputTokens: 100, rps: 4 },
    ],
    a100: [{ meanInputTokens: 1_000, meanOutputTokens: 200, rps: 3 }],
  },
};

describe("capacity model (SLO knee per model, GPU and length mix)", () => {
  it("uses the measured point for its own mix and the default mix when none is given", () => {
    const c = new CapacityModel(table, 0.5);
    expect(c.capacity("m", "h100")).toEqual({ rps: 10, tokensPerSecond: 12_000 });
    expect(c.capacity("m", "h100", { meanInputTokens: 2_000, meanOutputTokens: 100 })!.rps).toBeCloseTo(4);
    expect(c.plannedTokensPerSecond("m", "h100")).toBe(6_000);
  });

  it("interpolates the cost of a request between mixes, grows it with the prompt past the longest, never below the shortest", () => {
    const c = new CapacityModel(table);
    // Halfway: cost (1/10 + 1/4) / 2 = 0.175 s → 5.714 req/s.
    expect(c.capacity("m", "h100", { meanInputTokens: 1_500, meanOutputTokens: 150 })!.rps).toBeCloseTo(
      1 / 0.175,
    );
    // Twice the longest prompt: twice its cost.
    expect(c.capacity("m", "h100", { meanInputTokens: 4_000, meanOutputTokens: 100 })!.rps).toBeCloseTo(2);
    // Shorter than the shortest: no extrapolation up.
    expect(c.capacity("m", "h100", { meanInputTokens: 100, meanOutputTokens: 200 })!.rps).toBe(10);
  });

  it("counts instances as demand over planned capacity, rounding up but not for float noise", () => {
    const c = new CapacityModel(table, 0.5);
    expect(c.instancesFor("m", "h100", 0)).toBe(0);
    expect(c.instancesFor("m", "h100", 6_000)).toBe(1);
    expect(c.instancesFor("m", "h100", 6_001)).toBe(2);
    expect(c.instancesFor("m", "h100", 3 * 6_000 * (1 + 1e-12))).toBe(3);
    expect(c.instancesFor("m", "t4", 6_000)).toBe(0); // not eligible: no point
  });

  it("gives the planner a coefficient per eligible GPU type only", () => {
    const c = new CapacityModel(table, 0.5);
    expect(c.plannerCapacity(["m", "unknown"], ["h100", "a100", "t4"])).toEqual({
      m: { h100: 6_000, a100: 1_800 },
    });
    expect(c.gpus("m")).toEqual(["h100", "a100"]);
  });

  it("lets an instance of a pool carry more than one alone: s − (s − knee)/√N, and counts the smallest pool that carries the demand", () => {
    const pooled: CapacityTableData = {
      m: {
        h100: [{ meanInputTokens: 1_000, meanOutputTokens: 200, rps: 2, saturationRps: 5, default: true }],
      },
    };
    const c = new CapacityModel(pooled, 0.5);
    expect(c.capacity("m", "h100")!.rps).toBe(2); // alone: the knee
    expect(c.capacity("m", "h100", undefined, 4)!.rps).toBeCloseTo(5 - 3 / 2); // 3.5
    expect(c.capacity("m", "h100", undefined, 100)!.rps).toBeCloseTo(5 - 3 / 10); // 4.7, towards 5
    // 10 req/s planned at 0.5: 10 instances alone at their knee (1 req/s planned each); pooled, N with
    // N · 0.5 · (5 − 3/√N) ≥ 10 → N = 5 (5 · 0.5 · 3.658 = 9.15 < 10), N = 6: 6 · 0.5 · 3.775 = 11.3.
    const tps = 10 * 1_200;
    expect(new CapacityModel(pooled, 0.5, { pooling: false }).instancesFor("m", "h100", tps)).toBe(10);
    expect(c.instancesFor("m", "h100", tps)).toBe(6);
    // A demand one lone instance carries stays one instance; no saturation figure: no pooling.
    expect(c.instancesFor("m", "h100", 1_200)).toBe(1);
    expect(new CapacityModel(table, 0.5).instancesFor("m", "h100", 60_000)).toBe(10);
    // The planner's coefficient is that of the pool its quietest region needs.
    expect(c.plannerCapacity(["m"], ["h100"], undefined, () => tps).m!.h100).toBeCloseTo(
      0.5 * (5 - 3 / Math.sqrt(6)) * 1_200,
    );
    expect(c.plannerCapacity(["m"], ["h100"]).m!.h100).toBe(1_200); // no demand yet: one instance's
  });

  it("rejects a target utilisation outside (0, 1]", () => {
    expect(() => new CapacityModel(table, 0)).toThrow(/targetUtilization/);
    expect(() => new CapacityModel(table, 1.5)).toThrow(/targetUtilization/);
  });

  it("derives a mix from demand counts", () => {
    expect(mixOf({ requests: 4, inputTokens: 4_000, outputTokens: 800 })).toEqual({
      meanInputTokens: 1_000,
      meanOutputTokens: 200,
    });
    expect(mixOf({ requests: 0, inputTokens: 0, outputTokens: 0 })).toBeUndefined();
  });
});
