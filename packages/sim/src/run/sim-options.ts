/**
 * What a simulation run is asked for: the scenario or workload, the policy (checked by name), and the
 * knobs of the fleet, agents and planner. Apart from `simulate.ts` so the run's steps and their
 * options can be read on their own.
 */
import type { PerformanceModel, SchedulingPolicy } from "@sageserve/engine";
import { SageError } from "@sageserve/protocol";
import type { Actor, ActorContext } from "@sageserve/runtime";
import type { WorkloadOptions } from "../workload/transform.js";
import type { Workload } from "../workload/types.js";
import type { FleetTimings, Outage, SlowRequest } from "../world/fleet-options.js";
import type { SloTargets } from "./collector.js";
import type { SimConfig } from "./config.js";

export const POLICIES = ["unified-reactive", "siloed-reactive", "lt-i", "lt-u", "lt-ua"] as const;
export type PolicyName = (typeof POLICIES)[number];

export interface SimOptions {
  /** Built-in scenario name or trace file path. */
  scenario: string;
  /** A workload object to replay instead of `scenario` (programmatic use, tests). */
  workload?: Workload;
  policy: string;
  seed: number;
  /** Rate multiplier: of a scenario's or rate file's rate; for traces see `transforms.scaleMode`. */
  scale?: number;
  /** Window, renaming, trace scale mode and sort window (docs/simulator.md, "Transforms"). */
  transforms?: WorkloadTransforms;
  /** Told what loading the workload found worth a warning (e.g. requests that can never fit). */
  onWarning?: (message: string) => void;
  gpuTypes?: string[];
  timings?: Partial<FleetTimings>;
  slo?: SloTargets;
  /** Give up waiting for in-flight requests this long after the trace ends (default 30 h: NIW deadlines). */
  maxDrainMs?: number;
  /** Keep every finished request id (conservation tests). */
  trackIds?: boolean;
  perf?: PerformanceModel;
  /**
   * Validate every message against its schema (default true). false trusts the typed actor code
   * in-process and skips validation: faster for long runs (docs/benchmarks.md gives both).
   */
  validate?: boolean;
  /** Planner settings for the lt-* policies. */
  planner?: SimConfig["planner"];
  /** Region-agent settings (thresholds, NIW release, scaling interval). */
  regionAgent?: SimConfig["regionAgent"];
  /** Most of an instance's KV cache batch requests may hold (default 1: no limit). */
  niwKvShare?: number;
  /**
   * Tokens per engine step on every simulated instance (vLLM's max_num_batched_tokens); default: per
   * (model, GPU), the most tokens whose prefill takes ≤ `stepBudgetMs`.
   */
  maxPrefillTokens?: number;
  /**
   * Report each instance's interactive arrivals against its SLO capacity (the engine sweep's knee,
   * data/engine-capacity.json) so routing and scaling see "full" where TTFT stops holding. Off by default:
   * the baselines scale on utilisation, as the paper's; SageServe's best configuration turns it on. The
   * step budget must be the default for the table to apply.
   */
  sloCapacity?: boolean;
  /** Called for every request that missed its tier's TTFT target, with where its time went. */
  traceSlow?: (r: SlowRequest) => void;
  /** Longest engine step the default token budget allows (ms, default 250). */
  stepBudgetMs?: number;
  /** KV block size of every simulated instance (vLLM's block_size, default 16). */
  blockSize?: number;
  /** Engine queue order on every simulated instance: "priority" (default) or "fcfs". */
  scheduling?: SchedulingPolicy;
  /** Sensitivity studies: most VMs per region and GPU type (default 200 each). */
  supply?: Record<string, Record<string, number>>;
  /** Sensitivity studies: a region loses its GPUs for a while (ms since the start). */
  outages?: Outage[];
  /** Sensitivity studies: one region's arrivals multiplied by `factor` for a while. */
  burst?: { region: string; startMs: number; durationMs: number; factor: number };
  /** Sensitivity studies: every planner forecast multiplied by this (lt-* policies). */
  forecastBias?: number;
  /** Extra actors to run alongside (observers in tests, custom policies). */
  observers?: ((ctx: ActorContext) => Actor)[];
  onProgress?: (p: { simulatedMs: number; durationMs: number; generated: number; finished: number }) => void;
}

export type WorkloadTransforms = Pick<
  WorkloadOptions,
  "scaleMode" | "startMs" | "durationMs" | "map" | "sortWindowMs"
>;

export function checkPolicy(policy: string): PolicyName {
  if ((POLICIES as readonly string[]).includes(policy)) return policy as PolicyName;
  throw new SageError("CONFIG", `unknown policy '${policy}' (known: ${POLICIES.join(", ")})`);
}
