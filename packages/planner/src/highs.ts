import { createRequire } from "node:module";
import type { Highs, HighsCallbackMap, Model as HighsModel, ModelData } from "highs";
import { SolveBudget } from "./budget.js";
import { blockStructure, improveByBlocks, lagrangianBound, type SubMip } from "./decompose.js";
import {
  isFeasible,
  type LpModel,
  type LpRow,
  type LpSolution,
  type LpVar,
  objective,
  type SolveOptions,
} from "./lp-model.js";

/** HiGHS compiled to WebAssembly (the `highs` package, CommonJS: require() gives its real exports). */
const require = createRequire(import.meta.url);
const highsLoader = require("highs") as () => Promise<Highs>;
let highsPromise: Promise<Highs> | undefined;

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

/** The model as HiGHS arrays (CSR rows; duplicate terms of a row summed, zeros dropped); no integrality. */
export function toHighsData(model: LpModel): ModelData {
  const starts = new Int32Array(model.rows.length + 1);
  const indices: number[] = [];
  const values: number[] = [];
  const acc = new Map<number, number>();
  model.rows.forEach((r, j) => {
    acc.clear();
    for (const [i, c] of r.terms) acc.set(i, (acc.get(i) ?? 0) + c);
    for (const [i, c] of acc) {
      if (c === 0) continue;
      indices.push(i);
      values.push(c);
    }
    starts[j + 1] = indices.length;
  });
  // HiGHS' infinity is IEEE Infinity, so ±Infinity bounds pass through unchanged.
  return {
    numCols: model.vars.length,
    numRows: model.rows.length,
    colCost: Float64Array.from(model.vars, (v) => v.cost),
    colLower: Float64Array.from(model.vars, (v) => v.lb),
    colUpper: Float64Array.from(model.vars, (v) => v.ub),
    rowLower: Float64Array.from(model.rows, (r) => r.lo),
    rowUpper: Float64Array.from(model.rows, (r) => r.hi),
    matrix: {
      format: "csr",
      numRows: model.rows.length,
      numCols: model.vars.length,
      starts,
      indices: Int32Array.from(indices),
      values: Float64Array.from(values),
    },
  };
}

/**
 * Options for every HiGHS run. Measured on the planner's problems (scratch/highs-api.ts, bench/planner.ts):
 * - feasibility jump costs ~13 ms per MIP *and per nested sub-MIP* in this wasm build (a 2-variable knapsack
 *   takes 13–40 ms with it, 0.5 ms without) and never found a useful plan (its first point pays unserved
 *   demand), so it is off;
 * - symmetry detection and restarts found nothing here and cost root time;
 * - ageing LP rows out sooner and a smaller cut pool proved the 1 % gap at (10,5,3) in 9.5 s where the
 *   defaults hit a 30 s limit (text-API era; kept).
 * `simplex_iteration_limit` is set for LP runs only: on a MIP this build loops instead of stopping (a
 * (10,5,3) MIP with a limit of 500 never returned), so MIP runs count iterations in their callback.
 */
const HIGHS_OPTIONS = {
  output_flag: false,
  log_to_console: false,
  mip_lp_age_limit: 5,
  mip_pool_soft_limit: 100,
  mip_heuristic_run_feasibility_jump: false,
  mip_detect_symmetry: false,
  mip_allow_restart: false,
} as const;

/**
 * Block MIPs run only for their bound: no primal heuristics ((30,10,3) seed 1: 30 root solves in 0.9 s instead
 * of 1.7 s, to the same bound); with the current plan's block as a start, branching still prunes.
 */
const BOUND_ONLY_OPTIONS = {
  mip_heuristic_effort: 0,
  mip_heuristic_run_rens: false,
  mip_heuristic_run_rins: false,
  mip_heuristic_run_root_reduced_cost: false,
  mip_heuristic_run_zi_round: false,
  mip_heuristic_run_shifting: false,
} as const;

