/**
 * Capacity-plan ILP: solve time and optimality gap at (models, regions, GPU
 * types) = (4,3,2), (10,5,3), (30,10,3), (100,20,4) on identical seeded problems,
 * javascript-lp-solver vs HiGHS (wasm). The gap is measured against the LP
 * relaxation (a lower bound), so it over-states the true gap. Writes its section
 * of docs/benchmarks.md.
 */
import {
  buildPlanningModel,
  PlanningSnapshotSchema,
  preloadSolvers,
  solve,
  solvePlan,
  violation,
} from "@sageserve/planner";
import { randomProblem } from "./planner-problem.js";
import { fmt, machine, writeSection } from "./report.js";

const quick = process.argv.includes("--quick");
const SIZES: [number, number, number][] = quick
  ? [
      [4, 3, 2],
      [10, 5, 3],
    ]
  : [
      [4, 3, 2],
      [10, 5, 3],
      [30, 10, 3],
      [100, 20, 4],
    ];

await preloadSolvers();
const rows: string[] = [];
for (const [M, R, G] of SIZES) {
  const snap = PlanningSnapshotSchema.parse(randomProblem(M, R, G, 1));
  const { model } = buildPlanningModel(snap);
  const ints = model.vars.filter((v) => v.integer).length;
  const relaxed = { ...model, vars: model.vars.map((v) => ({ ...v, integer: false })) };
  const lp = await solve(relaxed, { solver: "highs" });
  const bound = lp.objective;
  const run = async (solver: "highs" | "jslp", gap: number, timeLimitMs: number) => {
    const r = await solve(model, { solver, gap, timeLimitMs });
    const v = r.values.length ? violation(model, r.values).max : Number.POSITIVE_INFINITY;
    const ok = (r.status === "optimal" || r.status === "feasible") && v <= 1e-5;
    return `${r.status}${ok ? `, gap ≤ ${fmt((100 * (r.objective - bound)) / Math.abs(r.objective), 2)} %` : ""}, **${fmt(r.solveMs, 0)} ms**`;
  };
  const t0 = performance.now();
  const plan = await solvePlan(snap, { gap: 0.01, timeLimitMs: 60_000 });
  const planMs = performance.now() - t0;
  const planCell = `${plan.status}${plan.notes[0]?.startsWith("LP rounding") ? " (LP rounding)" : ""}, gap ≤ ${fmt((100 * (plan.objective - bound)) / Math.abs(plan.objective), 2)} %, **${fmt(planMs, 0)} ms**`;
  const highs1 = await run("highs", 0.01, 60_000);
  const highs0 = await run("highs", 1e-4, 60_000);
  // javascript-lp-solver keeps a dense tableau: past a few hundred integers it needs many GB (15 GB measured at
  // (100,20,4) in docs/toolchain) — it is only attempted on the two smallest sizes.
  const jslp = ints <= 200 ? await run("jslp", 0.01, 20_000) : "not attempted (dense tableau, > 10 GB)";
  rows.push(
    `| (${M},${R},${G}) | ${model.vars.length.toLocaleString("en-US")} / ${ints.toLocaleString("en-US")} / ${model.rows.length.toLocaleString("en-US")} | ${fmt(lp.solveMs, 0)} ms | ${planCell} | ${highs1} | ${highs0} | ${jslp} |`,
  );
  console.log(rows.at(-1));
}

const md = `## Planner ILP: javascript-lp-solver vs HiGHS (\`bench/planner.ts\`)

Machine: ${machine()}${quick ? " — **quick profile**" : ""}. Seeded random problems with the planner's own model
(integer instances per model × region × GPU type, routing fractions to the 3 nearest regions, reclaim/swap/boot
arrivals, supply, minimum instances, penalised unserved slack). Gap = (objective − LP relaxation) / objective, an upper
bound on the true gap. Time limits: HiGHS 60 s, javascript-lp-solver 20 s. Every solution is verified against the model.

| (M,R,G) | variables / integers / rows | LP relaxation | **planner (\`solvePlan\`, 1 %)** | HiGHS MIP, gap target 1 % | HiGHS MIP, gap target 0.01 % | javascript-lp-solver MIP, 1 % |
| --- | ---: | ---: | --- | --- | --- | --- |
${rows.join("\n")}

How the planner solves (\`solvePlan\`): up to 12 integer variables, the MIP with javascript-lp-solver (falling back to
HiGHS if it does not prove optimality); above that, the HiGHS MIP with a 1 % gap target. An LP-rounding path
(\`rounding: true\`: round the relaxation up, give back unneeded instances, accept only within the gap of the LP
bound) exists but is off by default: on these problems it lands 5–7 % above the bound.
`;
writeSection("planner", md);
console.log(md);
