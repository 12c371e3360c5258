import { describe, expect, it } from "vitest";
import { DEFAULT_PLAN_EXECUTION, gpuMix, type PlanState, planDecision } from "./plan-policy.js";
import { DEFAULT_REACTIVE } from "./policy.js";

/** An endpoint of 4 serving instances at 40 % under a plan of 4 on h100, nothing measured or owed. */
type Over = Partial<Omit<PlanState, "snap">> & { snap?: Partial<PlanState["snap"]> };
function state(over: Over = {}): PlanState {
  const { snap, ...rest } = over;
  return {
    strategy: "lt-ua",
    nowMs: 1_000_000,
    cfg: { ...DEFAULT_REACTIVE, minInstances: 1, sloScaleUpAbove: 0.02 },
    exec: DEFAULT_PLAN_EXECUTION,
    plan: { instances: 4, gpu: "h100" },
    mix: { add: undefined, hasSurplus: false },
    measured: { up: 0, hold: 0 },
    aheadNeed: 0,
    budget: 0,
    observedTps: 1_000,
    forecastTps: 1_000,
    ...rest,
    snap: { serving: 4, pending: 0, utilization: 0.4, cooldownUntilMs: 0, ...snap },
  };
}
const up = (n: number, batch: (i: number) => boolean = () => true, gpu = "h100") =>
  Array.from({ length: n }, (_, i) => ({ kind: "up", gpu, batch: batch(i) }));
const down = (n: number, batch = true) => Array.from({ length: n }, () => ({ kind: "down", batch }));

describe("planDecision: every strategy", () => {
  it.each(["lt-i", "lt-u", "lt-ua"] as const)(
    "%s: a cold start when scaled to zero and traffic is held",
    (strategy) => {
      expect(
        planDecision(state({ strategy, snap: { serving: 0, wanted: true, cooldownUntilMs: 2e6 } })),
      ).toEqual({
        actions: up(1),
        reason: { name: "coldStart", count: 1 },
      });
    },
  );

  it.each(["lt-i", "lt-u", "lt-ua"] as const)(
    "%s: up to the measured demand's floor before cool-downs and budgets, at most maxActionsPerTick",
    (strategy) => {
      const s = state({
        strategy,
        measured: { up: 20, hold: 20 },
        snap: { cooldownUntilMs: 2e6 },
        budget: -3,
      });
      expect(planDecision(s)).toEqual({ actions: up(8), reason: { name: "demandUp", count: 8 } });
      // The floor is capped by maxInstances.
      const capped = { ...s, cfg: { ...s.cfg, maxInstances: 6 } };
      expect(planDecision(capped)).toEqual({ actions: up(2), reason: { name: "demandUp", count: 2 } });
    },
  );

  it.each(["lt-i", "lt-u", "lt-ua"] as const)("%s: nothing during a cool-down", (strategy) => {
    expect(
      planDecision(state({ strategy, plan: { instances: 9, gpu: "h100" }, snap: { cooldownUntilMs: 2e6 } })),
    ).toEqual({
      actions: [],
    });
  });
});

describe("planDecision: LT-I follows the plan's count", () => {
  const lti = (over: Over = {}) => state({ strategy: "lt-i", ...over });
  it.each([
    ["up to the plan", lti({ plan: { instances: 7, gpu: "h100" } }), { actions: up(3) }],
    [
      "holds what the measured demand needs when the plan says less",
      lti({ measured: { up: 4, hold: 4 }, plan: { instances: 3, gpu: "h100" } }),
      { actions: [] },
    ],
    ["down to the plan", lti({ plan: { instances: 2, gpu: "h100" } }), { actions: down(2) }],
    [
      "down, but not below what demand held lately",
      lti({ plan: { instances: 1, gpu: "h100" }, measured: { up: 0, hold: 3 } }),
      { actions: down(1) },
    ],
    [
      "down, never below minInstances",
      lti({ plan: { instances: 0, gpu: "h100" }, cfg: { ...DEFAULT_REACTIVE, minInstances: 3 } }),
      { actions: down(1) },
    ],
    [
      "no scale-down while capacity is arriving",
      lti({ plan: { instances: 2, gpu: "h100" }, snap: { serving: 4, pending: 1 } }),
      { actions: [] },
    ],
    [
      "no scale-down while the SLO misses (a quarter of the guard)",
      lti({ plan: { instances: 2, gpu: "h100" }, snap: { sloMissRate: 0.01 } }),
      { actions: [] },
    ],
    [
      "one more when the plan says enough but the SLO misses",
      lti({ snap: { sloMissRate: 0.05 } }),
      { actions: up(1, () => false), reason: { name: "sloUp", count: 1 } },
    ],
    [
      "right count, wrong GPU type: migrate one VM to the plan's type",
      lti({ mix: { add: "a100", hasSurplus: true } }),
      {
        actions: [{ kind: "up", gpu: "a100", batch: false, strictGpu: true }],
        reason: { name: "gpuMigrate", count: 1 },
      },
    ],
    [
      "up on the type furthest below its target",
      lti({ plan: { instances: 5, gpu: "h100" }, mix: { add: "a100", hasSurplus: false } }),
      { actions: up(1, () => true, "a100") },
    ],
  ] as const)("%s", (_, s, want) => {
    expect(planDecision(s as PlanState)).toEqual(want);
  });
});

