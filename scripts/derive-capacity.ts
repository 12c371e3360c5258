// Derives packages/sim/data/engine-capacity.json: for every (model, GPU, length mix) the interactive
// requests/s one instance serves with its TTFT SLOs kept — the knee of the engine load sweep. Re-run
// after changing the engine model, the performance profiles or the step budget.
//   npx tsx --conditions=source scripts/derive-capacity.ts
import { writeFileSync } from "node:fs";
import { builtinPerformanceModel, MODELS } from "@sageserve/engine";
import { deriveCapacityTable, SCENARIOS, workloadStats } from "@sageserve/sim";

const t0 = performance.now();
const table = deriveCapacityTable(
  builtinPerformanceModel(),
  workloadStats(),
  Object.keys(MODELS),
  SCENARIOS.day!.tierMix,
);
const out = new URL("../packages/sim/data/engine-capacity.json", import.meta.url);
writeFileSync(out, `${JSON.stringify(table, null, 1)}\n`);
for (const e of table.entries)
  console.log(
    `${e.model} ${e.gpu} ${e.tokens}: ${e.iwKneeRps} IW req/s (${e.kneeRps} all tiers, ${e.kneeTokensPerSecond} tokens/s)${e.belowRange ? " — below the swept range" : ""}`,
  );
console.log(`wrote ${out.pathname} in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
