import type { InstanceState, PlanStrategy } from "@sageserve/protocol";
import { ARRIVING } from "./instance-view.js";
import { type EndpointSnapshot, type ReactiveConfig, scaleUpCount, sloHolds, sloPressure } from "./policy.js";

/** How a region agent carries out a plan (LT-I, LT-U, LT-UA) between plans. */
export interface PlanExecutionConfig {
  /** LT-U/LT-UA: above this utilisation scale up even with the budget spent. */
  emergencyAbove: number;
  /** LT-UA: observed/forecast demand at or above this lets the endpoint scale past the plan. */
  surgeRatio: number;
  /** Most commands one endpoint issues in one tick under LT-I. */
  maxActionsPerTick: number;
  /**
   * LT-UA's lull, when set: give an instance back above the floors also whenever the endpoint's
   * utilisation after it (u·n/(n−1)) stays below this, not only when utilisation is below the reactive
   * `scaleDownBelow` now (the reference's rule, alone when unset).
   */
  lullAfterBelow?: number;
  /**
   * What the measured demand's hold (capacity not given back below it) is the peak of over its 10
   * windows: each single window's need (1, the default) or the mean's of this many windows ending at each
   * (2–5: nearer the demand's peak than one noisy minute's; PlanView.demandFloor).
   */
  holdMeanWindows?: number;
}

export const DEFAULT_PLAN_EXECUTION: PlanExecutionConfig = {
  emergencyAbove: 0.9,
  surgeRatio: 5,
  maxActionsPerTick: 8,
};

/** What one endpoint (a model in a region) looks like to the plan-following rule at one tick. */
export interface PlanState {
  strategy: PlanStrategy;
  nowMs: number;
  snap: EndpointSnapshot;
  cfg: ReactiveConfig;
  exec: PlanExecutionConfig;
  /** The plan's instance count here and its GPU type. */
  plan: { instances: number; gpu: string | undefined };
  /** Against the plan's GPU types: the type furthest below its target, and whether any type is above. */
  mix: { add: string | undefined; hasSurplus: boolean };
  /** Instances the measured demand needs (`up`: recent mean) and held lately (`hold`: the recent peak). */
  measured: { up: number; hold: number };
  /** Instances the forecast needs one boot lead time from now (LT-U/LT-UA's clock). */
  aheadNeed: number;
  /** LT-U/LT-UA: scale-ups left in the plan's budget (negative: scale-downs owed). */
  budget: number;
  /** LT-UA: observed and forecast tokens/s. */
  observedTps: number;
  forecastTps: number;
}

/** One command for the endpoint; `batch` marks the 2nd+ of a tick's scale-ups (no cool-down per command). */
export type ScaleAction =
  | { kind: "up"; gpu: string | undefined; batch: boolean; strictGpu?: true }
  | { kind: "down"; batch: boolean };

/** The counters a decision moves (`RegionAgentActor.actions`). */
export type PlanReason =
  | "coldStart"
  | "demandUp"
  | "sloUp"
  | "gpuMigrate"
  | "aheadUp"
  | "emergencyUp"
  | "surgeUp"
  | "lullDown";

export interface PlanDecision {
  actions: ScaleAction[];
  /** Why, counted once per action (aheadUp and demandUp count every scale-up, the others once). */
  reason?: { name: PlanReason; count: number };
  /** The plan budget after this tick, when it changes. */
  budget?: number;
}

/**
 * One scaling tick of an endpoint under a plan — the LT-I / LT-U / LT-UA rules as a pure function; the
 * region agent carries out the actions. In order:
 * - scaled to zero with traffic held for it: a cold start, whatever the plan says;
 * - below what the measured demand needs: up to it, before cool-downs and budgets;
 * - in a cool-down: nothing;
 * - LT-I: to the plan (or the demand's floor); one more when the plan says enough but the SLO misses;
 *   plan scale-downs wait while the SLO misses, while capacity is arriving, and never go below what demand
 *   held lately or the minimum; at the right count with the wrong GPU types, migrate one VM;
 * - LT-U/LT-UA: up to what the forecast needs one boot lead from now (capped by the plan); then, once
 *   arriving capacity has landed, budgeted scale-ups on utilisation, emergency or SLO scale-ups past the
 *   budget; no scale-down while the SLO misses; LT-UA adds a surge (observed ≥ surgeRatio × forecast and
 *   busy: one up) and a lull: idle (utilisation below scaleDownBelow) above its floors — the minimum, what
 *   the measured demand held over the last 10 windows, what the forecast needs one boot lead ahead — it
 *   gives one instance back, whatever the plan's count, so a plan sized for the window's peak minute does
 *   not hold that capacity through the rest of the window (measured on a daily cycle: 4 % fewer GPU-hours
 *   at 14 / 2 req/s, the SLOs unchanged); LT-U keeps the plan's count and pays owed budget back one
 *   scale-down at a time when idle, never below the floors.
 */
