import { existsSync } from "node:fs";
import { MODELS } from "@sageserve/engine";
import { DEFAULT_NIW_DEADLINE_MS, SageError } from "@sageserve/protocol";
import { createRng } from "@sageserve/runtime";
import { z } from "zod";
import { type ArrivalStream, generateArrivals } from "./arrivals.js";
import { shapeFromRates } from "./rates.js";
import { workloadStats } from "./stats.js";
import type { Workload } from "./types.js";

/**
 * A synthetic multi-day, multi-model, multi-region workload. The rate of each
 * (model, region) follows a real weekly shape (ServeGen, 10-minute windows) in
 * the region's local time; arrivals are over-dispersed to the configured inter-arrival
 * CV (the same at any rate); token lengths come from the Azure 2023 traces.
 */
export const ScenarioSpecSchema = z.object({
  name: z.string().min(1),
  durationHours: z
    .number()
    .positive()
    .max(24 * 31),
  /** Mean total arrival rate (req/s) over a full week of the shape, all models and regions. */
  meanRatePerSecond: z.number().positive(),
  models: z
    .array(
      z.object({
        id: z.string().refine((m) => m in MODELS, { message: "unknown model" }),
        share: z.number().positive(),
        /** A built-in weekly profile (m-large, m-mid, m-small) or the path of a rate file. */
        shape: z.string().min(1),
        tokens: z.enum(["conv", "code"]),
      }),
    )
    .min(1),
  regions: z
    .array(
      z.object({
        id: z.string().regex(/^[A-Za-z0-9_-]+$/),
        weight: z.number().positive(),
        utcOffsetHours: z.number(),
      }),
    )
    .min(1),
  tierMix: z.object({ "iw-fast": z.number().min(0), "iw-normal": z.number().min(0), niw: z.number().min(0) }),
  niwDeadlineHours: z
    .number()
    .positive()
    .default(DEFAULT_NIW_DEADLINE_MS / 3_600_000),
  /**
   * Inter-arrival CV of each (model, region) stream: 1 = Poisson; above 1, 10-second sub-windows get a
   * gamma rate multiplier whose spread keeps the counts' variance-to-mean at burstCv² at any rate.
   */
  burstCv: z.number().min(1).default(1.5),
  maxInputTokens: z.number().int().positive().default(32_768),
  /** Multiplies the rate (paper-week at scale 0.1 is a tenth of the requests). */
  scale: z.number().positive().default(1),
  /** Where in the weekly shape (hours since Monday 00:00, region-local) the run starts. */
  startHourOfWeek: z.number().min(0).max(168).default(0),
});
export type ScenarioSpec = z.input<typeof ScenarioSpecSchema>;

const PAPER_MODELS: ScenarioSpec["models"] = [
  { id: "llama2-70b", share: 0.4, shape: "m-large", tokens: "conv" },
  { id: "bloom-176b", share: 0.15, shape: "m-mid", tokens: "conv" },
  { id: "llama3.1-8b", share: 0.25, shape: "m-small", tokens: "code" },
  { id: "llama3.2-3b", share: 0.2, shape: "m-large", tokens: "conv" },
];
const PAPER_REGIONS: ScenarioSpec["regions"] = [
  { id: "eastus", weight: 0.45, utcOffsetHours: -5 },
  { id: "centralus", weight: 0.25, utcOffsetHours: -6 },
  { id: "westus", weight: 0.3, utcOffsetHours: -8 },
];
// The paper's trace: IW is 72 % of requests, IW-fast the largest share.
const PAPER_TIERS = { "iw-fast": 0.45, "iw-normal": 0.27, niw: 0.28 };

