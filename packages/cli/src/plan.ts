import { readFileSync } from "node:fs";
import { PlanningSnapshotSchema, solvePlan } from "@sageserve/planner";
import { describeIssues, errorMessage } from "@sageserve/protocol";
import { explain } from "./sim.js";

/** `sageserve plan --state file.json`: solve one planning problem and print the plan. */
export async function planCommand(o: {
  state: string;
  solver?: string;
  json?: boolean;
  timeLimit?: number;
}): Promise<number> {
  try {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(o.state, "utf8"));
    } catch (e) {
      console.error(`cannot read planning state ${o.state}: ${errorMessage(e)}`);
      return 2;
    }
    const parsed = PlanningSnapshotSchema.safeParse(raw);
    if (!parsed.success) {
      console.error(`invalid planning state ${o.state}: ${describeIssues(parsed.error.issues)}`);
      return 2;
    }
    const solver = o.solver === "highs" || o.solver === "jslp" ? o.solver : "auto";
    const plan = await solvePlan(parsed.data, {
      solver,
      ...(o.timeLimit ? { timeLimitMs: o.timeLimit * 1000 } : {}),
    });
    if (o.json) {
      console.log(JSON.stringify(plan, null, 2));
      return 0;
    }
    const rows = [["model", "region", "gpu", "instances", "delta", "reclaim", "swap", "boot"]];
    for (const t of plan.targets)
      rows.push([
        t.model,
        t.region,
        t.gpu,
        String(t.instances),
        (t.delta > 0 ? "+" : "") + t.delta,
        String(t.reclaim),
        String(t.swap),
        String(t.boot),
      ]);
    const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    for (const r of rows)
      console.log(r.map((c, i) => (i < 3 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join("  "));
    if (plan.routing.some((r) => r.from !== r.to)) {
      console.log("\nrouting (interactive demand sent away from its origin):");
      for (const r of plan.routing.filter((x) => x.from !== x.to))
        console.log(`  ${r.model}: ${r.from} → ${r.to} ${(100 * r.fraction).toFixed(1)} %`);
    }
    console.log(
      `\n${plan.status} (${plan.solver}, ${plan.solveMs.toFixed(0)} ms, ${plan.size.integers} integer / ${plan.size.variables} variables, ${plan.size.rows} rows), cost ${plan.objective.toFixed(2)} $/h`,
    );
    for (const n of plan.notes.filter(
      (x) => x.includes("short") || x.includes("below the minimum") || x.includes("returned"),
    ))
      console.log(`  ! ${n}`);
    return plan.status === "infeasible" || plan.status === "timeout" ? 1 : 0;
  } catch (e) {
    console.error(explain(e));
    return 2;
  }
}
