/**
 * HiGHS compiled to WebAssembly: loading the module, and one solve's search on a native model — the LP
 * relaxation, RENS, the block stage and the full MIP (`solveHighs`), keeping the best verified plan and the
 * best proven bound between them. The model conversion (`highs-data.ts`), the budgeted runs
 * (`highs-run.ts`) and the block sub-MIPs (`highs-blocks.ts`) live beside it.
 */
import { createRequire } from "node:module";
import type { Highs, HighsCallbackMap, Model as HighsModel } from "highs";
import { SolveBudget } from "./budget.js";
import { blockStructure, improveByBlocks, lagrangianBound } from "./decompose.js";
import { blockSolver } from "./highs-blocks.js";
import { toHighsData } from "./highs-data.js";
import { HIGHS_OPTIONS, HighsRunner, type MipCallbacks } from "./highs-run.js";
import { isFeasible, type LpModel, type LpSolution, objective, type SolveOptions } from "./lp-model.js";
import { warmUpModel } from "./warm-up-model.js";

/** HiGHS compiled to WebAssembly (the `highs` package, CommonJS: require() gives its real exports). */
const require = createRequire(import.meta.url);
const highsLoader = require("highs") as () => Promise<Highs>;
let highsPromise: Promise<Highs> | undefined;

const INT_TOL = 1e-6;
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
  const MS = highs.constants.modelStatus;
  let m: HighsModel | undefined;
  try {
    const hm = highs.createModel();
    m = hm;
    const search = new HighsSearch(highs, hm, model, budget, o.gap ?? 1e-3, t0);
    const { ints } = search;

    // 1. LP relaxation (the whole model when there are no integers).
    const lp = search.relaxation();
    if (ints.length === 0) return search.lpResult(lp.status, lp.values);
    // An infeasible relaxation proves the MIP infeasible.
    if (lp.status === MS.infeasible)
      return search.done("infeasible", undefined, Number.NaN, "LP relaxation infeasible");
    const lpBound = lp.values ? hm.getObjectiveValue() : Number.NEGATIVE_INFINITY;
    const rowDuals = lp.values ? Array.from(hm.getSolution().rowDual) : undefined;
    search.floor = lpBound;
    search.markIntegers();

    // 2. RENS around the relaxation.
    if (lp.values) {
      search.rens(lp.values);
      if (search.proven())
        return search.done(
          "optimal",
          search.best,
          search.floor,
          "RENS incumbent within the gap of the LP bound",
        );
    }

    // 3. Blocks: a Lagrangian bound, then block-coordinate descent from the best plan.
    const blocks = rowDuals && ints.length >= BLOCKS_MIN_INTEGERS ? blockStructure(model) : undefined;
    if (blocks && rowDuals && !budget.exhausted()) {
      const subMip = blockSolver(search.runner, budget);
      const lag = await lagrangianBound(model, blocks, rowDuals, subMip, {
        nodesPerBlock: BLOCK_NODES,
        ...(search.best ? { incumbent: search.best } : {}),
      });
      if (lag !== undefined && lag > search.floor) search.floor = lag;
      let improved = 0;
      if (search.best && !search.proven()) {
        const r = await improveByBlocks(model, blocks, search.best, subMip, {
          nodesPerBlock: BLOCK_NODES,
          maxPasses: BLOCK_PASSES,
          stop: (obj) => relGap(obj, search.floor) <= search.target || budget.exhausted(),
        });
        search.offer(r.values);
        improved = r.improved;
      }
      if (search.proven()) return search.provenByBlocks(improved, lpBound);
    }

    // 4. The full MIP.
    return search.finish(search.fullMip());
  } catch (e) {
    // A failed wasm solve can leave the module unusable: load a fresh one next time.
    highsPromise = undefined;
    return failedSolve(e, t0, budget);
  } finally {
    try {
      m?.dispose(); // native memory is not garbage-collected
    } catch {
      // the module is being replaced anyway
    }
  }
}

const relGap = (p: number, d: number) => (p - d) / Math.max(1, Math.abs(p));

/** A solve that threw (the wasm module failed): no solution, the error as its message. */
function failedSolve(e: unknown, t0: number, budget: SolveBudget): LpSolution {
  return {
    status: "error",
    solver: "highs",
    values: [],
    objective: Number.NaN,
    solveMs: performance.now() - t0,
    message: String(e),
    work: budget.used,
  };
}

/**
 * One solve's search on its native model: the best verified plan so far, the best proven lower bound, and
 * why the last MIP run stopped; each stage of `solveHighs` is a method, the awaited block stage stays there.
 */