const INT_TOL = 1e-6;
const HIGHS_INT_MAX = 2_147_483_647;
/** Up to this many integers RENS also tries the wider box [floor − 1, ceil + 1]. */
const RENS_WIDE_MAX_INTEGERS = 200;
/**
 * Branch-and-bound nodes per block MIP (Lagrangian bound and block descent). (30,10,3) seed 1, 30 blocks, no
 * start: the bound is 0.80 / 0.90 / 1.15 % above the LP's with 1 / 200 / unlimited nodes per block, in 0.9 /
 * 2.0 / 16 s; past 200 the bound stops paying for its time.
 */
const BLOCK_NODES = 200;
/**
 * Below this many integers the full MIP is faster than the block stage: (4,3,2), 24 integers and 4 blocks,
 * 57 / 98 ms (seeds 2 / 4) with the MIP and 150 / 224 ms with blocks; (10,5,3), 150 integers, worst seed
 * 6.3 s with the MIP and 2.7 s with blocks (same machine, same load).
 */
const BLOCKS_MIN_INTEGERS = 100;
/** Block descent passes; at (30,10,3) seeds 1–3 the second pass improved one block once, the third never. */
const BLOCK_PASSES = 3;

/**
 * HiGHS (wasm) through its persistent Model API, on one native model:
 * 1. LP relaxation (presolve off: 0.55 s instead of 1.6 s at (100,20,4)) — its objective is a proven bound;
 * 2. RENS: integers the LP left integral are fixed, fractional ones boxed to [floor, ceil] (small problems: then
 *    also [floor − 1, ceil + 1]); the sub-MIP stops as soon as its incumbent is within the gap target of the
 *    LP bound. On large planner problems the relaxation is tight (optimum ≈ 0.1–0.2 % above it), so this alone
 *    proves the gap;
 * 3. with a block structure (`LpModel.blocks`): the Lagrangian bound from the LP's duals and block-coordinate
 *    descent from the best plan (`decompose.ts`) — mid-size planner problems, where the LP bound is 1–2 %
 *    below the optimum because of each model's integrality, are proven here;
 * 4. otherwise the full MIP (started from the best plan when that is within 5 % of the bound), stopped as
 *    soon as the best plan and the best proven bound (LP, Lagrangian or MIP dual) are within the gap target.
 * Every run takes its limits from the solve's budget (`budget.ts`): a share of the time left, or — in
 * deterministic mode — of the work left only. Every returned solution is verified against the model;
 * `gap`/`bound` report what was proven, `work` what it cost.
 */
