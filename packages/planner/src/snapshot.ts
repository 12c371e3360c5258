import { z } from "zod";

/**
 * Everything one planning step needs, as plain data: `sageserve plan --state
 * file.json` reads exactly this (documented in docs/planner.md).
 */
export const PlanningSnapshotSchema = z
  .object({
    /** Per-instance capacity (tokens/s an instance sustains within SLO) by model and GPU type. */
    capacity: z.record(z.string(), z.record(z.string(), z.number().positive())),
    gpuTypes: z
      .array(
        z.object({
          id: z.string(),
          pricePerHour: z.number().nonnegative(),
          gpusPerVm: z.number().int().positive().default(8),
        }),
      )
      .min(1),
    /** Most VMs per region and GPU type (serving + being started). */
    supply: z.record(z.string(), z.record(z.string(), z.number().int().nonnegative())),
    /** Forecast demand (tokens/s) per model and origin region. */
    demand: z.array(
      z.object({
        model: z.string(),
        region: z.string(),
        iwTokensPerSecond: z.number().nonnegative(),
        niwTokensPerSecond: z.number().nonnegative().default(0),
        /**
         * Batch tokens/s this window must serve for the queued NIW jobs to meet their deadlines (from
         * the backlog by deadline). When given, it replaces `niwShare` × the NIW forecast.
         */
        niwRequiredTokensPerSecond: z.number().nonnegative().optional(),
      }),
    ),
    /** Current allocation: serving instances and spot VMs holding each model. */
    current: z
      .array(
        z.object({
          model: z.string(),
          region: z.string(),
          gpu: z.string(),
          instances: z.number().int().nonnegative(),
          spot: z.number().int().nonnegative().default(0),
        }),
      )
      .default([]),
    /** Regions each origin region may send interactive work to (itself always allowed). */
    routes: z.record(z.string(), z.array(z.string())).default({}),
    config: z
      .object({
        /** Capacity above forecast IW demand (0.2 = 20 %). */
        headroom: z.number().min(0).default(0.2),
        /** Share of forecast NIW demand that must fit this window (the rest waits for spare capacity). */
        niwShare: z.number().min(0).max(1).default(0.1),
        minInstances: z.number().int().min(0).default(2),
        /** Per-model minimum per region (0: the model may scale to zero there). */
        minInstancesByModel: z.record(z.string(), z.number().int().min(0)).optional(),
        /** One-off costs (USD) of bringing an instance up: booting a VM, swapping a spot VM's model, reclaiming a spot VM. */
        bootCost: z.number().nonnegative().default(20),
        swapCost: z.number().nonnegative().default(8),
        reclaimCost: z.number().nonnegative().default(2),
        /** Cost of taking an instance down (discourages churn). */
        scaleDownCost: z.number().nonnegative().default(1),
        /** USD per (token/s) routed away from its origin region, per hour (latency tie-break). */
        crossRegionCost: z.number().nonnegative().default(0.0005),
        /** USD per (token/s) of demand left unserved: makes an infeasible plan a relaxation, not a failure. */
        unservedPenalty: z.number().positive().default(10),
      })
      .default({
        headroom: 0.2,
        niwShare: 0.1,
        minInstances: 2,
        bootCost: 20,
        swapCost: 8,
        reclaimCost: 2,
        scaleDownCost: 1,
        crossRegionCost: 0.0005,
        unservedPenalty: 10,
      }),
  })
  .strict();

export type PlanningSnapshot = z.output<typeof PlanningSnapshotSchema>;
export type PlanningSnapshotInput = z.input<typeof PlanningSnapshotSchema>;
