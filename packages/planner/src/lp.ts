import { createRequire } from "node:module";

// Both packages are CommonJS; require() gives their real exports without ESM interop guesswork.
const require = createRequire(import.meta.url);
type HighsInstance = {
  solve(
    lp: string,
    options?: Record<string, unknown>,
  ): { Status: string; Columns: Record<string, { Primal?: number }> };
};
const highsLoader = require("highs") as () => Promise<HighsInstance>;
const jslp = require("javascript-lp-solver") as {
  Solve(model: object): Record<string, number | boolean | undefined>;
};

/**
 * A solver-neutral mixed-integer linear program, its verification, and two
 * solvers: javascript-lp-solver (the design card's; pure JS, for small problems)
 * and HiGHS compiled to WebAssembly (`highs`; for everything larger). Every
 * solution is verified against the model before it is used.
 */
export interface LpVar {
  name: string;
  cost: number;
  lb: number;
  ub: number;
  integer: boolean;
}

export interface LpRow {
  name: string;
  terms: [number, number][]; // [variable index, coefficient]
  lo: number;
  hi: number;
}

export interface LpModel {
  vars: LpVar[];
  rows: LpRow[];
}

export type SolverName = "highs" | "jslp";

export interface LpSolution {
  status: "optimal" | "feasible" | "infeasible" | "timeout" | "error";
  solver: SolverName;
  values: number[];
  objective: number;
  solveMs: number;
  message?: string;
}

export interface SolveOptions {
  solver?: SolverName | "auto";
  timeLimitMs?: number;
  /** Relative MIP gap at which to stop (default 1e-3). */
  gap?: number;
}

const TOL = 1e-6;

/** Largest violation of bounds, rows and integrality (0 = feasible). */
export function violation(model: LpModel, values: readonly number[]): { max: number; where: string } {
  let max = 0;
  let where = "";
  const bump = (v: number, w: string) => {
    if (v > max) {
      max = v;
      where = w;
    }
  };
  model.vars.forEach((v, i) => {
    const x = values[i] ?? Number.NaN;
    if (!Number.isFinite(x)) bump(Number.POSITIVE_INFINITY, `${v.name} is not a number`);
    bump(v.lb - x, `${v.name} below its bound`);
    bump(x - v.ub, `${v.name} above its bound`);
    if (v.integer) bump(Math.abs(x - Math.round(x)), `${v.name} not integral`);
  });
  for (const r of model.rows) {
    let s = 0;
    for (const [i, c] of r.terms) s += c * (values[i] ?? 0);
    const scale = Math.max(
      1,
      Math.abs(r.lo === Number.NEGATIVE_INFINITY ? 0 : r.lo),
      Math.abs(r.hi === Number.POSITIVE_INFINITY ? 0 : r.hi),
    );
    bump((r.lo - s) / scale, `row ${r.name} below ${r.lo}`);
    bump((s - r.hi) / scale, `row ${r.name} above ${r.hi}`);
  }
  return { max, where };
}

export function objective(model: LpModel, values: readonly number[]): number {
  return model.vars.reduce((a, v, i) => a + v.cost * (values[i] ?? 0), 0);
}

export function isFeasible(model: LpModel, values: readonly number[]): boolean {
  return violation(model, values).max <= TOL * 10;
}

// ------------------------------------------------------------ HiGHS

let highsPromise: Promise<HighsInstance> | undefined;

const num = (x: number): string => (Number.isInteger(x) ? String(x) : x.toPrecision(15));

/** CPLEX LP text with generated names (x0…, r0…) so that any model name is safe. */
export function toLpText(model: LpModel): string {
  const out: string[] = [
    "Minimize",
    ` obj: ${model.vars.map((v, i) => `${v.cost >= 0 ? "+" : "-"} ${num(Math.abs(v.cost))} x${i}`).join(" ") || "0 x0"}`,
    "Subject To",
  ];
  model.rows.forEach((r, j) => {
    const lhs =
      r.terms.map(([i, c]) => `${c >= 0 ? "+" : "-"} ${num(Math.abs(c))} x${i}`).join(" ") || "0 x0";
    if (r.lo === r.hi) out.push(` r${j}: ${lhs} = ${num(r.lo)}`);
    else {
      if (r.lo > Number.NEGATIVE_INFINITY) out.push(` r${j}l: ${lhs} >= ${num(r.lo)}`);
      if (r.hi < Number.POSITIVE_INFINITY) out.push(` r${j}h: ${lhs} <= ${num(r.hi)}`);
    }
  });
  out.push("Bounds");
  model.vars.forEach((v, i) => {
    const lb = v.lb === Number.NEGATIVE_INFINITY ? "-inf" : num(v.lb);
    const ub = v.ub === Number.POSITIVE_INFINITY ? "+inf" : num(v.ub);
    out.push(` ${lb} <= x${i} <= ${ub}`);
  });
  const ints = model.vars.flatMap((v, i) => (v.integer ? [`x${i}`] : []));
  if (ints.length) out.push("General", ` ${ints.join(" ")}`);
  out.push("End");
  return out.join("\n");
}

async function solveHighs(model: LpModel, o: SolveOptions): Promise<LpSolution> {
  highsPromise ??= highsLoader();
  const highs = await highsPromise;
  const t0 = performance.now();
  try {
    const res = highs.solve(toLpText(model), {
      time_limit: (o.timeLimitMs ?? 30_000) / 1000,
      mip_rel_gap: o.gap ?? 1e-3,
      // Measured on the planner's own problems (bench/planner.ts): ageing LP rows out sooner and a smaller
      // cut pool proved the 1 % gap at (10,5,3) in 9.5 s where the defaults hit a 30 s limit, and halved (4,3,2).
      mip_lp_age_limit: 5,
      mip_pool_soft_limit: 100,
      output_flag: false,
      log_to_console: false,
    });
    const solveMs = performance.now() - t0;
    const values = model.vars.map((_, i) => res.Columns[`x${i}`]?.Primal ?? 0);
    const status =
      res.Status === "Optimal"
        ? "optimal"
        : res.Status === "Infeasible"
          ? "infeasible"
          : res.Status === "Time limit reached"
            ? isFeasible(model, values)
              ? "feasible"
              : "timeout"
            : "error";
    return {
      status,
      solver: "highs",
      values,
      objective: objective(model, values),
      solveMs,
      message: res.Status,
    };
  } catch (e) {
    // A failed wasm solve can leave the module unusable: load a fresh one next time.
    highsPromise = undefined;
    return {
      status: "error",
      solver: "highs",
      values: [],
      objective: Number.NaN,
      solveMs: performance.now() - t0,
      message: String(e),
    };
  }
}

// ------------------------------------------------------------ javascript-lp-solver

function solveJslp(model: LpModel, o: SolveOptions): LpSolution {
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
    options: { tolerance: o.gap ?? 1e-3, timeout: o.timeLimitMs ?? 30_000 },
  });
  const solveMs = performance.now() - t0;
  const values = model.vars.map((_, i) => Number(res[`x${i}`] ?? 0));
  // On timeout it can report `feasible` with fractional integers: trust only a verified solution.
  const ok = res.feasible === true && isFeasible(model, values);
  return {
    status: ok
      ? solveMs >= (o.timeLimitMs ?? 30_000)
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

/** Load the HiGHS wasm module now (simulations do this before virtual time starts, so a plan never waits on real I/O). */
export async function preloadSolvers(): Promise<void> {
  highsPromise ??= highsLoader();
  await highsPromise;
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
