/**
 * LP rounding of the capacity plan: a cheap alternative to solving the MILP, used only when asked
 * (`solvePlan`'s `rounding`) and only when provably within the gap target. Separate from `ilp.ts` because
 * it is a heuristic of its own with its own repair steps.
 */
import { pairKey } from "@sageserve/protocol";
import { solve } from "./lp.js";
import { isFeasible, type LpModel, type SolveOptions } from "./lp-model.js";
import { currentAllocation, type PlanningIndex } from "./planning-model.js";
import type { PlanningSnapshot } from "./snapshot.js";

type Allocation = Map<string, { instances: number; spot: number }>;

/**
 * LP rounding: solve the relaxation, round every instance count up (capacity and minimum rows stay
 * satisfied), recompute how the new instances arrive, and keep the result if it is feasible. Returns
 * the rounded solution and the relaxation's objective (a lower bound on any plan's cost).
 */
export async function roundedRelaxation(
  model: LpModel,
  index: PlanningIndex,
  s: PlanningSnapshot,
  opts: SolveOptions,
): Promise<{ values: number[]; bound: number; ms: number } | undefined> {
  const relaxed: LpModel = { vars: model.vars.map((v) => ({ ...v, integer: false })), rows: model.rows };
  const lp = await solve(relaxed, { ...opts, solver: "highs" });
  if (lp.status !== "optimal") return undefined;
  const x = [...lp.values];
  const cur = currentAllocation(s);
  const spotLeft = new Map<string, number>();
  for (const [k, e] of cur) {
    const [, r, g] = k.split("|") as [string, string, string];
    spotLeft.set(pairKey(r, g), (spotLeft.get(pairKey(r, g)) ?? 0) + e.spot);
  }
  const nKeys = [...index.n].sort(([a], [b]) => a.localeCompare(b));
  for (const [, i] of nKeys) x[i] = Math.ceil((x[i] ?? 0) - 1e-7);
  giveBackUnneeded(model, index, x, nKeys);
  settleArrivals(model, index, x, nKeys, cur, spotLeft);
  settleSlacks(model, index, x);
  return isFeasible(model, x) ? { values: x, bound: lp.objective, ms: lp.solveMs } : undefined;
}

/**
 * Give back instances rounding added but nothing needs: most expensive first, one at a time, while every
 * capacity row (routing fixed) and minimum row stays satisfied without slack.
 */
function giveBackUnneeded(
  model: LpModel,
  index: PlanningIndex,
  x: number[],
  nKeys: readonly [string, number][],
): void {
  const guarded = model.rows.filter((r) => r.name.startsWith("capacity[") || r.name.startsWith("min["));
  const slackIdx = new Set([...index.u.values(), ...index.minSlack.values()]);
  const rowsOf = new Map<number, LpModel["rows"]>();
  for (const r of guarded)
    for (const [j] of r.terms) if (!slackIdx.has(j)) rowsOf.set(j, [...(rowsOf.get(j) ?? []), r]);
  const rowOk = (r: LpModel["rows"][number]) => {
    let lhs = 0;
    for (const [j, c] of r.terms) if (!slackIdx.has(j)) lhs += c * (x[j] ?? 0);
    return lhs >= r.lo - 1e-7;
  };
  const byCost = [...nKeys].sort(([, a], [, b]) => model.vars[b]!.cost - model.vars[a]!.cost);
  for (const [, i] of byCost) {
    const rows = rowsOf.get(i) ?? [];
    while ((x[i] ?? 0) > 0) {
      x[i] = (x[i] ?? 0) - 1;
      if (rows.every(rowOk)) continue;
      x[i] = (x[i] ?? 0) + 1;
      break;
    }
  }
}

/** How the rounded counts arrive and leave: reclaim, swap, boot and down set from the current allocation. */
function settleArrivals(
  model: LpModel,
  index: PlanningIndex,
  x: number[],
  nKeys: readonly [string, number][],
  cur: Allocation,
  spotLeft: Map<string, number>,
): void {
  for (const [k, i] of nKeys) {
    const n = x[i] ?? 0;
    const c = cur.get(k) ?? { instances: 0, spot: 0 };
    const [, r, g] = k.split("|") as [string, string, string];
    const pool = pairKey(r, g);
    let up = Math.max(0, n - c.instances);
    // New instances: own spot VMs first, then other models' spot VMs, then new VMs.
    const rc = Math.min(up, c.spot, spotLeft.get(pool) ?? 0);
    spotLeft.set(pool, (spotLeft.get(pool) ?? 0) - rc);
    up -= rc;
    const sw = Math.min(up, spotLeft.get(pool) ?? 0);
    spotLeft.set(pool, (spotLeft.get(pool) ?? 0) - sw);
    up -= sw;
    x[index.rc.get(k)!] = rc;
    x[index.sw.get(k)!] = sw;
    x[index.bt.get(k)!] = up;
    const dn = model.vars.findIndex((v) => v.name === `down[${k}]`);
    if (dn >= 0) x[dn] = Math.max(0, c.instances - n);
  }
}

/** Rounding up only adds capacity, so unserved and below-minimum slack can only shrink: each is set to what its row still needs. */
function settleSlacks(model: LpModel, index: PlanningIndex, x: number[]): void {
  for (const [k, i] of index.u) settleSlack(model, x, i, `capacity[${k}]`);
  for (const [k, i] of index.minSlack) settleSlack(model, x, i, `min[${k}]`);
}

function settleSlack(model: LpModel, x: number[], i: number, rowName: string): void {
  const row = model.rows.find((r) => r.name === rowName)!;
  let lhs = 0;
  for (const [j, c] of row.terms) if (j !== i) lhs += c * (x[j] ?? 0);
  x[i] = Math.max(0, row.lo - lhs);
}