export async function solveHighs(model: LpModel, o: SolveOptions): Promise<LpSolution> {
  highsPromise ??= highsLoader();
  const highs = await highsPromise;
  const t0 = performance.now();
  const budget = SolveBudget.from(o);
  const target = o.gap ?? 1e-3;
  const MS = highs.constants.modelStatus;
  const relGap = (p: number, d: number) => (p - d) / Math.max(1, Math.abs(p));
  const ints: number[] = [];
  model.vars.forEach((v, i) => {
    if (v.integer) ints.push(i);
  });
  let m: HighsModel | undefined;
  try {
    const hm = highs.createModel();
    m = hm;
    /**
     * One run of `on` with its share of the budget (and at most `nodeCap` nodes); charged what it used. MIP
     * runs get the interrupt callback, which also enforces the iteration budget.
     */
    const runOn: RunOn = (on, opts, share, mip, nodeCap = HIGHS_INT_MAX) => {
      // time_limit counts cumulative run time since the last clock reset, so reset before each run.
      on.zeroAllClocks();
      const lim = budget.limits(share);
      on.options.set({
        ...opts,
        time_limit: lim.timeLimitS,
        mip_max_nodes: Math.min(nodeCap, lim.maxNodes),
        simplex_iteration_limit: mip ? HIGHS_INT_MAX : lim.maxIterations,
      });
      const status = on.run(mip?.(lim)).modelStatus;
      const info = (k: string) => Math.max(0, Number(on.info.get(k)) || 0);
      budget.charge(mip ? info("mip_node_count") : 0, info("simplex_iteration_count"));
      if (status === MS.timeLimit) budget.clockStopped = true;
      return status;
    };
    const primalOf = (on: HighsModel): number[] | undefined => {
      if (Number(on.info.get("primal_solution_status")) !== highs.constants.solutionStatus.feasible)
        return undefined;
      return Array.from(on.getSolution().colValue);
    };
    const done = (
      status: LpSolution["status"],
      values: number[] | undefined,
      bound: number,
      message: string,
    ): LpSolution => {
      const obj = values ? objective(model, values) : Number.NaN;
      const gap = values && Number.isFinite(bound) ? Math.max(0, relGap(obj, bound)) : undefined;
      const why = [
        message,
        ...(gap === undefined ? [] : [`proven gap ${(100 * gap).toFixed(3)} %`]),
        ...(budget.deterministic && budget.clockStopped
          ? ["stopped by the wall-clock safety net, not by work: this result may differ between machines"]
          : []),
      ];
      return {
        status,
        solver: "highs",
        values: values ?? [],
        objective: obj,
        solveMs: performance.now() - t0,
        message: why.join("; "),
        ...(gap === undefined ? {} : { gap, bound }),
        work: budget.used,
      };
    };

    // 1. LP relaxation (the whole model when there are no integers).
    hm.passModel(toHighsData(model));
    const lpStatus = runOn(hm, { ...HIGHS_OPTIONS, presolve: "off" }, 1);
    const lpValues = lpStatus === MS.optimal ? primalOf(hm) : undefined;
    if (ints.length === 0) {
      if (lpValues && isFeasible(model, lpValues))
        return {
          ...done("optimal", lpValues, objective(model, lpValues), "LP optimal"),
          rowDuals: Array.from(hm.getSolution().rowDual),
        };
      if (lpStatus === MS.infeasible) return done("infeasible", undefined, Number.NaN, "LP infeasible");
      if (lpStatus === MS.timeLimit || lpStatus === MS.iterationLimit)
        return done("timeout", undefined, Number.NaN, `LP stopped by its ${budgetName(lpStatus, MS)}`);
      return done("error", undefined, Number.NaN, `LP model status ${lpStatus}`);
    }
    // An infeasible relaxation proves the MIP infeasible.
    if (lpStatus === MS.infeasible)
      return done("infeasible", undefined, Number.NaN, "LP relaxation infeasible");
    const lpBound = lpValues ? hm.getObjectiveValue() : Number.NEGATIVE_INFINITY;
    const rowDuals = lpValues ? Array.from(hm.getSolution().rowDual) : undefined;

    let best: number[] | undefined;
    let bestObj = Number.POSITIVE_INFINITY;
    const offer = (raw: number[] | undefined) => {
      if (!raw) return;
      // Prefer exact integers (HiGHS leaves noise up to mip_feasibility_tolerance), else the raw values.
      const rounded = [...raw];
      for (const i of ints) rounded[i] = Math.round(rounded[i]!);
      const x = isFeasible(model, rounded) ? rounded : isFeasible(model, raw) ? raw : undefined;
      if (!x) return;
      const obj = objective(model, x);
      if (obj < bestObj) {
        best = x;
        bestObj = obj;
      }
    };
    /** The best proven lower bound so far (LP, then Lagrangian). */
    let floor = lpBound;
    const proven = () => best !== undefined && relGap(bestObj, floor) <= target;
    let stoppedFor: "gap" | "work" | undefined;
    const callbacks =
      (useDual: boolean) =>
      (lim: { maxIterations: number }): HighsCallbackMap => ({
        [highs.constants.callbackType.mipInterrupt]: (e) => {
          const p = Math.min(e.data.mip_primal_bound ?? Number.POSITIVE_INFINITY, bestObj);
          const d = Math.max(floor, useDual ? (e.data.mip_dual_bound ?? floor) : floor);
          if (relGap(p, d) <= target) {
            stoppedFor = "gap";
            e.interrupt();
          } else if (budget.overrun(Number(e.data.mip_total_lp_iterations ?? 0), lim)) {
            stoppedFor = "work";
            e.interrupt();
          }
          return undefined;
        },
      });
    const sel = { kind: "set" as const, indices: Int32Array.from(ints) };
    hm.changeColsIntegrality(
      sel,
      Int32Array.from(ints, () => highs.constants.variableType.integer),
    );
    const mipOptions = { ...HIGHS_OPTIONS, presolve: "choose", mip_rel_gap: target };

    // 2. RENS around the relaxation: box [floor, ceil] first; on small problems also [floor − 1, ceil + 1], which
    // is still cheap there and finds the 1 % plan where the tight box cannot ((4,3,2) seeds 1–8: worst 124 ms →
    // 40 ms); on large ones the wider sub-MIP costs seconds ((100,20,4): 3 s → 8–17 s) and the tight box suffices.
    if (lpValues) {
      if (ints.every((i) => Math.abs(lpValues[i]! - Math.round(lpValues[i]!)) <= INT_TOL))
        offer([...lpValues]);
      const widths = ints.length <= RENS_WIDE_MAX_INTEGERS ? [0, 1] : [0];
      for (const w of widths) {
        if (proven() || budget.exhausted()) break;
        const lo = Float64Array.from(ints, (i) =>
          Math.max(model.vars[i]!.lb, Math.floor(lpValues[i]! + INT_TOL) - w),
        );
        const hi = Float64Array.from(ints, (i) =>
          Math.min(model.vars[i]!.ub, Math.ceil(lpValues[i]! - INT_TOL) + w),
        );
        hm.changeColsBounds(sel, lo, hi);
        stoppedFor = undefined;
        // Each neighbourhood gets at most a third of what is left.
        runOn(hm, mipOptions, 1 / 3, callbacks(false));
        offer(primalOf(hm));
        hm.changeColsBounds(
          sel,
          Float64Array.from(ints, (i) => model.vars[i]!.lb),
          Float64Array.from(ints, (i) => model.vars[i]!.ub),
        );
        hm.clearSolver();
      }
      if (proven()) return done("optimal", best, floor, "RENS incumbent within the gap of the LP bound");
    }

    // 3. Blocks: a Lagrangian bound, then block-coordinate descent from the best plan.
    const blocks = rowDuals && ints.length >= BLOCKS_MIN_INTEGERS ? blockStructure(model) : undefined;
    if (blocks && rowDuals && !budget.exhausted()) {
      const subMip = blockSolver(highs, budget, runOn, primalOf);
      const lag = await lagrangianBound(model, blocks, rowDuals, subMip, {
        nodesPerBlock: BLOCK_NODES,
        ...(best ? { incumbent: best } : {}),
      });
      if (lag !== undefined && lag > floor) floor = lag;
      let improved = 0;
      if (best && !proven()) {
        const r = await improveByBlocks(model, blocks, best, subMip, {
          nodesPerBlock: BLOCK_NODES,
          maxPasses: BLOCK_PASSES,
          stop: (obj) => relGap(obj, floor) <= target || budget.exhausted(),
        });
        offer(r.values);
        improved = r.improved;
      }
      if (proven())
        return done(
          "optimal",
          best,
          floor,
          `${improved ? `block descent (${improved} improvements)` : "RENS incumbent"} within the gap of the ${floor > lpBound ? "Lagrangian" : "LP"} bound`,
        );
    }

    // 4. The full MIP. A model keeps its last run's solution as the next MIP start unless cleared; a start far
    // above the bound made HiGHS' root heuristics and cuts worse ((4,3,2) seed 4: 37 nodes / 220 ms instead of
    // 5 nodes / 35 ms with RENS +5.7 %), a close one helped ((10,5,3) seed 3 at +2.7 %: 5 s instead of 19 s).
    // Either way the callback stops on the gap between our best solution and the bound.
    let status: number = MS.notSet;
    if (!budget.exhausted()) {
      hm.clearSolver();
      if (best && relGap(bestObj, floor) <= 0.05) hm.setSolution({ colValue: Float64Array.from(best) });
      stoppedFor = undefined;
      status = runOn(hm, mipOptions, 1, callbacks(true));
      offer(primalOf(hm));
      const dual = Number(hm.info.get("mip_dual_bound"));
      if (Number.isFinite(dual)) floor = Math.max(floor, dual);
    }
    if (status === MS.infeasible && !best) return done("infeasible", undefined, Number.NaN, "MIP infeasible");
    const limited = budget.exhausted() || stoppedFor === "work" || status === MS.timeLimit;
    if (!best)
      return done(
        limited ? "timeout" : "error",
        undefined,
        Number.NaN,
        limited ? `${spent(budget)} before any verified solution` : `MIP model status ${status}, no solution`,
      );
    const ok = status === MS.optimal || stoppedFor === "gap" || proven();
    return done(
      ok ? "optimal" : "feasible",
      best,
      floor,
      ok
        ? "MIP within the gap"
        : limited
          ? `${spent(budget)}: best verified plan`
          : `MIP model status ${status}`,
    );
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
      work: budget.used,
    };
  } finally {
    try {
      m?.dispose(); // native memory is not garbage-collected
    } catch {
      // the module is being replaced anyway
    }
  }
}

