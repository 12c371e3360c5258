import { isFeasible, type LpModel, type LpRow, objective } from "./lp-model.js";

/**
 * Block structure of a MIP: variables in blocks (`LpModel.blocks`), each row either inside one block or
 * coupling several. The planner's model has one block per LLM; only the GPU supply and spot-pool rows
 * couple them. Two uses, both exact in what they claim:
 * - a Lagrangian bound: price the coupling rows with the LP relaxation's duals and the problem falls
 *   apart into one small MIP per block; the sum of their proven lower bounds (plus the prices times the
 *   rows' limits) is a lower bound on the whole MIP, stronger than the LP's by the blocks' integrality
 *   gaps — which is where the planner's gap lives (minimum instances and capacity rounding per model);
 * - block-coordinate descent, a primal heuristic: re-optimise one block at a time with the others fixed
 *   (the coupling rows' limits minus what the others use), keeping a change only if the whole plan
 *   verifies and costs less.
 * The solver is a port (`SubMip`), so this file is pure arithmetic on models.
 */
export interface Blocks {
  /** Variable indices per block. */
  vars: number[][];
  /** Indices of each block's own rows. */
  rows: number[][];
  /** Rows that span blocks. */
  coupling: number[];
  /** Block of each variable. */
  of: readonly number[];
}

/** The model's blocks, or undefined when it has fewer than two or nothing couples them. */
export function blockStructure(model: LpModel): Blocks | undefined {
  const of = model.blocks;
  if (!of || of.length !== model.vars.length) return undefined;
  const ids = [...new Set(of)].sort((a, b) => a - b);
  if (ids.length < 2) return undefined;
  const slot = new Map(ids.map((b, k) => [b, k]));
  const vars: number[][] = ids.map(() => []);
  const rows: number[][] = ids.map(() => []);
  const coupling: number[] = [];
  const blockOf = of.map((b) => slot.get(b)!);
  blockOf.forEach((b, i) => {
    vars[b]!.push(i);
  });
  model.rows.forEach((r, j) => {
    const first = r.terms.length ? blockOf[r.terms[0]![0]]! : -1;
    if (first >= 0 && r.terms.every(([i]) => blockOf[i] === first)) rows[first]!.push(j);
    else if (r.terms.length) coupling.push(j);
  });
  return coupling.length ? { vars, rows, coupling, of: blockOf } : undefined;
}

/** Solves one block's MIP within a node budget; undefined when the solve's budget is used up. */
export type SubMip = (
  model: LpModel,
  o: {
    maxNodes: number;
    /** A feasible point to start from (the current plan's block), if any. */
    start?: readonly number[];
    /** Only the lower bound matters (primal heuristics off). */
    boundOnly: boolean;
  },
) => Promise<{ bound: number; values?: number[] } | undefined>;

/** Block b's own rows, plus each coupling row it touches with its limits less what the others use. */
function blockModel(
  model: LpModel,
  bl: Blocks,
  b: number,
  cost: readonly number[],
  others?: readonly number[],
): LpModel {
  const vars = bl.vars[b]!;
  const local = new Map(vars.map((i, k) => [i, k]));
  const remap = (terms: [number, number][]): [number, number][] => terms.map(([i, c]) => [local.get(i)!, c]);
  const rows: LpRow[] = bl.rows[b]!.map((j) => {
    const r = model.rows[j]!;
    return { ...r, terms: remap(r.terms) };
  });
  if (others) {
    for (const j of bl.coupling) {
      const r = model.rows[j]!;
      const mine = r.terms.filter(([i]) => bl.of[i] === b);
      if (!mine.length) continue;
      let rest = 0;
      for (const [i, c] of r.terms) if (bl.of[i] !== b) rest += c * (others[i] ?? 0);
      rows.push({ name: r.name, terms: remap(mine), lo: r.lo - rest, hi: r.hi - rest });
    }
  }
  return { vars: vars.map((i) => ({ ...model.vars[i]!, cost: cost[i]! })), rows };
}

/**
 * Lagrangian bound with the LP relaxation's row duals as prices (HiGHS' sign convention: a ≤ row's dual is
 * ≤ 0). Any prices of the right sign give a valid bound, so each is clipped to its row's side. Returns
 * undefined if a block MIP could not be solved (budget); the bound is then unproven and not used.
 */
export async function lagrangianBound(
  model: LpModel,
  bl: Blocks,
  rowDuals: readonly number[],
  subMip: SubMip,
  o: { nodesPerBlock: number; incumbent?: readonly number[] },
): Promise<number | undefined> {
  const cost = model.vars.map((v) => v.cost);
  let bound = 0;
  for (const j of bl.coupling) {
    const r = model.rows[j]!;
    let y = rowDuals[j] ?? 0;
    if (r.lo === Number.NEGATIVE_INFINITY) y = Math.min(y, 0);
    if (r.hi === Number.POSITIVE_INFINITY) y = Math.max(y, 0);
    if (y === 0) continue;
    for (const [i, c] of r.terms) cost[i]! -= y * c;
    bound += y * (y < 0 ? r.hi : r.lo);
  }
  for (let b = 0; b < bl.vars.length; b++) {
    const sub = blockModel(model, bl, b, cost);
    const start = o.incumbent ? bl.vars[b]!.map((i) => o.incumbent![i]!) : undefined;
    const r = await subMip(sub, { maxNodes: o.nodesPerBlock, boundOnly: true, ...(start ? { start } : {}) });
    if (!r || !Number.isFinite(r.bound)) return undefined;
    // Every plan's block b is feasible for block b's MIP, so its priced cost is at least that MIP's bound
    // (taken a hair lower, for the solver's tolerances).
    bound += r.bound - 1e-7 * Math.max(1, Math.abs(r.bound));
  }
  return bound;
}

/**
 * Block-coordinate descent from a feasible plan: each pass re-optimises every block in turn with the
 * others fixed; stops after a pass without improvement, after `maxPasses`, or when `stop(objective)` says
 * the plan is good enough (or the budget is gone).
 */
export async function improveByBlocks(
  model: LpModel,
  bl: Blocks,
  start: readonly number[],
  subMip: SubMip,
  o: { nodesPerBlock: number; maxPasses: number; stop: (objective: number) => boolean },
): Promise<{ values: number[]; objective: number; improved: number }> {
  let x = [...start];
  let best = objective(model, x);
  let improved = 0;
  const cost = model.vars.map((v) => v.cost);
  for (let pass = 0; pass < o.maxPasses; pass++) {
    let gained = false;
    for (let b = 0; b < bl.vars.length; b++) {
      if (o.stop(best)) return { values: x, objective: best, improved };
      const vars = bl.vars[b]!;
      const r = await subMip(blockModel(model, bl, b, cost, x), {
        maxNodes: o.nodesPerBlock,
        boundOnly: false,
        start: vars.map((i) => x[i]!),
      });
      if (!r) return { values: x, objective: best, improved };
      if (!r.values) continue;
      const y = [...x];
      vars.forEach((i, k) => {
        const v = r.values![k]!;
        y[i] = model.vars[i]!.integer ? Math.round(v) : v;
      });
      const obj = objective(model, y);
      if (obj < best - 1e-9 * Math.max(1, Math.abs(best)) && isFeasible(model, y)) {
        x = y;
        best = obj;
        improved++;
        gained = true;
      }
    }
    if (!gained) break;
  }
  return { values: x, objective: best, improved };
}
