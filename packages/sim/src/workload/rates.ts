import { basename, resolve } from "node:path";
import { MODELS } from "@sageserve/engine";
import { DEFAULT_NIW_DEADLINE_MS, SageError } from "@sageserve/protocol";
import { createRng } from "@sageserve/runtime";
import { z } from "zod";
import { type ArrivalStream, generateArrivals } from "./arrivals.js";
import {
  type LengthSeries,
  lengthsAt,
  type RateStreamKey,
  type RateTable,
  readLengthTable,
  readRateTable,
  streamKey,
} from "./rate-files.js";
import { workloadStats } from "./stats.js";
import type { Workload } from "./types.js";

/**
 * A rate spec: which rate files (and length files) to generate arrivals from, and what to call
 * their streams. Paths are relative to the spec file.
 */
export const RateSpecSchema = z.object({
  kind: z.literal("rates"),
  name: z.string().min(1),
  sources: z
    .array(
      z.object({
        rates: z.string().min(1),
        lengths: z.string().min(1).optional(),
        /** The model of rows without a `model` column. */
        model: z
          .string()
          .refine((m) => m in MODELS, { message: "unknown model" })
          .optional(),
        /** Rows without a `region` column: their rate split over these regions by weight. */
        regions: z
          .array(z.object({ id: z.string().regex(/^[A-Za-z0-9_-]+$/), weight: z.number().positive() }))
          .min(1)
          .optional(),
        /** Lengths of streams the length file does not cover (or of every stream, without one). */
        tokens: z.enum(["conv", "code"]).default("conv"),
      }),
    )
    .min(1),
  /** Bin length; default: the smallest gap between two windows of one stream. */
  binSeconds: z.number().positive().optional(),
  /** Default: the span of the rate files. */
  durationHours: z
    .number()
    .positive()
    .max(24 * 31)
    .optional(),
  /** Rescale every stream so the mean total rate over the run is this; default: the files' rates. */
  meanRatePerSecond: z.number().positive().optional(),
  scale: z.number().positive().default(1),
  tierMix: z
    .object({ "iw-fast": z.number().min(0), "iw-normal": z.number().min(0), niw: z.number().min(0) })
    .default({ "iw-fast": 0.45, "iw-normal": 0.27, niw: 0.28 }),
  niwDeadlineHours: z
    .number()
    .positive()
    .default(DEFAULT_NIW_DEADLINE_MS / 3_600_000),
  /** One burstiness for every bin, instead of the files' per-bin `cv`. */
  burstCv: z.number().min(1).optional(),
  maxInputTokens: z.number().int().positive().default(32_768),
});
export type RateSpec = z.input<typeof RateSpecSchema>;

/** The spec used when a rate file is given directly: the Azure traces' defaults (llama2-70b, westus). */
export const directRateSpec = (path: string): RateSpec => ({
  kind: "rates",
  name: basename(path),
  sources: [{ rates: path, model: "llama2-70b", regions: [{ id: "westus", weight: 1 }] }],
});

