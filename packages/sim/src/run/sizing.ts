/**
 * How big the fleet starts, and what the planner takes one instance to serve: both sized from the
 * first minutes of the workload, read ahead before the replay starts (operators start from last
 * week's footprint).
 */
import { blendedTokensPerSecond, type PerformanceModel } from "@sageserve/engine";
import { tripleKey } from "@sageserve/protocol";
import type { SimRequest } from "../workload/types.js";
import type { SimFleet } from "../world/fleet.js";
import type { RunSetup } from "./setup.js";
import type { SimOptions } from "./sim-options.js";

/** The workload's first batches, read ahead, and the starting VMs per "model|region|pool" they call for. */
export interface FirstWindow {
  prefetched: SimRequest[][];
  counts: Map<string, number>;
}

/** Look ahead ten minutes to size the starting fleet. */
export function readFirstWindow({ workload, perf, gpuFor, siloed }: RunSetup): FirstWindow {
  const prefetched: SimRequest[][] = [];
  const firstWindowMs = Math.min(workload.durationMs, 10 * 60_000);
  for (let b = workload.next(); b.length; b = workload.next()) {
    prefetched.push(b);
    if (b.at(-1)!.arrivalMs >= firstWindowMs) break;
  }
  const counts = initialCounts(
    prefetched.flat().filter((r) => r.arrivalMs < firstWindowMs),
    firstWindowMs,
    perf,
    gpuFor,
    siloed,
  );
  return { prefetched, counts };
}

/**
 * Deploy the starting fleet: per model, region (and pool when siloed) the sized count, at least the
 * endpoint's minimum (one NIW instance per siloed pool).
 */
export function deployInitialFleet(
  opts: SimOptions,
  { workload, siloed, gpuFor }: RunSetup,
  counts: Map<string, number>,
  fleet: SimFleet,
): void {
  for (const model of workload.models) {
    for (const region of workload.regions) {
      for (const pool of siloed ? ["iw", "niw"] : [undefined]) {
        const min =
          pool === "niw"
            ? 1
            : (opts.regionAgent?.endpoints?.[model]?.minInstances ??
              opts.regionAgent?.reactive?.minInstances ??
              2);
        const n = Math.max(min, counts.get(tripleKey(model, region, pool ?? "")) ?? 0);
        for (let i = 0; i < n; i++) fleet.deploy(region, gpuFor(model), model, pool);
      }
    }
  }
}

/**
 * Per-instance capacity for the planner, in the demand's unit (prompt + output tokens/s): the
 * instance's prefill and decode throughputs combined in the workload's token mix.
 */
export function plannerCapacity(
  first: SimRequest[],
  perf: PerformanceModel,
  gpuTypes: string[],
  ttftTargetMs: number,
): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  const mix = new Map<string, { in: number; out: number; prompts: number[] }>();
  for (const r of first) {
    const m = mix.get(r.model) ?? { in: 0, out: 0, prompts: [] };
    m.in += r.inputTokens;
    m.out += r.outputTokens;
    if (r.tier === "iw-fast") m.prompts.push(r.inputTokens);
    mix.set(r.model, m);
  }
  for (const [model, m] of mix) {
    const outShare = m.out / Math.max(1, m.in + m.out);
    const caps: Record<string, number> = {};
    // Only GPU types that can meet the IW-fast TTFT target on a long (p95) prompt get capacity.
    m.prompts.sort((a, b) => a - b);
    const p95 = m.prompts[Math.floor(0.95 * (m.prompts.length - 1))] ?? 2_048;
    const eligible = perf.latencyEligible(model, gpuTypes, p95, ttftTargetMs);
    for (const g of eligible) {
      const c = perf.capacity(model, g);
      caps[g] = Math.round(blendedTokensPerSecond(c, outShare));
    }
    out[model] = caps;
  }
  return out;
}

/** Size the initial deployment from the first minutes of the workload, with 20 % headroom. */
function initialCounts(
  first: SimRequest[],
  windowMs: number,
  perf: PerformanceModel,
  gpu: (model: string) => string,
  siloed: boolean,
): Map<string, number> {
  const tokens = new Map<string, { in: number; out: number }>();
  for (const r of first) {
    const pool = siloed ? (r.tier === "niw" ? "niw" : "iw") : "";
    const k = tripleKey(r.model, r.region, pool);
    const t = tokens.get(k) ?? { in: 0, out: 0 };
    t.in += r.inputTokens;
    t.out += r.outputTokens;
    tokens.set(k, t);
  }
  const out = new Map<string, number>();
  for (const [k, t] of tokens) {
    const model = k.split("|")[0]!;
    const cap = perf.capacity(model, gpu(model));
    const seconds = Math.max(1, windowMs / 1000);
    const busy = t.in / seconds / cap.prefillTokensPerSecond + t.out / seconds / cap.decodeTokensPerSecond;
    out.set(k, Math.ceil(busy * 1.2));
  }
  return out;
}
