/**
 * @sageserve/engine: what a GPU serving instance is, shared by the simulator, the engine emulator, the
 * planner's sizing and the CLI — the model and GPU catalogue, the measured performance profiles fitted
 * into a performance model, and the vLLM-V1-like instance (steps, chunked prefill, paged KV, preemption).
 */
export {
  GPUS,
  type GpuSpec,
  gpuSpec,
  kvBytesPerToken,
  MODELS,
  type ModelSpec,
  modelSpec,
} from "./catalog.js";
export { readBuiltinData, readJson } from "./data.js";
export { Instance } from "./instance.js";
export {
  type Completion,
  DEFAULT_BLOCK_SIZE,
  DEFAULT_MAX_BATCHED_TOKENS,
  DEFAULT_MAX_NUM_SEQS,
  type InstanceOptions,
  type InstanceRequest,
  type InstanceTiming,
  type SchedulingPolicy,
} from "./instance-types.js";
export { builtinPerformanceModel } from "./perf/builtin.js";
export {
  type Curve,
  type FittedProfile,
  fitProfiles,
  interpolate,
  PerfDataError,
  type PerfRow,
  parsePerfCsv,
} from "./perf/fit.js";
export {
  blendedTokensPerSecond,
  type InstanceCapacity,
  PerformanceModel,
  type ProfileTable,
} from "./perf/model.js";
