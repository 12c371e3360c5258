/**
 * Solving a solver-neutral MILP (`lp-model.ts`) with one of two solvers: javascript-lp-solver (the design
 * card's; pure JS, for small problems) and HiGHS compiled to WebAssembly (`highs.ts`; for everything larger).
 * Every solution is verified against the model before it is used.
 */
import { createRequire } from "node:module";
import { SolveBudget } from "./budget.js";
import { solveHighs } from "./highs.js";
import { isFeasible, type LpModel, type LpSolution, objective, type SolveOptions } from "./lp-model.js";

// The package is CommonJS; require() gives its real exports without ESM interop guesswork.
const require = createRequire(import.meta.url);
const jslp = require("javascript-lp-solver") as {
  Solve(model: object): Record<string, number | boolean | undefined>;
};

/**
 * javascript-lp-solver. It has no work limit, only a wall-clock timeout, so in deterministic mode (used for
 * its small problems only: ≤ JSLP_MAX_INTEGERS integers, which it proves in milliseconds) the timeout is the
 * same safety net as HiGHS' and a solve it stops is never returned as optimal.
 */
function solveJslp(model: LpModel, o: SolveOptions): LpSolution {
  const timeoutMs = SolveBudget.from(o).msLeft();
  const constraints: Record<string, { min?: number; max?: number }> = {};
  const variables: Record<string, Record<string, number>> = {};
  const ints: Record<string, 1> = {};
  model.vars.forEach((v, i) => {
    variables[`x${i}`] = { cost: v.cost };
    if (v.integer) ints[`x${i}`] = 1;
    // Bounds become single-variable rows (the solver has no bounds of its own).
    const b: { min?: number; max?: number } = {};
    if (v.lb > 0) b.min = v.lb;
    if (v.ub < Number.POSITIVE_INFINITY) b.max = v.ub;
    if (b.min !== undefined || b.max !== undefined) {
      constraints[`b${i}`] = b;
      variables[`x${i}`]![`b${i}`] = 1;
    }
  });
  model.rows.forEach((r, j) => {
    const c: { min?: number; max?: number } = {};
    if (r.lo > Number.NEGATIVE_INFINITY) c.min = r.lo;
    if (r.hi < Number.POSITIVE_INFINITY) c.max = r.hi;
    constraints[`r${j}`] = c;
    for (const [i, coef] of r.terms)
      variables[`x${i}`]![`r${j}`] = (variables[`x${i}`]![`r${j}`] ?? 0) + coef;
  });
  const t0 = performance.now();
  const res = jslp.Solve({
    optimize: "cost",
    opType: "min",
    constraints,
    variables,
    ints,
    options: { tolerance: o.gap ?? 1e-3, timeout: timeoutMs },
  });
  const solveMs = performance.now() - t0;
  const values = model.vars.map((_, i) => Number(res[`x${i}`] ?? 0));
  // On timeout it can report `feasible` with fractional integers: trust only a verified solution.
  const ok = res.feasible === true && isFeasible(model, values);
  return {
    status: ok
      ? solveMs >= timeoutMs
        ? "feasible"
        : "optimal"
      : res.feasible === false
        ? "infeasible"
        : "timeout",
    solver: "jslp",
    values,
    objective: objective(model, values),
    solveMs,
  };
}

/** Problems with at most this many integer variables go to javascript-lp-solver under "auto". */
export const JSLP_MAX_INTEGERS = 12;

export async function solve(model: LpModel, o: SolveOptions = {}): Promise<LpSolution> {
  const ints = model.vars.filter((v) => v.integer).length;
  const which = o.solver && o.solver !== "auto" ? o.solver : ints <= JSLP_MAX_INTEGERS ? "jslp" : "highs";
  if (which === "jslp") {
    const r = solveJslp(model, o);
    if (r.status === "optimal" || r.status === "infeasible" || o.solver === "jslp") return r;
    return solveHighs(model, o); // auto: fall back to the stronger solver
  }
  return solveHighs(model, o);
}