export const SCENARIOS: Record<string, ScenarioSpec> = {
  smoke: {
    name: "smoke",
    durationHours: 1 / 6,
    meanRatePerSecond: 4,
    models: [PAPER_MODELS[0]!, PAPER_MODELS[2]!],
    regions: [PAPER_REGIONS[0]!, PAPER_REGIONS[2]!],
    tierMix: PAPER_TIERS,
  },
  day: {
    name: "day",
    durationHours: 24,
    meanRatePerSecond: 16.5,
    models: PAPER_MODELS,
    regions: PAPER_REGIONS,
    tierMix: PAPER_TIERS,
  },
  // The paper's deployment size (16 interactive + 4 batch instances per model and region): rates at which,
  // on the pooled SLO capacity model at its knee (what unified reactive scaling in fact runs, within a few
  // instances), the endpoints run 10–40 instances at their weekly peak (llama2-70b 31/18/21, bloom-176b
  // 17/10/12, llama3.1-8b 27/15/18, llama3.2-3b 19/11/13 in eastus/centralus/westus) — where paper-week
  // keeps every endpoint at its 2-instance floor. 900 req/s, ~544 M requests over the week. (Until
  // 2026-12-06 it was 180 req/s, sized on the lone-instance knee at half load; on the pooled model and the
  // volume-aware bursts that came later, endpoints there peaked at 3–7 instances and sat at their floor
  // most of the week.)
  "paper-scale": {
    name: "paper-scale",
    durationHours: 168,
    meanRatePerSecond: 900,
    models: [
      { id: "llama2-70b", share: 0.17, shape: "m-large", tokens: "conv" },
      { id: "bloom-176b", share: 0.06, shape: "m-mid", tokens: "conv" },
      { id: "llama3.1-8b", share: 0.29, shape: "m-small", tokens: "code" },
      { id: "llama3.2-3b", share: 0.48, shape: "m-large", tokens: "conv" },
    ],
    regions: PAPER_REGIONS,
    tierMix: PAPER_TIERS,
  },
  // 4 models × 3 regions × 7 days, ~10M requests: the size of the paper's evaluation.
  "paper-week": {
    name: "paper-week",
    durationHours: 168,
    meanRatePerSecond: 16.5,
    models: PAPER_MODELS,
    regions: PAPER_REGIONS,
    tierMix: PAPER_TIERS,
  },
};

const WEEK_MS = 7 * 24 * 3600_000;
const BUILTIN_SHAPES = ["m-large", "m-mid", "m-small"] as const;

/** A rate profile of mean 1, in bins, repeating every `spanMs`. */
interface Shape {
  values: readonly number[];
  binMs: number;
  spanMs: number;
}

/**
 * A scenario's weekly shape: a built-in ServeGen profile, or any rate file (summed over its streams
 * and normalised to mean 1; a path relative to the working directory — resolveWorkload makes a
 * scenario file's paths relative to it).
 */
function shapeOf(shape: string): Shape {
  if ((BUILTIN_SHAPES as readonly string[]).includes(shape))
    return {
      values: workloadStats().servegenWeekly10min[shape as (typeof BUILTIN_SHAPES)[number]],
      binMs: 600_000,
      spanMs: WEEK_MS,
    };
  if (!existsSync(shape))
    throw new SageError(
      "CONFIG",
      `shape '${shape}': not a built-in profile (${BUILTIN_SHAPES.join(", ")}) and no such rate file`,
    );
  return shapeFromRates(shape);
}

export function generateScenario(spec: ScenarioSpec, seed: number): Workload {
  const s = ScenarioSpecSchema.parse(spec);
  const stats = workloadStats();
  const modelTotal = s.models.reduce((a, m) => a + m.share, 0);
  const regionTotal = s.regions.reduce((a, r) => a + r.weight, 0);
  const shapes = new Map(s.models.map((m) => [m.shape, shapeOf(m.shape)]));
  const streams: ArrivalStream[] = s.models.flatMap((m) =>
    s.regions.map((r) => {
      const shape = shapes.get(m.shape)!;
      const tokens = stats.azure2023[m.tokens];
      const offsetMs = (r.utcOffsetHours + s.startHourOfWeek) * 3600_000;
      const ratePerMs =
        (s.meanRatePerSecond * s.scale * (m.share / modelTotal) * (r.weight / regionTotal)) / 1000;
      return {
        model: m.id,
        region: r.id,
        // The shape is read in the region's local time.
        rateAt: (ms: number) => {
          const local = (((ms + offsetMs) % shape.spanMs) + shape.spanMs) % shape.spanMs;
          return ratePerMs * (shape.values[Math.floor(local / shape.binMs)] ?? 1);
        },
        burstCvAt: () => s.burstCv,
        tokensAt: () => tokens,
      };
    }),
  );
  return generateArrivals(
    {
      name: s.name,
      durationMs: Math.round(s.durationHours * 3600_000),
      models: s.models.map((m) => m.id),
      regions: s.regions.map((r) => r.id),
      streams,
      tierMix: s.tierMix,
      niwDeadlineMs: s.niwDeadlineHours * 3600_000,
      maxInputTokens: s.maxInputTokens,
    },
    createRng(seed, `scenario-${s.name}`),
  );
}
