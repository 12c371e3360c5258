/**
 * What a solved plan becomes before it is published (pure): the post-processing strategy applied to its
 * targets, and the `Plan` message the region agents receive. Separate from the actor so that both can
 * be tested with plain values.
 */
import { type PayloadIn, type Plan, tripleKey } from "@sageserve/protocol";
import type { PlanResult } from "./ilp.js";
import type { PostProcess } from "./planner-options.js";
import type { WindowDemand } from "./planning-input.js";

type Target = { model: string; region: string; gpu: string; instances: number; delta: number };

/** Apply a post-processing strategy to plan targets (pure). `previous`: last plan's deltas by "model|region|gpu". */
export function postProcessTargets(
  targets: Target[],
  how: PostProcess,
  previous: ReadonlyMap<string, number>,
): Target[] {
  if (how === "immediate") return targets;
  return targets.map((t) => {
    const current = t.instances - t.delta;
    const prev = previous.get(tripleKey(t.model, t.region, t.gpu)) ?? 0;
    let instances = t.instances;
    if (how === "keep-max") instances = Math.max(current, t.instances);
    else if (how === "keep-min") instances = Math.min(current, t.instances);
    else if (Math.sign(prev) !== Math.sign(t.delta)) instances = current; // delay-changes: wait for confirmation
    return { ...t, instances, delta: instances - current };
  });
}

/** The `Plan` message for a window starting now: the targets to publish, the solve's routing and status, the forecast. */
export function planMessage(
  planId: string,
  nowMs: number,
  intervalMinutes: number,
  strategy: string,
  targets: readonly Target[],
  result: PlanResult,
  window: WindowDemand,
): PayloadIn<typeof Plan> {
  return {
    planId,
    createdAtMs: nowMs,
    windowStartMs: nowMs,
    windowEndMs: nowMs + intervalMinutes * 60_000,
    strategy,
    targets: targets.map((t) => ({
      model: t.model,
      region: t.region,
      gpuType: t.gpu,
      instances: t.instances,
      delta: t.delta,
    })),
    routing: result.routing,
    forecast: window.forecast,
    ...(window.niw.length ? { niw: window.niw } : {}),
    solver: {
      status: result.status === "timeout" ? "timeout" : result.status,
      objective: Number.isFinite(result.objective) ? result.objective : 0,
      solveMs: result.solveMs,
    },
    notes: result.notes.slice(0, 200),
  };
}
