import { createRng } from "@sageserve/runtime";
import { describe, expect, it } from "vitest";
import type { SimRequest, Workload } from "../workload/types.js";
import type { SimOptions } from "./sim-options.js";
import { runSimulation } from "./simulate.js";
import { EndpointWatch } from "./watch.js";

/**
 * Scale to zero and back: an endpoint with `minInstances: 0` gives its last instance back after it has
 * been idle, and a request that arrives for it is held by the router (not failed) while the region agent
 * brings an instance back — a spot reclaim here; the report counts the cold starts and their wait.
 */
const MODEL = "llama3.2-3b";
const OTHER = "llama3.1-8b";
const REGION = "westus";

/** 20 minutes of traffic, `gapMin` of silence for MODEL (OTHER keeps going), 20 of traffic again. */
function gapWorkload(seed: number, gapMin: number): Workload {
  const rng = createRng(seed, "gap");
  const durationMs = (40 + gapMin) * 60_000;
  let minute = 0;
  let id = 0;
  return {
    name: "gap",
    durationMs,
    models: [MODEL, OTHER],
    regions: [REGION],
    next(): SimRequest[] {
      if (minute * 60_000 >= durationMs) return [];
      const out: SimRequest[] = [];
      for (const model of [MODEL, OTHER]) {
        const silent = model === MODEL && minute >= 20 && minute < 20 + gapMin;
        if (silent) continue;
        for (let t = minute * 60_000 + (-Math.log(1 - rng.next()) * 1000) / 2; t < (minute + 1) * 60_000; ) {
          out.push({
            id: 0,
            arrivalMs: Math.floor(t),
            model,
            region: REGION,
            tier: rng.next() < 0.5 ? "iw-fast" : "iw-normal",
            inputTokens: 500,
            outputTokens: 100,
          });
          t += (-Math.log(1 - rng.next()) * 1000) / 2;
        }
      }
      out.sort((a, b) => a.arrivalMs - b.arrivalMs);
      for (const r of out) r.id = id++;
      minute++;
      return out;
    },
  };
}

async function run(policy: string, min: number, extra: Partial<SimOptions> = {}, gapMin = 40) {
  let watch: EndpointWatch | undefined;
  const res = await runSimulation({
    scenario: "gap",
    workload: gapWorkload(3, gapMin),
    policy,
    seed: 3,
    gpuTypes: ["h100"],
    regionAgent: { endpoints: { [MODEL]: { minInstances: min, zeroAfterIdleMs: 10 * 60_000 } } },
    observers: [
      (ctx) => {
        watch = new EndpointWatch(ctx);
        return watch;
      },
    ],
    ...extra,
  });
  return { report: res.report, serving: watch!.serving.map((s) => s[MODEL] ?? 0) };
}

describe("scale to zero and back", () => {
  it("unified reactive: the idle endpoint goes to zero, and the first request after the gap is held, not failed", async () => {
    const zero = await run("unified-reactive", 0);
    const floor = await run("unified-reactive", 1);
    // At zero for most of the gap (after 10 idle minutes), and serving again after it.
    const inGap = zero.serving.slice(35, 58);
    expect(inGap.every((n) => n === 0)).toBe(true);
    expect(zero.serving.slice(62, 78).every((n) => n >= 1)).toBe(true);
    expect(zero.report.requests.dropped).toBe(0);
    expect(zero.report.coldStarts.held).toBeGreaterThan(0);
    expect(zero.report.coldStarts.routed).toBe(zero.report.coldStarts.held);
    // A spot reclaim, not a boot: the wait is about a minute, far below the router's 5-minute bound.
    expect(zero.report.coldStarts.waitMs.max).toBeLessThan(120_000);
    expect(zero.report.scalingActions.coldStart).toBeGreaterThan(0);
    // The floor of one never goes to zero and never holds a request.
    expect(floor.serving.slice(35, 58).every((n) => n >= 1)).toBe(true);
    expect(floor.report.coldStarts.held).toBe(0);
    expect(zero.report.gpuHours.byModel[MODEL]!).toBeLessThan(floor.report.gpuHours.byModel[MODEL]!);
  }, 120_000);

  it("under a plan (LT-I, plans every 15 minutes) it goes to zero once the forecast is zero, and comes back", async () => {
    // The forecast (last hour) keeps an instance for an hour after traffic stops: a 100-minute gap.
    const zero = await run("lt-i", 0, { planner: { intervalMinutes: 15 } }, 100);
    expect(zero.serving.slice(20, 80).every((n) => n >= 1)).toBe(true);
    expect(zero.serving.slice(100, 118).every((n) => n === 0)).toBe(true);
    expect(zero.serving.slice(124, 138).every((n) => n >= 1)).toBe(true);
    expect(zero.report.requests.dropped).toBe(0);
    expect(zero.report.coldStarts.held).toBeGreaterThan(0);
    expect(zero.report.coldStarts.routed).toBe(zero.report.coldStarts.held);
  }, 120_000);
});