const budgetName = (status: number, MS: Highs["constants"]["modelStatus"]) =>
  status === MS.timeLimit ? "time limit" : "iteration budget";

const spent = (b: SolveBudget) =>
  b.clockStopped
    ? "time limit reached"
    : `work budget used up (${b.used.nodes} nodes, ${b.used.iterations} simplex iterations)`;

type RunOn = (
  on: HighsModel,
  opts: Record<string, string | number | boolean>,
  share: number,
  mip?: (lim: { maxIterations: number }) => HighsCallbackMap,
  nodeCap?: number,
) => number;

/** The `SubMip` port on HiGHS: one throw-away native model per block MIP, charged to the solve's budget. */
function blockSolver(
  highs: Highs,
  budget: SolveBudget,
  runOn: RunOn,
  primalOf: (on: HighsModel) => number[] | undefined,
): SubMip {
  return async (sub, o) => {
    if (budget.exhausted()) return undefined;
    const h = highs.createModel();
    try {
      h.passModel({
        ...toHighsData(sub),
        integrality: Int32Array.from(sub.vars, (v) =>
          v.integer ? highs.constants.variableType.integer : highs.constants.variableType.continuous,
        ),
      });
      if (o.start) h.setSolution({ colValue: Float64Array.from(o.start) });
      const opts = {
        ...HIGHS_OPTIONS,
        ...(o.boundOnly ? BOUND_ONLY_OPTIONS : {}),
        presolve: "choose",
        mip_rel_gap: 1e-6,
      };
      // A block without integers is an LP: its optimum is its bound.
      if (!sub.vars.some((v) => v.integer)) {
        const st = runOn(h, { ...HIGHS_OPTIONS, presolve: "off" }, 1);
        const values = st === highs.constants.modelStatus.optimal ? primalOf(h) : undefined;
        if (st === highs.constants.modelStatus.infeasible) return { bound: Number.POSITIVE_INFINITY };
        return values ? { bound: h.getObjectiveValue(), values } : { bound: Number.NEGATIVE_INFINITY };
      }
      const status = runOn(
        h,
        opts,
        1,
        (lim) => ({
          [highs.constants.callbackType.mipInterrupt]: (e) => {
            if (budget.overrun(Number(e.data.mip_total_lp_iterations ?? 0), lim)) e.interrupt();
            return undefined;
          },
        }),
        o.maxNodes,
      );
      if (status === highs.constants.modelStatus.infeasible) return { bound: Number.POSITIVE_INFINITY };
      const bound = Number(h.info.get("mip_dual_bound"));
      const values = o.boundOnly ? undefined : primalOf(h);
      return {
        bound: Number.isFinite(bound) ? bound : Number.NEGATIVE_INFINITY,
        ...(values ? { values } : {}),
      };
    } finally {
      h.dispose();
    }
  };
}