class HighsSearch {
  readonly ints: number[] = [];
  readonly runner: HighsRunner;
  best: number[] | undefined = undefined;
  bestObj = Number.POSITIVE_INFINITY;
  /** The best proven lower bound so far (LP, then Lagrangian, then MIP dual). */
  floor = Number.NEGATIVE_INFINITY;
  private stoppedFor: "gap" | "work" | undefined = undefined;
  private readonly MS: Highs["constants"]["modelStatus"];
  private readonly sel: { kind: "set"; indices: Int32Array };
  private readonly mipOptions: Record<string, string | number | boolean>;

  constructor(
    private readonly highs: Highs,
    private readonly hm: HighsModel,
    private readonly model: LpModel,
    private readonly budget: SolveBudget,
    readonly target: number,
    private readonly t0: number,
  ) {
    model.vars.forEach((v, i) => {
      if (v.integer) this.ints.push(i);
    });
    this.runner = new HighsRunner(highs, budget);
    this.MS = highs.constants.modelStatus;
    this.sel = { kind: "set" as const, indices: Int32Array.from(this.ints) };
    this.mipOptions = { ...HIGHS_OPTIONS, presolve: "choose", mip_rel_gap: target };
  }

  /** The solve's result: the values' objective and proven gap against `bound`, the work, and why it stopped. */
  done(
    status: LpSolution["status"],
    values: number[] | undefined,
    bound: number,
    message: string,
  ): LpSolution {
    const obj = values ? objective(this.model, values) : Number.NaN;
    const gap = values && Number.isFinite(bound) ? Math.max(0, relGap(obj, bound)) : undefined;
    const why = [
      message,
      ...(gap === undefined ? [] : [`proven gap ${(100 * gap).toFixed(3)} %`]),
      ...(this.budget.deterministic && this.budget.clockStopped
        ? ["stopped by the wall-clock safety net, not by work: this result may differ between machines"]
        : []),
    ];
    return {
      status,
      solver: "highs",
      values: values ?? [],
      objective: obj,
      solveMs: performance.now() - this.t0,
      message: why.join("; "),
      ...(gap === undefined ? {} : { gap, bound }),
      work: this.budget.used,
    };
  }

  /** The result when the block stage proved the gap (`lpBound`: the relaxation's, to name the bound that did). */
  provenByBlocks(improved: number, lpBound: number): LpSolution {
    return this.done(
      "optimal",
      this.best,
      this.floor,
      `${improved ? `block descent (${improved} improvements)` : "RENS incumbent"} within the gap of the ${this.floor > lpBound ? "Lagrangian" : "LP"} bound`,
    );
  }

  /** Keep `raw` as the best plan if it is verified feasible and cheaper than the best so far. */
  offer(raw: number[] | undefined): void {
    if (!raw) return;
    // Prefer exact integers (HiGHS leaves noise up to mip_feasibility_tolerance), else the raw values.
    const rounded = [...raw];
    for (const i of this.ints) rounded[i] = Math.round(rounded[i]!);
    const x = isFeasible(this.model, rounded) ? rounded : isFeasible(this.model, raw) ? raw : undefined;
    if (!x) return;
    const obj = objective(this.model, x);
    if (obj < this.bestObj) {
      this.best = x;
      this.bestObj = obj;
    }
  }

  /** Whether the best plan is within the gap target of the best proven bound. */
  proven(): boolean {
    return this.best !== undefined && relGap(this.bestObj, this.floor) <= this.target;
  }

  /** A MIP run's interrupt: stop once plan and bound (with `useDual`, HiGHS' own dual bound too) are within the gap, or on the work budget. */
  private callbacks(useDual: boolean): MipCallbacks {
    return (lim: { maxIterations: number }): HighsCallbackMap => ({
      [this.highs.constants.callbackType.mipInterrupt]: (e) => {
        const p = Math.min(e.data.mip_primal_bound ?? Number.POSITIVE_INFINITY, this.bestObj);
        const d = Math.max(this.floor, useDual ? (e.data.mip_dual_bound ?? this.floor) : this.floor);
        if (relGap(p, d) <= this.target) {
          this.stoppedFor = "gap";
          e.interrupt();
        } else if (this.budget.overrun(Number(e.data.mip_total_lp_iterations ?? 0), lim)) {
          this.stoppedFor = "work";
          e.interrupt();
        }
        return undefined;
      },
    });
  }

  /** 1. The LP relaxation, presolve off; its values when optimal. */
  relaxation(): { status: number; values: number[] | undefined } {
    this.hm.passModel(toHighsData(this.model));
    const status = this.runner.run(this.hm, { ...HIGHS_OPTIONS, presolve: "off" }, 1);
    return { status, values: status === this.MS.optimal ? this.runner.primal(this.hm) : undefined };
  }

