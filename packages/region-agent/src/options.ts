/**
 * The region agent's options, and their defaults applied once (`resolveOptions`) so the actor and its
 * parts read settled values instead of re-defaulting at each use.
 */
import {
  type CapacityModel,
  DEFAULT_SLO_TTFT_MS,
  type PlanStrategy,
  type PromptTiming,
} from "@sageserve/protocol";
import { DEFAULT_PLAN_EXECUTION, type PlanExecutionConfig } from "./plan-policy.js";
import {
  DEFAULT_NIW_RELEASE,
  DEFAULT_REACTIVE,
  type NiwReleaseConfig,
  type ReactiveConfig,
} from "./policy.js";
import type { Cooldowns } from "./scaling.js";
import { DEFAULT_SLO_CALIBRATION, type SloCalibrationConfig } from "./slo-calibration.js";

export interface RegionAgentOptions {
  region: string;
  models: string[];
  /** "unified": one pool per model, NIW fed from the queue; "siloed": separate iw and niw pools. */
  mode: "unified" | "siloed";
  /** GPU types to boot new VMs with, in preference order. */
  gpuTypes: string[];
  reactive?: Partial<ReactiveConfig>;
  /** Per-pool overrides in siloed mode (e.g. a smaller minimum for the niw pool). */
  poolReactive?: Record<string, Partial<ReactiveConfig>>;
  /**
   * Per-model overrides of `reactive` in this region, e.g. `{ "llama3.2-3b": { minInstances: 0 } }`:
   * scale to zero — the last instance goes to spot after `zeroAfterIdleMs` idle, and comes back (a spot
   * reclaim, a swap or a boot) when a router holds requests for it (`CapacityWanted`) or a queued batch
   * job nears its deadline.
   */
  endpoints?: Record<string, Partial<ReactiveConfig>>;
  niw?: Partial<NiwReleaseConfig>;
  scalingIntervalMs?: number;
  /** Cool-downs after each kind of scale-up: the time the new capacity takes to arrive. */
  cooldowns?: { reclaimMs?: number; swapMs?: number; bootMs?: number };
  staleAfterMs?: number;
  /**
   * Follow the planner's plans with this strategy (unified mode): "lt-i" applies the targets
   * at once; "lt-u" scales down to the target at once and spends the scale-up budget only while
   * utilisation is high (emergency above 0.9); "lt-ua" adds forecast-gap overrides. Without a
   * plan yet, or without a strategy, the agent is purely reactive.
   */
  planStrategy?: PlanStrategy;
  planExecution?: Partial<PlanExecutionConfig>;
  /** Redelivery delay of NIW jobs this agent took but did not acknowledge (it died holding them). */
  niwAckWaitMs?: number;
  /**
   * Publish a `RegionStatus` (and store it in KV bucket `sage-regions`, key = region, for
   * `sageserve status`) this often; 0 = never. Default 5 s.
   */
  statusIntervalMs?: number;
  /** IW-fast TTFT target the SLO guard (`reactive.sloScaleUpAbove`) counts misses against. Default 1 s. */
  sloTtftMs?: number;
  /**
   * The SLO capacity model the planner plans with. Under a plan, an endpoint never holds fewer
   * instances than its measured interactive demand (the last minute's DemandReports, this region's
   * share by the plan's routing) needs by this model: a plan made on a forecast that lags a ramp does
   * not starve it, and the plan's scale-downs stop there.
   */
  capacity?: CapacityModel;
  /**
   * Under a plan with a capacity model: the SLO feedback on it (slo-calibration.ts) — per model, the
   * capacity the endpoint is sized with follows the IW-fast attainment its instances deliver here.
   * Off unless `{ enabled: true }`.
   */
  sloCalibration?: Partial<SloCalibrationConfig>;
  /**
   * Prefill timing of the models' GPU types: with it, IW-fast requests whose prompt alone takes longer
   * than the target on an idle instance (infeasible — no capacity fixes them) do not count against the
   * SLO feedback, as they do not in the reports' attainment over feasible requests.
   */
  promptTiming?: PromptTiming;
}

/** The options' defaulted settings (the rest of RegionAgentOptions is read as given). */
export interface ResolvedSettings {
  reactive: ReactiveConfig;
  niw: NiwReleaseConfig;
  cooldowns: Cooldowns;
  staleAfterMs: number;
  planExecution: PlanExecutionConfig;
  scalingIntervalMs: number;
  niwAckWaitMs: number;
  statusIntervalMs: number;
  sloTtftMs: number;
  sloCalibration: SloCalibrationConfig;
}

export function resolveOptions(opts: RegionAgentOptions): ResolvedSettings {
  return {
    reactive: { ...DEFAULT_REACTIVE, ...opts.reactive },
    niw: { ...DEFAULT_NIW_RELEASE, ...opts.niw },
    cooldowns: { reclaimMs: 65_000, swapMs: 150_000, bootMs: 155_000, ...opts.cooldowns },
    staleAfterMs: opts.staleAfterMs ?? 30_000,
    planExecution: { ...DEFAULT_PLAN_EXECUTION, ...opts.planExecution },
    scalingIntervalMs: opts.scalingIntervalMs ?? 15_000,
    niwAckWaitMs: opts.niwAckWaitMs ?? 60_000,
    statusIntervalMs: opts.statusIntervalMs ?? 5_000,
    sloTtftMs: opts.sloTtftMs ?? DEFAULT_SLO_TTFT_MS["iw-fast"],
    sloCalibration: { ...DEFAULT_SLO_CALIBRATION, ...opts.sloCalibration },
  };
}