// ------------------------------------------------------------ warm-up

/**
 * Load the HiGHS wasm module now (simulations do this before virtual time starts, so a plan never waits on real I/O).
 * With `warmUp`, also solve a few small covering MIPs: V8 first runs wasm on its baseline compiler and optimises hot
 * functions only as they run, so the first planning solves in a process are several times slower than later ones
 * ((4,3,2) seeds 1–8: up to 350–600 ms instead of ≤ 65 ms). The live planner warms up at start; the simulator does not need to.
 */
export async function preloadSolvers(o: { warmUp?: boolean } = {}): Promise<{ warmUpMs: number }> {
  highsPromise ??= highsLoader();
  await highsPromise;
  if (!o.warmUp) return { warmUpMs: 0 };
  const t0 = performance.now();
  for (let seed = 1; seed <= WARM_UP_SOLVES; seed++)
    await solveHighs(warmUpModel(seed), { gap: 1e-2, timeLimitMs: 5_000 });
  return { warmUpMs: performance.now() - t0 };
}

/** Measured: 3 solves (~1 s) left (4,3,2) seed 1 at 100–160 ms; 6 (~1.7 s) bring every seed 1–8 under 65 ms. */
const WARM_UP_SOLVES = 6;

/** A deterministic covering MIP shaped like a small plan: integer instances of 3 types per site, demand rows per site
 * and per group, supply rows per type, penalised slack. */
