// Engine load sweep (issue 14): one instance per (model, GPU type) under Poisson arrivals at increasing
// rates, with the workload's length and tier mix; throughput against TTFT/TBT p50/p99 per tier, and the
// knee where the interactive SLOs stop holding. Writes docs/results/engine-sweep.json (an input of the
// planner's capacity model) and its section of docs/benchmarks.md.
import { writeFileSync } from "node:fs";
import { builtinPerformanceModel, MODELS } from "@sageserve/engine";
import {
  geometricRates,
  type LengthMix,
  SCENARIOS,
  type SweepResult,
  sweepInstance,
  workloadStats,
} from "@sageserve/sim";
import { fmt, machine, writeSection } from "./report.js";

const quick = process.argv.includes("--quick");
const perf = builtinPerformanceModel();
const stats = workloadStats();
const day = SCENARIOS.day!;
const t0 = performance.now();
const results: SweepResult[] = [];
for (const model of Object.keys(MODELS)) {
  const m = day.models.find((x) => x.id === model);
  if (!m) continue;
  const tokens = stats.azure2023[m.tokens];
  const mix: LengthMix = {
    inputTokens: tokens.inputTokens,
    outputTokens: tokens.outputTokens,
    maxInputTokens: 32_768,
    tiers: day.tierMix,
  };
  for (const gpu of perf.gpusFor(model)) {
    // From a rate one instance serves easily, ×1.25 per step until IW-fast falls below 80 %.
    const cap = perf.capacity(model, gpu);
    const meanTokens = tokens.inputTokens.reduce((a, b) => a + b, 0) / tokens.inputTokens.length;
    const start = Math.max(0.05, (0.1 * cap.prefillTokensPerSecond) / Math.max(1, meanTokens));
    const r = sweepInstance(perf, model, gpu, mix, {
      rates: geometricRates(start, 1.25, quick ? 8 : 24),
      durationS: quick ? 120 : 600,
      warmupS: quick ? 30 : 60,
      minRequests: quick ? 2_000 : 20_000,
    });
    results.push(r);
    const k = r.knee;
    console.log(
      `${model} on ${gpu}: budget ${r.maxBatchedTokens} tokens/step, knee ${k ? `${k.ratePerSecond} req/s (${fmt(k.tokensPerSecond)} tokens/s)` : "below the first rate"}, ${r.points.length} rates`,
    );
  }
}
const wallS = (performance.now() - t0) / 1000;
writeFileSync(
  new URL("../docs/results/engine-sweep.json", import.meta.url),
  `${JSON.stringify({ machine: machine(), quick, results }, null, 1)}\n`,
);

const ms = (x: number) => (Number.isFinite(x) ? fmt(x, 0) : "∞");
const lines = [
  "## Engine load sweep (`bench/engine.ts`)",
  "",
  `One instance per (model, GPU type) — the engine model v2 shared by the simulator and the emulator — under Poisson arrivals at increasing rates (×1.25 per step; at each rate ≥ ${quick ? "2,000" : "20,000"} requests and ≥ ${quick ? "2" : "10"} simulated minutes after a warm-up), with the \`day\` scenario's length mix for the model (Azure 2023 conv/code quantiles, prompts ≤ 32,768 tokens) and tier mix (45 % IW-fast, 27 % IW-normal, 28 % NIW), priority scheduling and the default step budget. **Knee** = the highest rate at which IW-fast meets its 1 s TTFT for ≥ 99 % and IW-normal its 60 s for ≥ 99.9 % of the requests whose prompt can meet the target on an idle instance. Raw curves: docs/results/engine-sweep.json. ${machine()}; ${wallS.toFixed(0)} s wall.`,
  "",
  "| model | GPU | tokens/step | knee (req/s) | tokens/s at knee | IW-fast TTFT p50 / p99 (ms) | IW-normal TTFT p99 (ms) | TBT p50 / p99 (ms) | next rate: IW-fast SLO (feasible) |",
  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
];
for (const r of results) {
  const k = r.knee;
  const after = r.points[k ? r.points.indexOf(k) + 1 : 0];
  lines.push(
    `| ${r.model} | ${r.gpu} | ${r.maxBatchedTokens} | ${k ? k.ratePerSecond : "—"} | ${k ? fmt(k.tokensPerSecond, 0) : "—"} | ${k ? `${ms(k.byTier["iw-fast"].ttftP50)} / ${ms(k.byTier["iw-fast"].ttftP99)}` : "—"} | ${k ? ms(k.byTier["iw-normal"].ttftP99) : "—"} | ${k ? `${ms(k.byTier["iw-fast"].tbtP50)} / ${ms(k.byTier["iw-fast"].tbtP99)}` : "—"} | ${after ? `${after.ratePerSecond} req/s: ${(100 * after.byTier["iw-fast"].attainmentFeasible).toFixed(1)} %` : "—"} |`,
  );
}
writeSection("engine", lines.join("\n"));
console.log(`engine sweep: ${results.length} (model, GPU) pairs in ${wallS.toFixed(0)} s`);