export function planDecision(s: PlanState): PlanDecision {
  const { snap, cfg: r, exec: x, plan } = s;
  const gpu = s.mix.add ?? plan.gpu;
  const total = snap.serving + snap.pending;
  const ups = (n: number, batch: (i: number) => boolean): ScaleAction[] =>
    Array.from({ length: n }, (_, i) => ({ kind: "up" as const, gpu, batch: batch(i) }));
  if (total === 0 && snap.wanted)
    return { actions: ups(1, () => true), reason: { name: "coldStart", count: 1 } };
  const floor = Math.min(r.maxInstances, s.measured.up);
  const hold = Math.min(r.maxInstances, s.measured.hold);
  if (total < floor) {
    const n = Math.min(floor - total, x.maxActionsPerTick);
    return { actions: ups(n, () => true), reason: { name: "demandUp", count: n } };
  }
  if (s.nowMs < snap.cooldownUntilMs) return { actions: [] };
  if (s.strategy === "lt-i") return ltiDecision(s, total, floor, hold, gpu, ups);

  const budget = s.budget;
  const u = snap.utilization;
  const ahead = Math.min(plan.instances, r.maxInstances, s.aheadNeed);
  if (total < ahead) {
    const n = Math.min(ahead - total, x.maxActionsPerTick);
    return { actions: ups(n, () => true), reason: { name: "aheadUp", count: n }, budget: budget - n };
  }
  if (snap.pending > 0) return { actions: [] };
  const up = (n: number) => ups(Math.min(n, x.maxActionsPerTick), (i) => i > 0);
  if (total < r.minInstances || (budget > 0 && u > r.scaleUpAbove)) {
    const n = total < r.minInstances ? 1 : Math.min(budget, scaleUpCount(snap, r));
    return { actions: up(n), budget: budget - n };
  }
  if (u > x.emergencyAbove || sloPressure(snap, r)) {
    const n = scaleUpCount(snap, r);
    return {
      actions: up(n),
      reason: { name: u > x.emergencyAbove ? "emergencyUp" : "sloUp", count: 1 },
      budget: budget - n,
    };
  }
  if (sloHolds(snap, r)) return { actions: [] };
  const downFloor = Math.max(r.minInstances, hold, ahead);
  if (s.strategy === "lt-ua") {
    const ratio =
      s.forecastTps > 0 ? s.observedTps / s.forecastTps : s.observedTps > 0 ? Number.POSITIVE_INFINITY : 1;
    if (ratio >= x.surgeRatio && u > r.scaleUpAbove)
      return { actions: ups(1, () => false), reason: { name: "surgeUp", count: 1 } };
    if (snap.serving > downFloor && lull(u, snap.serving, r, x))
      return {
        actions: [{ kind: "down", batch: false }],
        reason: { name: "lullDown", count: 1 },
        ...(budget < 0 ? { budget: budget + 1 } : {}),
      };
  }
  if (budget < 0 && u < r.scaleDownBelow && snap.serving > downFloor)
    return { actions: [{ kind: "down", batch: false }], budget: budget + 1 };
  return { actions: [] };
}

/** LT-UA's lull test: idle now (the reference), or — with `lullAfterBelow` — still below it after one fewer. */
function lull(u: number, serving: number, r: ReactiveConfig, x: PlanExecutionConfig): boolean {
  if (u < r.scaleDownBelow) return true;
  return x.lullAfterBelow !== undefined && serving > 1 && (u * serving) / (serving - 1) < x.lullAfterBelow;
}

function ltiDecision(
  s: PlanState,
  total: number,
  floor: number,
  hold: number,
  gpu: string | undefined,
  ups: (n: number, batch: (i: number) => boolean) => ScaleAction[],
): PlanDecision {
  const { snap, cfg: r, exec: x, plan } = s;
  // Up to the plan or the demand's floor; down to the plan, never below what demand held lately.
  const want = Math.max(plan.instances, floor);
  const diff = want >= total ? want - total : Math.min(0, Math.max(plan.instances, hold) - total);
  if (diff <= 0 && snap.pending === 0 && sloPressure(snap, r))
    // The plan says enough, the SLO says otherwise: one more, and the plan's scale-downs wait.
    return { actions: ups(1, () => false), reason: { name: "sloUp", count: 1 } };
  if (diff < 0 && sloHolds(snap, r)) return { actions: [] };
  if (diff === 0 && snap.pending === 0 && s.mix.add !== undefined && s.mix.hasSurplus)
    // Right count, wrong GPU types (the plan moved this model to another type): migrate one VM at a
    // time — boot the missing type; the surplus one drains once the new one serves.
    return {
      actions: [{ kind: "up", gpu: s.mix.add, batch: false, strictGpu: true }],
      reason: { name: "gpuMigrate", count: 1 },
    };
  if (diff < 0 && snap.pending > 0) return { actions: [] }; // give back only after arriving capacity serves
  const actions: ScaleAction[] = [];
  for (let i = 0; i < Math.min(Math.abs(diff), x.maxActionsPerTick); i++) {
    if (diff > 0) actions.push({ kind: "up", gpu, batch: true });
    else if (snap.serving - i > r.minInstances) actions.push({ kind: "down", batch: true });
  }
  return { actions };
}

/**
 * How an endpoint's instances (serving or arriving) compare with the plan's GPU types: the type furthest
 * below its target (to boot next), and the types above theirs (to give back first).
 */
export function gpuMix(
  planByGpu: Record<string, number>,
  instances: readonly { state: InstanceState; gpuType: string }[],
): { add: string | undefined; surplus: Set<string> } {
  const surplus = new Set<string>();
  const have: Record<string, number> = {};
  for (const i of instances) {
    if (i.state === "serving" || ARRIVING.has(i.state)) have[i.gpuType] = (have[i.gpuType] ?? 0) + 1;
  }
  let add: string | undefined;
  let worst = 0;
  for (const [g, want] of Object.entries(planByGpu)) {
    const gap = want - (have[g] ?? 0);
    if (gap > worst) {
      worst = gap;
      add = g;
    }
  }
  for (const [g, n] of Object.entries(have)) if (n > (planByGpu[g] ?? 0)) surplus.add(g);
  return { add, surplus };
}
