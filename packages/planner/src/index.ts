export { DemandSeries, FORECASTERS, type ForecasterName, type WindowForecast } from "./forecast.js";
export { type ForecastRecord, forecastErrors } from "./forecast-errors.js";
export { preloadSolvers } from "./highs.js";
export { toLpText } from "./highs-data.js";
export { type PlanResult, type PlanTarget, solvePlan } from "./ilp.js";
export { JSLP_MAX_INTEGERS, solve } from "./lp.js";
export {
  isFeasible,
  type LpModel,
  type LpRow,
  type LpSolution,
  type LpVar,
  objective,
  type SolveOptions,
  type SolverName,
  violation,
} from "./lp-model.js";
export { postProcessTargets } from "./plan-output.js";
export { PlannerActor } from "./planner.js";
export type { PlannerOptions, PostProcess } from "./planner-options.js";
export { deadlineRate, PROFILE_BIN_MINUTES, valleyFillRate } from "./planning-input.js";
export { buildPlanningModel } from "./planning-model.js";
export { type PlanningSnapshot, type PlanningSnapshotInput, PlanningSnapshotSchema } from "./snapshot.js";