describe("planDecision: LT-U and LT-UA spend the plan's budget", () => {
  it.each(["lt-u", "lt-ua"] as const)(
    "%s: up to the forecast's need one boot lead ahead (capped by the plan), from the budget",
    (strategy) => {
      expect(
        planDecision(state({ strategy, plan: { instances: 6, gpu: "h100" }, aheadNeed: 9, budget: 2 })),
      ).toEqual({
        actions: up(2),
        reason: { name: "aheadUp", count: 2 },
        budget: 0,
      });
    },
  );

  it.each(["lt-u", "lt-ua"] as const)(
    "%s: waits for arriving capacity before judging utilisation",
    (strategy) => {
      expect(planDecision(state({ strategy, budget: 3, snap: { utilization: 0.95, pending: 1 } }))).toEqual({
        actions: [],
      });
    },
  );

  it.each(["lt-u", "lt-ua"] as const)(
    "%s: budgeted scale-up above scaleUpAbove; none without budget below the emergency line",
    (strategy) => {
      expect(planDecision(state({ strategy, budget: 2, snap: { utilization: 0.6 } }))).toEqual({
        actions: up(1, () => false),
        budget: 1,
      });
      expect(planDecision(state({ strategy, budget: 0, snap: { utilization: 0.6 } }))).toEqual({
        actions: [],
      });
    },
  );

  it.each(["lt-u", "lt-ua"] as const)("%s: emergency and SLO scale-ups past the budget", (strategy) => {
    expect(planDecision(state({ strategy, snap: { utilization: 0.95 } }))).toEqual({
      actions: up(1, () => false),
      reason: { name: "emergencyUp", count: 1 },
      budget: -1,
    });
    expect(planDecision(state({ strategy, snap: { sloMissRate: 0.05 } }))).toEqual({
      actions: up(1, () => false),
      reason: { name: "sloUp", count: 1 },
      budget: -1,
    });
  });

  it.each(["lt-u", "lt-ua"] as const)(
    "%s: owed budget paid back one idle scale-down at a time, never below the floors or while the SLO misses",
    (strategy) => {
      expect(planDecision(state({ strategy, budget: -2, snap: { utilization: 0.1 } }))).toEqual({
        actions: down(1, false),
        budget: -1,
        // LT-UA gives idle capacity back as its lull, owed or not (next case).
        ...(strategy === "lt-ua" ? { reason: { name: "lullDown", count: 1 } } : {}),
      });
      expect(
        planDecision(
          state({ strategy, budget: -2, measured: { up: 0, hold: 4 }, snap: { utilization: 0.1 } }),
        ),
      ).toEqual({ actions: [] });
      expect(
        planDecision(state({ strategy, budget: -2, snap: { utilization: 0.1, sloMissRate: 0.01 } })),
      ).toEqual({ actions: [] });
      expect(planDecision(state({ strategy, budget: -2, snap: { utilization: 0.3 } }))).toEqual({
        actions: [],
      });
    },
  );
});

