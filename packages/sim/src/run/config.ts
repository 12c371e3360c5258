import { readFileSync } from "node:fs";
import { describeIssues, errorMessage, SageError } from "@sageserve/protocol";
import { z } from "zod";

/** The region agents' batch release settings (region-agent NiwConfig); shared with `sageserve up`'s cluster file. */
export const NiwSettingsSchema = z
  .object({
    releaseBelow: z.number().min(0).max(1).optional(),
    releaseTwoBelow: z.number().min(0).max(1).optional(),
    escalateBeforeDeadlineMs: z.number().nonnegative().optional(),
    maxPerTick: z.number().int().positive().optional(),
  })
  .strict();

/** How LT-* carry out a plan (region-agent plan-policy.ts PlanExecutionConfig); shared with the cluster file. */
export const PlanExecutionSchema = z
  .object({
    emergencyAbove: z.number().min(0).max(1).optional(),
    surgeRatio: z.number().positive().optional(),
    maxActionsPerTick: z.number().int().positive().optional(),
    lullAfterBelow: z.number().gt(0).max(1).optional(),
    holdMeanWindows: z.number().int().min(1).max(5).optional(),
  })
  .strict();

/**
 * Simulation settings from a JSON file (`sageserve sim --config file.json`): VM
 * timings, GPU types, SLO targets and the region agents' thresholds. Every field
 * is optional; an unknown or mistyped field is an error naming it.
 */
export const SimConfigSchema = z
  .object({
    gpuTypes: z
      .array(z.enum(["h100", "a100"]))
      .min(1)
      .optional(),
    timings: z
      .object({
        spinUpMs: z.number().nonnegative().optional(),
        reclaimMs: z.number().nonnegative().optional(),
        swapMs: z.number().nonnegative().optional(),
      })
      .strict()
      .optional(),
    slo: z
      .object({
        ttftMs: z.object({ "iw-fast": z.number().positive(), "iw-normal": z.number().positive() }).strict(),
      })
      .strict()
      .optional(),
    planner: z
      .object({
        postProcess: z.enum(["immediate", "delay-changes", "keep-max", "keep-min"]).optional(),
        forecastStat: z.enum(["peak", "mean"]).optional(),
        schedule: z.string().optional(),
        /** Plan every this many minutes from the start instead of hourly. */
        intervalMinutes: z.number().positive().optional(),
        /** How far past the next plan the forecast looks (boot lead, minutes; default 5). */
        leadMinutes: z.number().min(0).optional(),
        headroom: z.number().min(0).optional(),
        /** Fraction of the SLO knee endpoints are planned at (the capacity model; default 1, the knee itself). */
        targetUtilization: z.number().gt(0).max(1).optional(),
        /** Count on pooled instances carrying more each than one alone (the capacity model; default true). */
        pooledCapacity: z.boolean().optional(),
        /** Re-plan when demand runs this far above its forecast (0 disables; default 0.5). */
        replanOnForecastError: z.number().min(0).optional(),
        /** What the plan minimises: VM dollars (default) or GPU-hours (every GPU type alike). */
        objective: z.enum(["dollars", "gpu-hours"]).optional(),
        /** Spread the batch backlog's capacity over the forecast's valleys before its deadlines (default false). */
        niwValleyFill: z.boolean().optional(),
        /** Every forecast multiplied by this: 1.2 plans on a forecast 20 % high (sensitivity; default 1). */
        forecastBias: z.number().positive().optional(),
      })
      .strict()
      .optional(),
    /** Load reports carry SLO capacity (SimOptions.sloCapacity). */
    sloCapacity: z.boolean().optional(),
    regionAgent: z
      .object({
        scalingIntervalMs: z.number().positive().optional(),
        reactive: z
          .object({
            scaleUpAbove: z.number().min(0).max(1).optional(),
            scaleDownBelow: z.number().min(0).max(1).optional(),
            minInstances: z.number().int().min(0).optional(),
            maxInstances: z.number().int().positive().optional(),
            scaleDownCooldownMs: z.number().nonnegative().optional(),
            scaleUpStep: z.enum(["one", "proportional"]).optional(),
            targetUtilization: z.number().min(0.05).max(1).optional(),
            scaleDownGuard: z.boolean().optional(),
            sloScaleUpAbove: z.number().min(0).max(1).optional(),
            zeroAfterIdleMs: z.number().nonnegative().optional(),
          })
          .strict()
          .optional(),
        /** Per-model overrides of `reactive`, e.g. {"llama3.2-3b": {"minInstances": 0}} (scale to zero). */
        endpoints: z
          .record(
            z.string(),
            z
              .object({
                minInstances: z.number().int().min(0).optional(),
                maxInstances: z.number().int().positive().optional(),
                zeroAfterIdleMs: z.number().nonnegative().optional(),
              })
              .strict(),
          )
          .optional(),
        niw: NiwSettingsSchema.optional(),
        /** How LT-* carry out a plan (region-agent plan-policy.ts PlanExecutionConfig). */
        planExecution: PlanExecutionSchema.optional(),
        /** Under a plan: the SLO feedback on the capacity model (region-agent slo-calibration.ts). */
        sloCalibration: z
          .object({
            enabled: z.boolean().optional(),
            low: z.number().gt(0).lt(1).optional(),
            high: z.number().gt(0).max(1).optional(),
            windowMs: z.number().positive().optional(),
            stepMs: z.number().positive().optional(),
            minSamples: z.number().int().positive().optional(),
            down: z.number().min(0).lt(1).optional(),
            up: z.number().min(0).optional(),
            min: z.number().gt(0).max(1).optional(),
            max: z.number().min(1).optional(),
          })
          .strict()
          .optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

export type SimConfig = z.output<typeof SimConfigSchema>;

export function loadSimConfig(path: string): SimConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new SageError("CONFIG", `config ${path}: ${errorMessage(e)}`);
  }
  const parsed = SimConfigSchema.safeParse(raw);
  if (!parsed.success) {
    throw new SageError("CONFIG", `config ${path}: ${describeIssues(parsed.error.issues)}`);
  }
  return parsed.data;
}
