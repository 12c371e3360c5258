/**
 * One budgeted HiGHS run: the options every run shares, the limits each run takes from the solve's budget
 * (`budget.ts`), and what it is charged afterwards. Shared by the main search (`highs.ts`) and the block
 * sub-MIPs (`highs-blocks.ts`), so that every run of one solve counts against the same budget.
 */
import type { Highs, HighsCallbackMap, Model as HighsModel } from "highs";
import type { SolveBudget } from "./budget.js";

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
export const HIGHS_OPTIONS = {
  output_flag: false,
  log_to_console: false,
  mip_lp_age_limit: 5,
  mip_pool_soft_limit: 100,
  mip_heuristic_run_feasibility_jump: false,
  mip_detect_symmetry: false,
  mip_allow_restart: false,
} as const;

export const HIGHS_INT_MAX = 2_147_483_647;

/** Builds a MIP run's callbacks from the iteration limit the budget gives that run. */
export type MipCallbacks = (lim: { maxIterations: number }) => HighsCallbackMap;

/** Runs native models of one solve within its budget. */
export class HighsRunner {
  constructor(
    readonly highs: Highs,
    private readonly budget: SolveBudget,
  ) {}

  /**
   * One run of `on` with its share of the budget (and at most `nodeCap` nodes); charged what it used. MIP
   * runs get the interrupt callback, which also enforces the iteration budget.
   */
  run(
    on: HighsModel,
    opts: Record<string, string | number | boolean>,
    share: number,
    mip?: MipCallbacks,
    nodeCap = HIGHS_INT_MAX,
  ): number {
    // time_limit counts cumulative run time since the last clock reset, so reset before each run.
    on.zeroAllClocks();
    const lim = this.budget.limits(share);
    on.options.set({
      ...opts,
      time_limit: lim.timeLimitS,
      mip_max_nodes: Math.min(nodeCap, lim.maxNodes),
      simplex_iteration_limit: mip ? HIGHS_INT_MAX : lim.maxIterations,
    });
    const status = on.run(mip?.(lim)).modelStatus;
    const info = (k: string) => Math.max(0, Number(on.info.get(k)) || 0);
    this.budget.charge(mip ? info("mip_node_count") : 0, info("simplex_iteration_count"));
    if (status === this.highs.constants.modelStatus.timeLimit) this.budget.clockStopped = true;
    return status;
  }

  /** The run's primal solution, when HiGHS has a feasible one. */
  primal(on: HighsModel): number[] | undefined {
    if (Number(on.info.get("primal_solution_status")) !== this.highs.constants.solutionStatus.feasible)
      return undefined;
    return Array.from(on.getSolution().colValue);
  }
}
