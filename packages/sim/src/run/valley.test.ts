import { createRng } from "@sageserve/runtime";
import { describe, expect, it } from "vitest";
import { sampleQuantiles, workloadStats } from "../workload/stats.js";
import type { SimRequest, Workload } from "../workload/types.js";
import { runSimulation } from "./simulate.js";

/**
 * Batch work in the plan (issue 15, item 9): one endpoint whose interactive load follows a daily cycle,
 * and a backlog of batch jobs (300 M tokens) queued at the start of the second day's valley with deadlines
 * staggered 16-20 h out, into the next morning's rise. The reactive baseline releases a job only into idle
 * room (below 60 % utilisation) or 4 h before its deadline (escalation) and scales up for what it
 * releases; LT-UA's planner sees the backlog by deadline in the region status, reserves its batch rate in
 * the plan, and the region agent releases at that rate into the capacity the plan holds.
 */
const MODEL = "llama2-70b";
const REGION = "eastus";
const DAY_MS = 86_400_000;
const DURATION_MS = 2 * DAY_MS + 10 * 3_600_000;

function valleyWorkload(opts: { peakRps: number; troughRps: number; jobs: number; seed: number }): Workload {
  const rng = createRng(opts.seed, "valley");
  const conv = workloadStats().azure2023.conv;
  // Interactive rate: highest at 06:00, lowest at 18:00.
  const rate = (ms: number) => {
    const phase = Math.cos((2 * Math.PI * (ms - 6 * 3_600_000)) / DAY_MS);
    return opts.troughRps + ((opts.peakRps - opts.troughRps) * (1 + phase)) / 2;
  };
  // Batch jobs: queued over 30 minutes from day 2, 12:00, due 16-20 h later.
  const jobsFrom = DAY_MS + 12 * 3_600_000;
  const jobTimes = Array.from(
    { length: opts.jobs },
    () => jobsFrom + Math.floor(rng.next() * 1_800_000),
  ).sort((a, b) => a - b);
  let j = 0;
  let second = 0;
  let id = 0;
  return {
    name: "valley",
    durationMs: DURATION_MS,
    models: [MODEL],
    regions: [REGION],
    next(): SimRequest[] {
      const out: SimRequest[] = [];
      for (let s = 0; s < 60 && second * 1000 < DURATION_MS; s++, second++) {
        const t0 = second * 1000;
        const r = rate(t0);
        let t = t0 + (-Math.log(1 - rng.next()) * 1000) / r;
        const batch: SimRequest[] = [];
        while (t < t0 + 1000) {
          batch.push({
            id: 0,
            arrivalMs: Math.floor(t),
            model: MODEL,
            region: REGION,
            tier: rng.next() < 0.6 ? "iw-fast" : "iw-normal",
            inputTokens: sampleQuantiles(conv.inputTokens, rng.next()),
            outputTokens: sampleQuantiles(conv.outputTokens, rng.next()),
          });
          t += (-Math.log(1 - rng.next()) * 1000) / r;
        }
        while (j < jobTimes.length && jobTimes[j]! < t0 + 1000) {
          const at = jobTimes[j++]!;
          batch.push({
            id: 0,
            arrivalMs: at,
            model: MODEL,
            region: REGION,
            tier: "niw",
            inputTokens: 1_500,
            outputTokens: 500,
            deadlineMs: at + (16 + 4 * rng.next()) * 3_600_000,
          });
        }
        batch.sort((a, b) => a.arrivalMs - b.arrivalMs);
        for (const b of batch) b.id = id++;
        out.push(...batch);
      }
      return out;
    },
  };
}

async function run(policy: "unified-reactive" | "lt-ua", jobs: number) {
  const res = await runSimulation({
    scenario: "valley",
    workload: valleyWorkload({ peakRps: 5, troughRps: 1, jobs, seed: 5 }),
    policy,
    seed: 5,
    gpuTypes: ["h100"],
    validate: false,
    // SageServe's best configuration (docs/results.md): planned at the SLO knee, GPU-hours minimised.
    planner: { targetUtilization: 1, objective: "gpu-hours" },
  });
  return res.report;
}

describe("batch work in the plan", () => {
  it("a backlog with staggered deadlines finishes with 0 misses on fewer GPU-hours under LT-UA's plan than release-when-idle plus escalation alone", async () => {
    const reactive = await run("unified-reactive", 150_000);
    const planned = await run("lt-ua", 150_000);
    for (const r of [reactive, planned]) {
      expect(r.niw.deadlineMisses).toBe(0);
      expect(r.niw.released).toBe(150_000);
      expect(r.requests.dropped).toBe(0);
    }
    expect(planned.slo["iw-fast"].attainmentFeasible).toBeGreaterThan(0.99);
    expect(planned.slo["iw-normal"].attainmentFeasible).toBeGreaterThan(0.999);
    // The plan's batch rate released part of the backlog (measured: 3,967 paced releases, 10,099 before
    // 2026-12-07, when a non-urgent job began to go only to an instance below 0.9 load counting the jobs
    // released to it since its report; the rest went into idle room of the capacity the plan holds).
    expect(planned.scalingActions.niwPaced ?? 0).toBeGreaterThan(2_000);
    // Fewer GPU-hours in all (measured: 1,081.5 vs 1,166.6, -7.3 %; 1,015.5 before a plan's at-once
    // scale-downs began to stop at what the instances' load needs — the batch work keeps them busy, so
    // the plan's cut is owed instead; that rule is what kept IW-normal on a busy second day, planner.md)…
    expect(planned.gpuHours.total).toBeLessThan(reactive.gpuHours.total * 0.95);
    // …and what the backlog itself cost each, over the same runs without it (measured: +148.4 vs +227.9;
    // +82.3 before the rule above). With the backlog left out of the plan (the flat NIW share) LT-UA
    // measured about the same (1,038.3 GPU-h, +62.4, before the idle lull): under a plan the agent does
    // not scale up for batch work, it feeds it into the room the plan holds, where reactive scaling buys
    // capacity for what it releases. Only the paced-release check above depends on the planned rate.
    const reactiveBase = await run("unified-reactive", 0);
    const plannedBase = await run("lt-ua", 0);
    const backlogCost = (r: typeof reactive, base: typeof reactive) => r.gpuHours.total - base.gpuHours.total;
    expect(backlogCost(planned, plannedBase)).toBeLessThan(backlogCost(reactive, reactiveBase) * 0.75);
  }, 300_000);
});