function warmUpModel(seed: number): LpModel {
  let x = seed * 2654435761;
  const rnd = () => {
    x = (Math.imul(x ^ (x >>> 15), 2246822507) + 0x6d2b79f5) >>> 0;
    return x / 2 ** 32;
  };
  const sites = 12;
  const types = 3;
  const vars: LpVar[] = [];
  const rows: LpRow[] = [];
  const supply: [number, number][][] = Array.from({ length: types }, () => []);
  const group: [number, number][][] = [[], [], []];
  let groupNeed = [0, 0, 0];
  for (let s = 0; s < sites; s++) {
    const terms: [number, number][] = [];
    for (let t = 0; t < types; t++) {
      const i =
        vars.push({ name: `n${s}_${t}`, cost: 10 + 30 * t + 5 * rnd(), lb: 0, ub: 40, integer: true }) - 1;
      const cap = (1 + t) * (0.8 + 0.4 * rnd());
      terms.push([i, cap]);
      supply[t]!.push([i, 1]);
      group[s % 3]!.push([i, cap]);
    }
    const u =
      vars.push({ name: `u${s}`, cost: 500, lb: 0, ub: Number.POSITIVE_INFINITY, integer: false }) - 1;
    terms.push([u, 1]);
    group[s % 3]!.push([u, 1]);
    const need = 3 + 20 * rnd();
    groupNeed = groupNeed.map((g, k) => (k === s % 3 ? g + need : g));
    rows.push({ name: `demand${s}`, terms, lo: need, hi: Number.POSITIVE_INFINITY });
  }
  for (const [t, terms] of supply.entries())
    rows.push({ name: `supply${t}`, terms, lo: 0, hi: 30 + 20 * rnd() });
  for (const [k, terms] of group.entries())
    rows.push({ name: `group${k}`, terms, lo: groupNeed[k]!, hi: Number.POSITIVE_INFINITY });
  return { vars, rows };
}
