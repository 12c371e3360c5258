import { describe, expect, it } from "vitest";
import { DEFAULT_SLO_TTFT_MS } from "./domain.js";
import { countSlo, emptySloCounts, metSlo, type PromptTiming, promptVerdict, sloRates } from "./slo.js";

/** A made-up model "m": 0.2 ms per prompt token on "fast", 0.5 ms on "slow"; measured up to 4,000 tokens. */
const timing: PromptTiming = {
  has: (model, gpu) => model === "m" && (gpu === "fast" || gpu === "slow"),
  prefillMs: (_m, gpu, p) => p * (gpu === "fast" ? 0.2 : 0.5),
  measuredPromptTokens: () => 4_000,
};

const ok = { outcome: "ok" as const, arrivalMs: 1_000, e2eMs: 5_000 };

describe("metSlo", () => {
  it("judges IW tiers by TTFT against the default targets (1 s, 60 s), NIW by its deadline", () => {
    expect(DEFAULT_SLO_TTFT_MS).toEqual({ "iw-fast": 1_000, "iw-normal": 60_000 });
    expect(metSlo({ ...ok, tier: "iw-fast", ttftMs: 1_000 })).toBe(true);
    expect(metSlo({ ...ok, tier: "iw-fast", ttftMs: 1_001 })).toBe(false);
    expect(metSlo({ ...ok, tier: "iw-normal", ttftMs: 59_000 })).toBe(true);
    expect(metSlo({ ...ok, tier: "niw", ttftMs: 0, deadlineMs: 6_000 })).toBe(true);
    expect(metSlo({ ...ok, tier: "niw", ttftMs: 0, deadlineMs: 5_999 })).toBe(false);
    expect(metSlo({ ...ok, tier: "niw", ttftMs: 0 })).toBe(true);
    expect(metSlo({ ...ok, outcome: "failed", tier: "iw-normal", ttftMs: 0 })).toBe(false);
    expect(metSlo({ ...ok, tier: "iw-fast", ttftMs: 1_500 }, { "iw-fast": 2_000, "iw-normal": 60_000 })).toBe(
      true,
    );
  });
});

describe("promptVerdict", () => {
  const r = { model: "m", tier: "iw-fast" as const };
  it("a prompt whose idle prefill on the serving GPU type exceeds the tier's target is infeasible", () => {
    // 3,000 tokens: 600 ms on "fast" (feasible), 1,500 ms on "slow" (> 1 s: infeasible).
    expect(promptVerdict(timing, { ...r, gpuType: "fast", inputTokens: 3_000 }).infeasible).toBe(false);
    expect(promptVerdict(timing, { ...r, gpuType: "slow", inputTokens: 3_000 }).infeasible).toBe(true);
    // IW-normal's 60 s target: feasible on both.
    expect(
      promptVerdict(timing, { ...r, tier: "iw-normal", gpuType: "slow", inputTokens: 3_000 }).infeasible,
    ).toBe(false);
    // NIW has no TTFT target.
    expect(promptVerdict(timing, { ...r, tier: "niw", gpuType: "slow", inputTokens: 9_000 }).infeasible).toBe(
      false,
    );
  });

  it("flags prompts longer than the measured profile, in every tier", () => {
    expect(promptVerdict(timing, { ...r, gpuType: "fast", inputTokens: 4_000 }).beyondProfile).toBe(false);
    expect(
      promptVerdict(timing, { ...r, tier: "niw", gpuType: "fast", inputTokens: 4_001 }).beyondProfile,
    ).toBe(true);
  });

  it("judges nothing without a timing model, a GPU type or a profile", () => {
    const none = { infeasible: false, beyondProfile: false };
    expect(promptVerdict(undefined, { ...r, gpuType: "slow", inputTokens: 9_000 })).toEqual(none);
    expect(promptVerdict(timing, { ...r, gpuType: undefined, inputTokens: 9_000 })).toEqual(none);
    expect(promptVerdict(timing, { ...r, gpuType: "tpu", inputTokens: 9_000 })).toEqual(none);
  });
});

describe("sloRates", () => {
  it("gives attainment over all requests and over the feasible ones", () => {
    // 10 requests: 2 infeasible (both missed), 8 feasible of which 6 met → 60 % over all, 75 % over feasible.
    const c = emptySloCounts();
    const feasible = { infeasible: false, beyondProfile: false };
    const infeasible = { infeasible: true, beyondProfile: true };
    for (let i = 0; i < 6; i++) countSlo(c, true, feasible);
    for (let i = 0; i < 2; i++) countSlo(c, false, feasible);
    for (let i = 0; i < 2; i++) countSlo(c, false, infeasible);
    expect(c).toEqual({ requests: 10, sloMet: 6, infeasible: 2, sloMetFeasible: 6 });
    expect(sloRates(c)).toEqual({ attainment: 0.6, attainmentFeasible: 0.75, infeasibleShare: 0.2 });
  });

  it("an infeasible request that met its target counts in attainment, not in the feasible one", () => {
    const c = emptySloCounts();
    countSlo(c, true, { infeasible: true, beyondProfile: false });
    countSlo(c, false, { infeasible: false, beyondProfile: false });
    expect(sloRates(c)).toEqual({ attainment: 0.5, attainmentFeasible: 0, infeasibleShare: 0.5 });
  });

  it("is null before the first request, and over feasible while none is", () => {
    expect(sloRates(emptySloCounts())).toEqual({
      attainment: null,
      attainmentFeasible: null,
      infeasibleShare: null,
    });
    const c = emptySloCounts();
    countSlo(c, false, { infeasible: true, beyondProfile: false });
    expect(sloRates(c).attainmentFeasible).toBeNull();
  });
});