  /** A model without integers: the relaxation is the answer (with its row duals). */
  lpResult(lpStatus: number, lpValues: number[] | undefined): LpSolution {
    const { model, MS } = this;
    if (lpValues && isFeasible(model, lpValues))
      return {
        ...this.done("optimal", lpValues, objective(model, lpValues), "LP optimal"),
        rowDuals: Array.from(this.hm.getSolution().rowDual),
      };
    if (lpStatus === MS.infeasible) return this.done("infeasible", undefined, Number.NaN, "LP infeasible");
    if (lpStatus === MS.timeLimit || lpStatus === MS.iterationLimit)
      return this.done("timeout", undefined, Number.NaN, `LP stopped by its ${budgetName(lpStatus, MS)}`);
    return this.done("error", undefined, Number.NaN, `LP model status ${lpStatus}`);
  }

  /** The integer variables become integers on the native model (after the relaxation). */
  markIntegers(): void {
    this.hm.changeColsIntegrality(
      this.sel,
      Int32Array.from(this.ints, () => this.highs.constants.variableType.integer),
    );
  }

  /**
   * 2. RENS around the relaxation: box [floor, ceil] first; on small problems also [floor − 1, ceil + 1], which
   * is still cheap there and finds the 1 % plan where the tight box cannot ((4,3,2) seeds 1–8: worst 124 ms →
   * 40 ms); on large ones the wider sub-MIP costs seconds ((100,20,4): 3 s → 8–17 s) and the tight box suffices.
   */
  rens(lpValues: number[]): void {
    const { ints, model, hm, sel } = this;
    if (ints.every((i) => Math.abs(lpValues[i]! - Math.round(lpValues[i]!)) <= INT_TOL))
      this.offer([...lpValues]);
    const widths = ints.length <= RENS_WIDE_MAX_INTEGERS ? [0, 1] : [0];
    for (const w of widths) {
      if (this.proven() || this.budget.exhausted()) break;
      const lo = Float64Array.from(ints, (i) =>
        Math.max(model.vars[i]!.lb, Math.floor(lpValues[i]! + INT_TOL) - w),
      );
      const hi = Float64Array.from(ints, (i) =>
        Math.min(model.vars[i]!.ub, Math.ceil(lpValues[i]! - INT_TOL) + w),
      );
      hm.changeColsBounds(sel, lo, hi);
      this.stoppedFor = undefined;
      // Each neighbourhood gets at most a third of what is left.
      this.runner.run(hm, this.mipOptions, 1 / 3, this.callbacks(false));
      this.offer(this.runner.primal(hm));
      hm.changeColsBounds(
        sel,
        Float64Array.from(ints, (i) => model.vars[i]!.lb),
        Float64Array.from(ints, (i) => model.vars[i]!.ub),
      );
      hm.clearSolver();
    }
  }

  /**
   * 4. The full MIP; its model status (notSet when the budget is gone). A model keeps its last run's solution
   * as the next MIP start unless cleared; a start far above the bound made HiGHS' root heuristics and cuts
   * worse ((4,3,2) seed 4: 37 nodes / 220 ms instead of 5 nodes / 35 ms with RENS +5.7 %), a close one helped
   * ((10,5,3) seed 3 at +2.7 %: 5 s instead of 19 s). Either way the callback stops on the gap between our best
   * solution and the bound.
   */
  fullMip(): number {
    const { hm } = this;
    let status: number = this.MS.notSet;
    if (!this.budget.exhausted()) {
      hm.clearSolver();
      if (this.best && relGap(this.bestObj, this.floor) <= 0.05)
        hm.setSolution({ colValue: Float64Array.from(this.best) });
      this.stoppedFor = undefined;
      status = this.runner.run(hm, this.mipOptions, 1, this.callbacks(true));
      this.offer(this.runner.primal(hm));
      const dual = Number(hm.info.get("mip_dual_bound"));
      if (Number.isFinite(dual)) this.floor = Math.max(this.floor, dual);
    }
    return status;
  }

  /** The solve's result after the full MIP (or without it, when the budget was gone). */
  finish(status: number): LpSolution {
    const { MS, budget, best, stoppedFor } = this;
    if (status === MS.infeasible && !best)
      return this.done("infeasible", undefined, Number.NaN, "MIP infeasible");
    const limited = budget.exhausted() || stoppedFor === "work" || status === MS.timeLimit;
    if (!best)
      return this.done(
        limited ? "timeout" : "error",
        undefined,
        Number.NaN,
        limited ? `${spent(budget)} before any verified solution` : `MIP model status ${status}, no solution`,
      );
    const ok = status === MS.optimal || stoppedFor === "gap" || this.proven();
    return this.done(
      ok ? "optimal" : "feasible",
      best,
      this.floor,
      ok
        ? "MIP within the gap"
        : limited
          ? `${spent(budget)}: best verified plan`
          : `MIP model status ${status}`,
    );
  }
}

const budgetName = (status: number, MS: Highs["constants"]["modelStatus"]) =>
  status === MS.timeLimit ? "time limit" : "iteration budget";

const spent = (b: SolveBudget) =>
  b.clockStopped
    ? "time limit reached"
    : `work budget used up (${b.used.nodes} nodes, ${b.used.iterations} simplex iterations)`;

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