describe("planDecision: LT-UA surge and lull", () => {
  it("surge: observed ≥ 5× forecast and busy → one up past the plan, budget untouched", () => {
    expect(
      planDecision(state({ observedTps: 5_000, forecastTps: 1_000, snap: { utilization: 0.6 } })),
    ).toEqual({
      actions: up(1, () => false),
      reason: { name: "surgeUp", count: 1 },
    });
    // Demand with no forecast at all counts as a surge.
    expect(
      planDecision(state({ observedTps: 10, forecastTps: 0, snap: { utilization: 0.6 } })).reason?.name,
    ).toBe("surgeUp");
    // Not when idle, and not under LT-U.
    expect(
      planDecision(state({ observedTps: 5_000, forecastTps: 1_000, snap: { utilization: 0.4 } })),
    ).toEqual({ actions: [] });
    expect(
      planDecision(
        state({ strategy: "lt-u", observedTps: 5_000, forecastTps: 1_000, snap: { utilization: 0.6 } }),
      ),
    ).toEqual({ actions: [] });
  });

  it("lull: idle above the floors → one down whatever the plan's count (owed budget paid back); LT-U keeps the plan", () => {
    const lull = state({ observedTps: 900, forecastTps: 1_000, snap: { utilization: 0.1 } });
    expect(planDecision(lull)).toEqual({ actions: down(1, false), reason: { name: "lullDown", count: 1 } });
    expect(planDecision({ ...lull, budget: -2 })).toEqual({
      actions: down(1, false),
      reason: { name: "lullDown", count: 1 },
      budget: -1,
    });
    // Not idle, or at a floor (the forecast one boot lead ahead, the demand held lately, the minimum): nothing.
    expect(planDecision({ ...lull, snap: { ...lull.snap, utilization: 0.3 } })).toEqual({ actions: [] });
    expect(planDecision({ ...lull, aheadNeed: 4 })).toEqual({ actions: [] });
    expect(planDecision({ ...lull, measured: { up: 0, hold: 4 } })).toEqual({ actions: [] });
    expect(planDecision({ ...lull, cfg: { ...lull.cfg, minInstances: 4 } })).toEqual({ actions: [] });
    expect(planDecision({ ...lull, strategy: "lt-u" })).toEqual({ actions: [] });
  });

  it("lull with lullAfterBelow: gives one back while the rest stay below it, above the floors only", () => {
    const exec = { ...DEFAULT_PLAN_EXECUTION, lullAfterBelow: 0.5 };
    // 4 at 35 % (batch work keeps them above the reference's 25 %): 3 would run at 46.7 % → one down.
    const busy = state({ exec, snap: { utilization: 0.35 } });
    expect(planDecision(busy)).toEqual({ actions: down(1, false), reason: { name: "lullDown", count: 1 } });
    // The reference's rule holds them.
    expect(planDecision({ ...busy, exec: DEFAULT_PLAN_EXECUTION })).toEqual({ actions: [] });
    // 4 at 40 %: 3 would run at 53 % → nothing; nor at a floor; idle, the reference's rule still applies.
    expect(planDecision({ ...busy, snap: { ...busy.snap, utilization: 0.4 } })).toEqual({ actions: [] });
    expect(planDecision({ ...busy, measured: { up: 0, hold: 4 } })).toEqual({ actions: [] });
    expect(planDecision({ ...busy, aheadNeed: 4 })).toEqual({ actions: [] });
    expect(planDecision({ ...busy, snap: { ...busy.snap, utilization: 0.1 } }).reason?.name).toBe("lullDown");
  });
});

describe("GPU mix against the plan", () => {
  const inst = (gpuType: string, state: "serving" | "booting" | "spot" = "serving") => ({ gpuType, state });
  // [plan by GPU type, instances] → [type to add, surplus types]
  const cases: [Record<string, number>, ReturnType<typeof inst>[], string | undefined, string[]][] = [
    [{ h100: 2 }, [inst("h100"), inst("h100")], undefined, []], // as planned
    [{ h100: 2 }, [inst("h100"), inst("h100", "booting")], undefined, []], // arriving counts
    [{ h100: 2 }, [inst("h100"), inst("h100", "spot")], "h100", []], // spot does not
    [{ h100: 2, a100: 1 }, [inst("a100"), inst("a100")], "h100", ["a100"]], // migrate a100 → h100
    [{ h100: 1, a100: 3 }, [], "a100", []], // the type furthest below first
    [{}, [inst("h100")], undefined, ["h100"]], // nothing planned of it
  ];
  it.each(cases)("plan %o, instances %o → add %s, surplus %o", (plan, instances, add, surplus) => {
    const mix = gpuMix(plan, instances);
    expect(mix.add).toBe(add);
    expect([...mix.surplus]).toEqual(surplus);
  });
});