/** Arrivals from rate files: per stream and 10-second sub-window, the bin's rate and burstiness. */
export function generateFromRates(spec: RateSpec, seed: number, baseDir = "."): Workload {
  const s = parse(spec);
  const stats = workloadStats();
  const loaded = s.sources.map((src, i) => {
    const table = readRateTable(
      resolve(baseDir, src.rates),
      s.binSeconds ? { binSeconds: s.binSeconds } : {},
    );
    const lengths = src.lengths ? readLengthTable(resolve(baseDir, src.lengths), weigher(table)) : undefined;
    for (const series of table.series)
      if (!series.model && !src.model)
        throw new SageError(
          "CONFIG",
          `rate spec ${s.name}: sources[${i}] (${table.file}) has no model column: give the source a model`,
        );
    return { src, table, lengths };
  });
  const spanMs = Math.max(...loaded.map((l) => l.table.bins * l.table.binSeconds * 1000));
  const durationMs = s.durationHours ? Math.round(s.durationHours * 3600_000) : spanMs;
  let requests = 0;
  for (const { table } of loaded)
    for (const series of table.series) requests += binsTotal(series.rates, table.binSeconds, durationMs);
  if (requests <= 0)
    throw new SageError(
      "CONFIG",
      `rate spec ${s.name}: the rate files have no requests in the first ${durationMs / 3_600_000} h`,
    );
  const factor = s.scale * (s.meanRatePerSecond ? s.meanRatePerSecond / (requests / (durationMs / 1000)) : 1);

  const streams: ArrivalStream[] = [];
  for (const { src, table, lengths } of loaded) {
    const fallback = stats.azure2023[src.tokens];
    const regions = src.regions ?? [{ id: "westus", weight: 1 }];
    const regionTotal = regions.reduce((a, r) => a + r.weight, 0);
    for (const series of table.series) {
      const own = lengths?.byKey.get(streamKey(series, lengths.fields));
      const tokensAt = tokenLookup(
        table,
        own ?? (lengths?.pooled.startSeconds.length ? lengths.pooled : undefined),
        fallback,
      );
      const split = series.region ? [{ id: series.region, weight: regionTotal }] : regions;
      for (const r of split) {
        const perMs = (factor * (r.weight / regionTotal)) / 1000;
        const binMs = table.binSeconds * 1000;
        streams.push({
          model: series.model ?? src.model!,
          region: r.id,
          ...(series.tier ? { tier: series.tier } : {}),
          rateAt: (ms) => {
            const v = series.rates[Math.floor(ms / binMs)];
            return v === undefined || Number.isNaN(v) ? 0 : v * perMs;
          },
          burstCvAt: (ms) => s.burstCv ?? series.cv[Math.floor(ms / binMs)] ?? 1,
          tokensAt,
        });
      }
    }
  }
  return generateArrivals(
    {
      name: s.name,
      durationMs,
      models: [...new Set(streams.map((st) => st.model))],
      regions: [...new Set(streams.map((st) => st.region))],
      streams,
      tierMix: s.tierMix,
      niwDeadlineMs: s.niwDeadlineHours * 3600_000,
      maxInputTokens: s.maxInputTokens,
    },
    createRng(seed, `rates-${s.name}`),
  );
}

function parse(spec: RateSpec): z.output<typeof RateSpecSchema> {
  const r = RateSpecSchema.safeParse(spec);
  if (r.success) return r.data;
  throw r.error;
}

function binsTotal(rates: Float64Array, binSeconds: number, durationMs: number): number {
  let total = 0;
  const bins = Math.min(rates.length, Math.ceil(durationMs / (binSeconds * 1000)));
  for (let b = 0; b < bins; b++) {
    const v = rates[b]!;
    if (!Number.isNaN(v)) total += v * Math.min(binSeconds, durationMs / 1000 - b * binSeconds);
  }
  return total;
}

/** Requests per stream, keyed on the fields a length file names (its pooled mixture's weights). */
function weigher(table: RateTable): (key: RateStreamKey) => number {
  const cache = new Map<string, Map<string, number>>();
  return (key) => {
    const fields = (Object.keys(key) as (keyof RateStreamKey)[]).sort();
    const sig = fields.join(",");
    let byKey = cache.get(sig);
    if (!byKey) {
      byKey = new Map();
      for (const s of table.series) {
        const k = streamKey(s, fields);
        byKey.set(k, (byKey.get(k) ?? 0) + s.requests);
      }
      cache.set(sig, byKey);
    }
    return byKey.get(streamKey(key, fields)) ?? 0;
  };
}

function tokenLookup(
  table: RateTable,
  series: LengthSeries | undefined,
  fallback: { inputTokens: number[]; outputTokens: number[] },
): ArrivalStream["tokensAt"] {
  if (!series) return () => fallback;
  return (ms) => lengthsAt(series, table.startSeconds + ms / 1000);
}

/** Every stream of a rate file summed per bin and normalised to mean 1: a scenario's `shape`. */
export function shapeFromRates(path: string): { values: number[]; binMs: number; spanMs: number } {
  const table = readRateTable(path);
  const values = new Array<number>(table.bins).fill(0);
  for (const s of table.series)
    s.rates.forEach((v, b) => {
      if (!Number.isNaN(v)) values[b]! += v;
    });
  const mean = values.reduce((a, v) => a + v, 0) / values.length;
  if (!(mean > 0)) throw new SageError("CONFIG", `${table.file}: no requests in any bin, cannot be a shape`);
  return {
    values: values.map((v) => v / mean),
    binMs: table.binSeconds * 1000,
    spanMs: table.bins * table.binSeconds * 1000,
  };
}
