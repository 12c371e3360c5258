// The simulator's public surface: run a simulation and write its reports; the simulated fleet;
// workloads (built-in scenarios, traces, rate files); the engine capacity model and sweep.

export { builtinCapacityModel, deriveCapacityTable, emulatorCapacityModel } from "./engine/capacity.js";
export { geometricRates, type LengthMix, type SweepResult, sweepInstance } from "./engine/sweep.js";
export { type CapacityBoundReport, overBound } from "./run/bound.js";
export { DEFAULT_SLO, type SloTargets } from "./run/collector.js";
export { loadSimConfig, NiwSettingsSchema, PlanExecutionSchema, type SimConfig } from "./run/config.js";
export { writeComparison, writeReports } from "./run/output.js";
export type { ModelTierSlo, Percentiles, SimReport, TierSlo, TimeseriesBin } from "./run/report.js";
export {
  checkPolicy,
  POLICIES,
  type PolicyName,
  type SimOptions,
  type WorkloadTransforms,
} from "./run/sim-options.js";
export { type RunStats, runSimulation, type SimResult, workloadCapacityBound } from "./run/simulate.js";
export { resolveWorkload, withBurst } from "./workload/index.js";
export { generateScenario, SCENARIOS, type ScenarioSpec } from "./workload/scenario.js";
export { workloadStats } from "./workload/stats.js";
export { fromRequests, loadTraceFile } from "./workload/trace.js";
export { traceRows } from "./workload/trace-rows.js";
export {
  type Mapping,
  parseMapping,
  SCALE_MODES,
  type ScaleMode,
  type WorkloadOptions,
} from "./workload/transform.js";
export { type SimRequest, TraceError, type Workload } from "./workload/types.js";
export { SimFleet } from "./world/fleet.js";
export {
  DEFAULT_TIMINGS,
  type FleetOptions,
  type FleetTimings,
  type SlowRequest,
} from "./world/fleet-options.js";
