/**
 * A solver-neutral mixed-integer linear program, the options and result of solving one, and its
 * verification. Every solution any solver returns is checked against the model with `violation`
 * before it is used.
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
  /**
   * Optional structure: the block of each variable (same length as `vars`). A row whose variables all
   * lie in one block belongs to it; the other rows couple blocks. HiGHS uses it, when the relaxation and
   * RENS do not prove the gap, for a Lagrangian bound (one small MIP per block) and a block-by-block
   * improvement of the best plan (`decompose.ts`). It never changes the model's meaning.
   */
  blocks?: readonly number[];
}

export type SolverName = "highs" | "jslp";

export interface LpSolution {
  status: "optimal" | "feasible" | "infeasible" | "timeout" | "error";
  solver: SolverName;
  values: number[];
  objective: number;
  solveMs: number;
  message?: string;
  /**
   * HiGHS only: proven relative gap (objective − bound) / max(1, |objective|) of the returned solution, where
   * bound is the best proven lower bound (LP relaxation, Lagrangian or MIP dual bound); 0 for an optimal LP.
   */
  gap?: number;
  /** HiGHS only: the proven lower bound behind `gap`. */
  bound?: number;
  /**
   * HiGHS, pure LPs only: the row duals, in HiGHS' convention (reduced cost = cost − Aᵀ·duals, so a binding
   * ≤ row's dual is ≤ 0 when minimising).
   */
  rowDuals?: number[];
  /** HiGHS only: the work the solve did — branch-and-bound nodes and simplex iterations over all its runs. */
  work?: { nodes: number; iterations: number };
}

export interface SolveOptions {
  solver?: SolverName | "auto";
  /**
   * Wall-clock limit (default 30 s; with `deterministic`, 10 min). With `deterministic` it is only a
   * safety net: the work budget is what stops the search.
   */
  timeLimitMs?: number;
  /** Relative MIP gap at which to stop (default 1e-3). */
  gap?: number;
  /**
   * Work budget (HiGHS): branch-and-bound nodes over all of one solve's MIP runs — RENS, the per-block
   * MIPs, the full MIP — each run getting HiGHS' `mip_max_nodes` from what is left. Default: unlimited;
   * with `deterministic`, 50,000. javascript-lp-solver has no such limit (only its wall-clock timeout).
   */
  maxNodes?: number;
  /**
   * Work budget (HiGHS): simplex iterations over all of one solve's runs (LP runs: `simplex_iteration_limit`;
   * MIP runs: counted by the interrupt callback — HiGHS' own limit does not bound a MIP). Default: unlimited;
   * with `deterministic`, 5,000,000.
   */
  maxIterations?: number;
  /**
   * Stop on work only, never on the clock, so that the same model gives the same solution on a fast and a
   * slow machine (the simulator's plans must be a function of the seed). No stage's budget is derived from
   * time; the wall-clock limit remains as a safety net, and a solve it stops says so in its message.
   */
  deterministic?: boolean;
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
