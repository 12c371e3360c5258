/**
 * What a run is made of before any actor exists: the policy's shape (siloed pools, a planner
 * strategy), the performance and capacity models, the workload with its warnings, and what the run
 * must warn of. The first step of `runSimulation`; it draws nothing from the simulated clock.
 */
import { builtinPerformanceModel, DEFAULT_BLOCK_SIZE, type PerformanceModel } from "@sageserve/engine";
import { preloadSolvers } from "@sageserve/planner";
import { type CapacityModel, type PlanStrategy, SageError } from "@sageserve/protocol";
import { builtinCapacityModel } from "../engine/capacity.js";
import { resolveWorkload, withBurst } from "../workload/index.js";
import type { Workload } from "../workload/types.js";
import { boundedWorkload, CapacityBound } from "./bound.js";
import { checkPolicy, type PolicyName, type SimOptions } from "./sim-options.js";

export interface RunSetup {
  policy: PolicyName;
  /** Separate IW and NIW pools (siloed-reactive). */
  siloed: boolean;
  /** The planner's strategy (lt-* policies); undefined runs without a planner. */
  planStrategy: PlanStrategy | undefined;
  perf: PerformanceModel;
  gpuTypes: string[];
  /** The workload as loaded: its warnings are the run's. */
  base: Workload;
  /** The workload replayed (`base` with any burst), its requests counted by `bound` as they are read. */
  workload: Workload;
  /** The workload's capacity bound (with the built-in capacity model); its result after the replay. */
  bound: CapacityBound | undefined;
  /** The GPU type a model is deployed on at start: the first of `gpuTypes` with its profile. */
  gpuFor: (model: string) => string;
  /** The SLO-knee capacity model, when the run uses the profiles and step budget it was measured with. */
  capacityModel: CapacityModel | undefined;
  /** Some endpoint may scale to zero instances. */
  scalesToZero: boolean;
  /** What the report must warn of. */
  warnings: string[];
}

export async function prepareRun(opts: SimOptions): Promise<RunSetup> {
  const policy = checkPolicy(opts.policy);
  const siloed = policy === "siloed-reactive";
  const planStrategy = policy.startsWith("lt-") ? (policy as PlanStrategy) : undefined;
  if (planStrategy) await preloadSolvers();
  const perf = opts.perf ?? builtinPerformanceModel();
  const gpuTypes = opts.gpuTypes ?? ["h100", "a100"];
  const base = opts.workload ?? loadWorkload(opts, perf, gpuTypes);
  for (const w of base.warnings ?? []) opts.onWarning?.(w);
  const replayed: Workload = opts.burst ? withBurst(base, opts.burst) : base;
  for (const m of replayed.models)
    if (!gpuTypes.some((g) => perf.has(m, g)))
      throw new SageError("CONFIG", `no GPU type in [${gpuTypes}] has a profile for ${m}`);
  const gpuFor = (model: string): string => gpuTypes.find((g) => perf.has(model, g))!;
  // The one capacity model (SLO knees of the engine sweep) — only for the built-in performance profiles
  // and step budget it was measured with.
  const capacityModel =
    opts.perf || opts.maxPrefillTokens || opts.stepBudgetMs
      ? undefined
      : builtinCapacityModel(opts.planner?.targetUtilization, {
          pooling: opts.planner?.pooledCapacity ?? true,
        });
  const bound = capacityModel ? new CapacityBound() : undefined;
  const workload = bound ? boundedWorkload(replayed, bound) : replayed;
  const warnings: string[] = [];
  const scalesToZero =
    opts.regionAgent?.reactive?.minInstances === 0 ||
    Object.values(opts.regionAgent?.endpoints ?? {}).some((e) => e.minInstances === 0);
  if (planStrategy) {
    const every = opts.planner?.intervalMinutes ?? 60;
    if (workload.durationMs < every * 60_000)
      warnings.push(
        `the workload lasts ${Math.round(workload.durationMs / 60_000)} min, less than the plan interval (${every} min): ${policy} gets one plan at start-up and otherwise acts as its reactive rules (set planner.intervalMinutes)`,
      );
  }
  return {
    policy,
    siloed,
    planStrategy,
    perf,
    gpuTypes,
    base,
    workload,
    bound,
    gpuFor,
    capacityModel,
    scalesToZero,
    warnings,
  };
}

/** The scenario or file `opts` names, with its transforms. */
function loadWorkload(opts: SimOptions, perf: PerformanceModel, gpuTypes: string[]): Workload {
  const blockSize = opts.blockSize ?? DEFAULT_BLOCK_SIZE;
  return resolveWorkload(opts.scenario, {
    seed: opts.seed,
    ...(opts.scale !== undefined ? { scale: opts.scale } : {}),
    ...opts.transforms,
    // A request fits where its prompt and output fit in the KV blocks of the largest instance.
    kvLimitTokens: (model) =>
      Math.max(
        0,
        ...gpuTypes
          .filter((g) => perf.has(model, g))
          .map((g) => Math.floor(perf.kvTokenCapacity(model, g) / blockSize) * blockSize),
      ) || Number.POSITIVE_INFINITY,
  });
}
