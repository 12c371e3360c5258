import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { SimOptions } from "./sim-options.js";
import { runSimulation } from "./simulate.js";

/**
 * A one-instance floor (`minInstances: 1`) on an endpoint whose demand needs one to three instances:
 * llama3.1-8b's long code prompts make it prefill-bound, so its KV and sequence slots look idle while
 * requests queue for prefill. Reactive scaling gives the second instance back below 25 % utilisation and
 * reclaims it when utilisation passes 50 %, over and over, and IW-fast waits out every reclaim; LT-UA's
 * floors are what the measured demand of the last minutes and the forecast need by the capacity model, so
 * it keeps the instances the traffic needs and gives back only what it does not (docs/results.md, "A
 * one-instance floor": the same at `day` × 10).
 */
const dir = mkdtempSync(join(tmpdir(), "floor-one-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Four hours of llama3.1-8b code prompts in eastus at `rate` requests/s. */
function scenarioAt(rate: number): string {
  const file = join(dir, `f8-${rate}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      name: "f8",
      durationHours: 4,
      meanRatePerSecond: rate,
      models: [{ id: "llama3.1-8b", share: 1, shape: "m-small", tokens: "code" }],
      regions: [{ id: "eastus", weight: 1, utcOffsetHours: -5 }],
      tierMix: { "iw-fast": 0.45, "iw-normal": 0.27, niw: 0.28 },
    }),
  );
  return file;
}
const scenario = scenarioAt(18);

const AT_KNEE: Partial<SimOptions> = { planner: { targetUtilization: 1, objective: "gpu-hours" } };

async function run(policy: string, extra: Partial<SimOptions> = {}, file = scenario) {
  const { report } = await runSimulation({
    scenario: file,
    policy,
    seed: 1,
    validate: false,
    ...extra,
    regionAgent: { ...extra.regionAgent, reactive: { minInstances: 1 } },
  });
  return report;
}

describe("a one-instance floor", () => {
  it("LT-UA at the knee keeps IW-fast where unified reactive flaps between one and two instances", async () => {
    const reactive = await run("unified-reactive");
    const ltua = await run("lt-ua", AT_KNEE);
    for (const r of [reactive, ltua]) {
      expect(r.requests.dropped).toBe(0);
      expect(r.niw.deadlineMisses).toBe(0);
    }
    // Reactive: the second instance lent to spot and reclaimed every few minutes; IW-fast well below 99 %.
    expect(reactive.scalingActions.makeSpot).toBeGreaterThan(50);
    expect(reactive.scalingActions.reclaim).toBeGreaterThan(50);
    expect(reactive.slo["iw-fast"].attainmentFeasible).toBeLessThan(0.95);
    // LT-UA: a handful of scaling actions, IW-fast kept, and fewer GPU-hours than the flapping.
    expect((ltua.scalingActions.makeSpot ?? 0) + (ltua.scalingActions.reclaim ?? 0)).toBeLessThan(10);
    expect(ltua.slo["iw-fast"].attainmentFeasible).toBeGreaterThanOrEqual(0.99);
    expect(ltua.slo["iw-normal"].attainment).toBeGreaterThanOrEqual(0.999);
    expect(ltua.gpuHours.total).toBeLessThan(reactive.gpuHours.total);
  }, 120_000);
});

describe("the SLO feedback on the capacity model", () => {
  it("sizes an endpoint that runs above its IW-fast SLO on the measured knee with more capacity per instance", async () => {
    // 40 requests/s: LT-UA at the knee holds IW-fast at 99.65 % of feasible requests on 213.4 GPU-hours; with
    // the feedback (a 20-minute window and 10-minute steps, so that four hours see several) measured 99.35 %
    // on 207.4 (−2.8 %).
    const file = scenarioAt(40);
    const knee = await run("lt-ua", AT_KNEE, file);
    const fed = await run(
      "lt-ua",
      {
        ...AT_KNEE,
        regionAgent: { sloCalibration: { enabled: true, windowMs: 1_200_000, stepMs: 600_000 } },
      },
      file,
    );
    for (const r of [knee, fed]) {
      expect(r.requests.dropped).toBe(0);
      expect(r.niw.deadlineMisses).toBe(0);
      expect(r.slo["iw-fast"].attainmentFeasible).toBeGreaterThanOrEqual(0.99);
    }
    expect(knee.slo["iw-fast"].attainmentFeasible).toBeGreaterThan(0.994); // above the band: room to give
    expect(fed.slo["iw-fast"].attainmentFeasible).toBeLessThan(knee.slo["iw-fast"].attainmentFeasible!);
    expect(fed.gpuHours.total).toBeLessThan(0.985 * knee.gpuHours.total);
  }, 120_000);
});
