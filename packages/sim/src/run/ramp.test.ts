import { createRng } from "@sageserve/runtime";
import { describe, expect, it } from "vitest";
import { builtinCapacityModel } from "../engine/capacity.js";
import { sampleQuantiles, workloadStats } from "../workload/stats.js";
import type { SimRequest, Workload } from "../workload/types.js";
import { runSimulation } from "./simulate.js";
import { EndpointWatch } from "./watch.js";

/**
 * LT-UA planning every 15 minutes on a ramp to 10× its starting rate: the plan's forecast lags the ramp,
 * and before the capacity model's demand floor the plan held the pool far below what the traffic needed
 * (IW-fast 3 % on a production trace). Now the endpoint never serves with fewer instances than its
 * measured load needs at the SLO knee (allowing one boot lead time to react).
 */
const MODEL = "llama2-70b";
const REGION = "eastus";
const RAMP_MIN = 60;
const HOLD_MIN = 30;

function rampWorkload(fromRps: number, toRps: number, seed: number): Workload {
  const rng = createRng(seed, "ramp");
  const conv = workloadStats().azure2023.conv;
  const durationMs = (RAMP_MIN + HOLD_MIN) * 60_000;
  let second = 0;
  let id = 0;
  return {
    name: "ramp",
    durationMs,
    models: [MODEL],
    regions: [REGION],
    next(): SimRequest[] {
      const out: SimRequest[] = [];
      // One minute per batch.
      for (let s = 0; s < 60 && second * 1000 < durationMs; s++, second++) {
        const minute = second / 60;
        const rate = fromRps + (toRps - fromRps) * Math.min(1, minute / RAMP_MIN);
        const t0 = second * 1000;
        let t = t0 + (-Math.log(1 - rng.next()) * 1000) / rate;
        while (t < t0 + 1000) {
          const u = rng.next();
          out.push({
            id: id++,
            arrivalMs: Math.floor(t),
            model: MODEL,
            region: REGION,
            tier: u < 0.6 ? "iw-fast" : "iw-normal",
            inputTokens: sampleQuantiles(conv.inputTokens, rng.next()),
            outputTokens: sampleQuantiles(conv.outputTokens, rng.next()),
          });
          t += (-Math.log(1 - rng.next()) * 1000) / rate;
        }
      }
      return out;
    },
  };
}

describe("LT-UA planning every 15 minutes on a 10× ramp", () => {
  it("never serves with fewer instances than the measured load needs at the SLO knee", async () => {
    let watch: EndpointWatch | undefined;
    const res = await runSimulation({
      scenario: "ramp",
      workload: rampWorkload(2, 20, 7),
      policy: "lt-ua",
      seed: 7,
      gpuTypes: ["h100"],
      planner: { intervalMinutes: 15 },
      observers: [
        (ctx) => {
          watch = new EndpointWatch(ctx);
          return watch;
        },
      ],
    });
    const knee = builtinCapacityModel(1);
    const demand = watch!.demand.get(MODEL)!;
    const first = Math.min(...demand.keys());
    const lagMin = 6; // one minute of demand report + the scaling tick + a 155-s boot + load, rounded up
    let worst = Number.POSITIVE_INFINITY;
    let checked = 0;
    for (let i = lagMin; i < watch!.serving.length && i < RAMP_MIN + HOLD_MIN; i++) {
      const d = demand.get(first + i - lagMin);
      if (!d || d.requests === 0) continue;
      const need = knee.instancesFor(MODEL, "h100", d.tps, {
        meanInputTokens: d.input / d.requests,
        meanOutputTokens: d.output / d.requests,
      });
      worst = Math.min(worst, (watch!.serving[i]![MODEL] ?? 0) - need);
      checked++;
    }
    expect(checked).toBeGreaterThan(70);
    expect(worst).toBeGreaterThanOrEqual(0);
    // The plan was followed (not reactive by default): plans every 15 minutes, one at start-up.
    expect(res.report.planner!.plans).toBeGreaterThanOrEqual(6);
    expect(res.report.slo["iw-fast"].attainmentFeasible).toBeGreaterThan(0.97);
    expect(res.report.slo["iw-normal"].attainmentFeasible).toBeGreaterThan(0.999);
  }, 120_000);
});
