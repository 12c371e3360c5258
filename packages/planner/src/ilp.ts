/**
 * Solving the capacity plan and reading it back: `solvePlan` builds the MILP (`planning-model.ts`), solves
 * it (optionally trying LP rounding first, `lp-rounding.ts`), verifies the solution, and turns it into
 * targets, routing, unserved demand and notes — or keeps the current allocation when no verified plan exists.
 */
import { JSLP_MAX_INTEGERS, solve } from "./lp.js";
import { type LpModel, type LpSolution, objective, type SolveOptions, violation } from "./lp-model.js";
import { roundedRelaxation } from "./lp-rounding.js";
import { buildPlanningModel, type PlanningIndex } from "./planning-model.js";
import type { PlanningSnapshot } from "./snapshot.js";

/**
 * The capacity plan as a MILP: integer instances n[m,r,g] per model, region and
 * GPU type; continuous routing fractions x[m,s,d] of each origin region's
 * interactive demand to allowed serving regions; how new instances arrive
 * (reclaim a spot VM of the same model, swap the model on another model's spot
 * VM — warm migration — or boot a new VM); minimising GPU cost + start-up and
 * migration cost + churn + cross-region routing, subject to demand ≤ capacity
 * and GPU supply. Unserved demand is a penalised slack, so an infeasible
 * problem still yields the best relaxation, with the reason.
 */
export interface PlanTarget {
  model: string;
  region: string;
  gpu: string;
  instances: number;
  delta: number;
  reclaim: number;
  swap: number;
  boot: number;
}

export interface PlanResult {
  status: "optimal" | "feasible" | "relaxed" | "infeasible" | "timeout";
  targets: PlanTarget[];
  routing: { model: string; from: string; to: string; fraction: number }[];
  unserved: { model: string; region: string; tokensPerSecond: number }[];
  notes: string[];
  objective: number;
  solver: LpSolution["solver"];
  solveMs: number;
  /** Proven relative optimality gap of the plan (HiGHS: against the LP or MIP dual bound), when the solver has one. */
  gap?: number;
  /** Largest constraint violation of the published solution (verified ≤ 1e-5). */
  maxViolation: number;
  /** HiGHS only: the solve's work (branch-and-bound nodes, simplex iterations) — what a work budget counts. */
  work?: { nodes: number; iterations: number };
  size: { variables: number; integers: number; rows: number };
}

export async function solvePlan(
  s: PlanningSnapshot,
  opts: SolveOptions & { rounding?: boolean } = {},
): Promise<PlanResult> {
  const { model, index, regions } = buildPlanningModel(s);
  const size = {
    variables: model.vars.length,
    integers: model.vars.filter((v) => v.integer).length,
    rows: model.rows.length,
  };
  const rounded = await acceptedRounding(model, index, s, opts);
  const sol = rounded?.sol ?? (await solve(model, { gap: 0.01, ...opts }));
  const v = sol.values.length
    ? violation(model, sol.values)
    : { max: Number.POSITIVE_INFINITY, where: "no solution" };
  const notes: string[] = rounded ? [rounded.note] : [];
  if (sol.status === "infeasible" || sol.status === "error" || sol.status === "timeout" || v.max > 1e-5)
    return keepCurrentAllocation(s, sol, v, notes, size);
  const targets = planTargets(s, index, sol.values);
  const routing = planRouting(index, sol.values);
  const unserved = unservedDemand(s, index, regions, sol.values, notes);
  for (const [k, i] of index.minSlack) {
    const short = Math.round(solutionValue(sol.values, i));
    const model = k.slice(0, k.indexOf("|"));
    const min = s.config.minInstancesByModel?.[model] ?? s.config.minInstances;
    if (short > 0)
      notes.push(
        `${k.replace("|", " in ")} kept ${short} below the minimum of ${min} instances: no GPU supply left`,
      );
  }
  for (const t of targets) {
    if (t.delta > 0)
      notes.push(
        `${t.model} in ${t.region} on ${t.gpu}: +${t.delta} (reclaim ${t.reclaim}, swap ${t.swap}, boot ${t.boot})`,
      );
    else if (t.delta < 0) notes.push(`${t.model} in ${t.region} on ${t.gpu}: ${t.delta} (to spot)`);
  }
  return {
    status: unserved.length ? "relaxed" : sol.status === "optimal" ? "optimal" : "feasible",
    targets,
    routing,
    unserved,
    notes,
    objective: sol.objective,
    solver: sol.solver,
    solveMs: sol.solveMs,
    ...(sol.gap === undefined ? {} : { gap: sol.gap }),
    maxViolation: v.max,
    ...(sol.work ? { work: sol.work } : {}),
    size,
  };
}

/**
 * Optional (rounding: true): LP rounding first, accepted only when provably within the gap target of
 * the relaxation's bound. On the benchmark problems it is not yet good enough (5–7 % after repair;
 * supply rows can break), so by default the MIP is solved directly.
 */
