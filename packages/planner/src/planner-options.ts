/**
 * The planner actor's options, documented with their defaults, and their resolution: every default is
 * applied once, when the actor is built (`resolvePlannerOptions`), not at each use. Separate from
 * `planner.ts` so that the actor reads as what it does, not as its configuration.
 */
import type { CapacityModel } from "@sageserve/protocol";
import type { SolveOptions } from "./lp-model.js";
import type { PlanningSnapshotInput } from "./snapshot.js";

export interface PlannerOptions {
  id?: string;
  models: string[];
  regions: string[];
  /**
   * Per-instance capacity (tokens/s) by model and GPU type. Used as given when there is no
   * `capacityModel`; with one, only as the fallback for a model the capacity model does not know.
   */
  capacity: Record<string, Record<string, number>>;
  /**
   * The SLO capacity model (the one the region agents count instances with): each plan's ILP
   * coefficients are its planned tokens/s per instance for each model's measured length mix (the last
   * hour of interactive demand), GPU types it has no point for are not eligible, and the snapshot's
   * headroom defaults to 0 (the model's target utilisation is the headroom).
   */
  capacityModel?: CapacityModel;
  gpuTypes: { id: string; pricePerHour: number; gpusPerVm?: number }[];
  supply: Record<string, Record<string, number>>;
  routes?: Record<string, string[]>;
  /** When to plan (cron, UTC). Default hourly at minute 0; ignored when `intervalMinutes` is set. */
  schedule?: string;
  /** Plan every this many minutes from start-up instead of on the cron schedule. */
  intervalMinutes?: number;
  /**
   * First plan this long after start-up (default 2 minutes: the first demand reports are in). Before
   * any demand was seen the plan holds the current allocation. Negative: no plan at start-up.
   */
  firstPlanAfterMs?: number;
  /**
   * How far ahead of a window capacity must be up: the forecast covers [now, now + interval + lead], so
   * a ramp early in the next window is already provisioned for (default 5 minutes: boot + load).
   */
  leadMinutes?: number;
  /**
   * Re-plan at once (at most every `replanMinGapMs`, default 15 min) when a series' demand over the last
   * 10 minutes exceeds its forecast by this fraction (default 0.5; 0 disables).
   */
  replanOnForecastError?: number;
  replanMinGapMs?: number;
  /**
   * Plan batch capacity from the NIW backlog by deadline (the region agents' status): enough tokens/s
   * this window for every queued job to be released this many minutes before its region agent would
   * escalate it (the agent reports that bound with the backlog; 4 h by default) (default 60).
   * Without backlog reports the plan keeps the flat `niwShare` of the NIW forecast.
   */
  niwDeadlineMarginMinutes?: number;
  /**
   * Spread the backlog's batch capacity over the hours before its deadlines where the interactive
   * forecast is lowest (valley filling, `valleyFillRate`), once a series has a day of history; off:
   * evenly over the time left (the most pressing bucket's tokens over its time). Default off: measured
   * on a daily cycle with a 800 M-token backlog, evenly cost 1.8 % fewer GPU-hours (docs/planner.md).
   */
  niwValleyFill?: boolean;
  /** Strategy name carried in the plan for the region agents (lt-i, lt-u, lt-ua, …). */
  strategy: string;
  /** Plan for the window's peak minute (the reference) or its mean. */
  forecastStat?: "peak" | "mean";
  /** Multiply every forecast by this (sensitivity studies: 1.2 = 20 % over-forecast). Default 1. */
  forecastBias?: number;
  config?: PlanningSnapshotInput["config"];
  /**
   * Solver limits: gap, wall clock, work budget (`maxNodes`, `maxIterations`). The simulator sets
   * `deterministic`, so that plans depend on work done, never on how fast the machine is.
   */
  solve?: SolveOptions;
  /**
   * Post-processing of the ILP's targets before they are published (the reference lists these; only
   * "immediate" exists in its code): "delay-changes" applies a change only when the previous plan
   * proposed a change in the same direction for that (model, region, GPU type); "keep-max" never lowers
   * a target below the current allocation; "keep-min" never raises it (scale-ups stay reactive).
   */
  postProcess?: PostProcess;
}

export type PostProcess = "immediate" | "delay-changes" | "keep-max" | "keep-min";

/** The options with every default applied (`intervalMinutes` stays optional: unset means the cron schedule). */
export type ResolvedPlannerOptions = PlannerOptions &
  Required<
    Pick<
      PlannerOptions,
      | "id"
      | "routes"
      | "schedule"
      | "firstPlanAfterMs"
      | "leadMinutes"
      | "replanOnForecastError"
      | "replanMinGapMs"
      | "niwDeadlineMarginMinutes"
      | "niwValleyFill"
      | "forecastStat"
      | "forecastBias"
      | "postProcess"
    >
  >;

export function resolvePlannerOptions(opts: PlannerOptions): ResolvedPlannerOptions {
  return {
    ...opts,
    id: opts.id ?? "planner-1",
    routes: opts.routes ?? {},
    schedule: opts.schedule ?? "0 * * * *",
    firstPlanAfterMs: opts.firstPlanAfterMs ?? 120_000,
    leadMinutes: opts.leadMinutes ?? 5,
    replanOnForecastError: opts.replanOnForecastError ?? 0.5,
    replanMinGapMs: opts.replanMinGapMs ?? 15 * 60_000,
    niwDeadlineMarginMinutes: opts.niwDeadlineMarginMinutes ?? 60,
    niwValleyFill: opts.niwValleyFill ?? false,
    forecastStat: opts.forecastStat ?? "peak",
    forecastBias: opts.forecastBias ?? 1,
    postProcess: opts.postProcess ?? "immediate",
  };
}