async function acceptedRounding(
  model: LpModel,
  index: PlanningIndex,
  s: PlanningSnapshot,
  opts: SolveOptions & { rounding?: boolean },
): Promise<{ sol: LpSolution; note: string } | undefined> {
  const integers = model.vars.filter((v) => v.integer).length;
  if (!((opts.rounding ?? false) && integers > JSLP_MAX_INTEGERS)) return undefined;
  const r = await roundedRelaxation(model, index, s, opts);
  if (!r) return undefined;
  const obj = objective(model, r.values);
  const gap = (obj - r.bound) / Math.max(1e-9, Math.abs(obj));
  if (gap > (opts.gap ?? 0.01)) return undefined;
  return {
    sol: { status: "feasible", solver: "highs", values: r.values, objective: obj, solveMs: r.ms },
    note: `LP rounding within ${(100 * gap).toFixed(2)} % of the relaxation bound`,
  };
}

/** Never publish nothing: a failed or unverified solve keeps the current allocation and says why. */
function keepCurrentAllocation(
  s: PlanningSnapshot,
  sol: LpSolution,
  v: { max: number; where: string },
  notes: string[],
  size: PlanResult["size"],
): PlanResult {
  notes.push(
    `solver ${sol.solver} returned ${sol.status}${sol.message ? ` (${sol.message})` : ""}; largest violation ${v.where}: keeping the current allocation`,
  );
  return {
    status: sol.status === "timeout" ? "timeout" : "infeasible",
    targets: s.current.map((c) => ({
      model: c.model,
      region: c.region,
      gpu: c.gpu,
      instances: c.instances,
      delta: 0,
      reclaim: 0,
      swap: 0,
      boot: 0,
    })),
    routing: [],
    unserved: [],
    notes,
    objective: Number.NaN,
    solver: sol.solver,
    solveMs: sol.solveMs,
    maxViolation: v.max,
    ...(sol.work ? { work: sol.work } : {}),
    size,
  };
}

/** A variable's value in the solution (0 for a variable the model does not have). */
function solutionValue(values: readonly number[], i: number | undefined): number {
  return i === undefined ? 0 : (values[i] ?? 0);
}

/** Instances per (model, region, GPU type) in the solution, with where the new ones come from. */
function planTargets(s: PlanningSnapshot, index: PlanningIndex, values: readonly number[]): PlanTarget[] {
  const curOf = (m: string, r: string, g: string) =>
    s.current
      .filter((c) => c.model === m && c.region === r && c.gpu === g)
      .reduce((a, c) => a + c.instances, 0);
  const targets: PlanTarget[] = [];
  for (const [k, i] of [...index.n].sort(([a], [b]) => a.localeCompare(b))) {
    const [m, r, g] = k.split("|") as [string, string, string];
    const n = Math.round(solutionValue(values, i));
    const c = curOf(m, r, g);
    if (n === 0 && c === 0) continue;
    targets.push({
      model: m,
      region: r,
      gpu: g,
      instances: n,
      delta: n - c,
      reclaim: Math.round(solutionValue(values, index.rc.get(k))),
      swap: Math.round(solutionValue(values, index.sw.get(k))),
      boot: Math.round(solutionValue(values, index.bt.get(k))),
    });
  }
  return targets;
}

/** The routing fractions in the solution (4 decimals, zeros dropped), sorted. */
function planRouting(index: PlanningIndex, values: readonly number[]): PlanResult["routing"] {
  return [...index.x]
    .map(([k, i]) => {
      const [m, src, dst] = k.split("|") as [string, string, string];
      return { model: m, from: src, to: dst, fraction: Math.round(solutionValue(values, i) * 1e4) / 1e4 };
    })
    .filter((r) => r.fraction > 0)
    .sort((a, b) => `${a.model}${a.from}${a.to}`.localeCompare(`${b.model}${b.from}${b.to}`));
}

/** Demand the solution leaves unserved, each with a note naming the shortfall in VMs. */
function unservedDemand(
  s: PlanningSnapshot,
  index: PlanningIndex,
  regions: readonly string[],
  values: readonly number[],
  notes: string[],
): PlanResult["unserved"] {
  const unserved: PlanResult["unserved"] = [];
  for (const [k, i] of index.u) {
    const u = solutionValue(values, i);
    if (u <= 1e-6) continue;
    const [m, r] = k.split("|") as [string, string];
    unserved.push({ model: m, region: r, tokensPerSecond: Math.round(u) });
    // Name the shortfall in VMs of the type that would cover it best.
    const best = s.gpuTypes
      .map((g) => ({ g: g.id, cap: s.capacity[m]?.[g.id] ?? 0 }))
      .filter((x) => x.cap > 0)
      .sort((a, b) => b.cap - a.cap)[0];
    const vms = best ? Math.ceil(u / best.cap) : 0;
    const used = regions.includes(r)
      ? s.gpuTypes.map((g) => `${g.id} ${s.supply[r]?.[g.id] ?? 0}`).join(", ")
      : "none";
    notes.push(
      `demand for ${m} in ${r} exceeds capacity by ${Math.round(u)} tokens/s: GPU supply in ${r} short by ${vms} ${best?.g ?? "?"} VMs (supply: ${used})`,
    );
  }
  return unserved;
}
