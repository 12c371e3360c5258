import { builtinPerformanceModel, type PerformanceModel } from "@sageserve/engine";
import {
  CapacityModel,
  type CapacityOptions,
  type CapacityTableData,
  DEFAULT_TARGET_UTILIZATION,
  type LengthMix,
  type Tier,
} from "@sageserve/protocol";
import { readBuiltinData } from "../data.js";
import { type WorkloadStats, workloadStats } from "../workload/stats.js";
import { geometricRates, type SweepOptions, sweepInstance } from "./sweep.js";

/**
 * Interactive requests per second one instance serves with its TTFT SLOs kept (the knee of the engine
 * load sweep), per (model, GPU type, length mix). This is what "full" means for an instance: the load
 * signal's rate term is IW arrivals ÷ this, so "scale up above 0.5" keeps an endpoint at half its SLO
 * capacity whatever the model, GPU or prompt lengths — where KV use and sequence slots would say 10–40 %
 * at the same point (a prefill-bound engine looks idle by both).
 */
export type TokenMix = "conv" | "code";

export interface CapacityEntry {
  model: string;
  gpu: string;
  tokens: TokenMix;
  /** Tokens per engine step the sweep used (PerformanceModel.stepTokenBudget). */
  stepTokenBudget: number;
  /** All-tier requests/s at the knee (the sweep's tier mix). */
  kneeRps: number;
  /** Interactive (IW-fast + IW-normal) requests/s at the knee. */
  iwKneeRps: number;
  /** Prompt + output tokens/s at the knee. */
  kneeTokensPerSecond: number;
  /** True when the SLO did not hold even at the lowest rate swept (kneeRps is then half of it). */
  belowRange?: boolean;
  /** All-tier requests/s one instance completed at most at any swept rate (its saturation throughput). */
  saturationRps?: number;
}

export interface CapacityTable {
  source: string;
  tierMix: Record<Tier, number>;
  entries: CapacityEntry[];
}

/** The length mix each built-in model's traffic uses (the scenarios' `tokens`). */
export const MODEL_TOKEN_MIX: Record<string, TokenMix> = {
  "llama2-70b": "conv",
  "bloom-176b": "conv",
  "llama3.1-8b": "code",
  "llama3.2-3b": "conv",
};

/** Mean prompt and output tokens of a built-in length mix (as the sweep samples it). */
export function meanLengths(stats: WorkloadStats, tokens: TokenMix, maxInputTokens = 32_768): LengthMix {
  const t = stats.azure2023[tokens];
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  return {
    meanInputTokens: mean(t.inputTokens.map((x) => Math.min(maxInputTokens, x))),
    meanOutputTokens: mean(t.outputTokens),
  };
}

/**
 * The sweep's table as the capacity model's data: one point per (model, GPU, length mix) whose SLO held
 * somewhere in the swept range (an entry below the range is not eligible), the model's scenario mix
 * marked as its default.
 */
export function capacityData(
  table: CapacityTable,
  stats: WorkloadStats,
  maxInputTokens = 32_768,
): CapacityTableData {
  const out: CapacityTableData = {};
  for (const e of table.entries) {
    if (e.belowRange || !(e.kneeRps > 0)) continue;
    const byGpu = out[e.model] ?? {};
    out[e.model] = byGpu;
    const points = byGpu[e.gpu] ?? [];
    byGpu[e.gpu] = points;
    points.push({
      ...meanLengths(stats, e.tokens, maxInputTokens),
      rps: e.kneeRps,
      ...(e.saturationRps ? { saturationRps: e.saturationRps } : {}),
      ...((MODEL_TOKEN_MIX[e.model] ?? "conv") === e.tokens ? { default: true } : {}),
    });
  }
  return out;
}

/** Sweep every (model, GPU, length mix) the performance model has (~10 s on one core). */
export function deriveCapacityTable(
  perf: PerformanceModel,
  stats: WorkloadStats,
  models: readonly string[],
  tierMix: Record<Tier, number>,
  o: {
    minRequests?: number;
    durationS?: number;
    warmupS?: number;
    /** Ratio between consecutive swept rates (default 1.2). */
    rateFactor?: number;
    seed?: number;
    /** GPU types to sweep (default: every one the performance model has for the model). */
    gpus?: readonly string[];
    mixes?: readonly TokenMix[];
    /** Engine settings of the swept instances (an emulator's KV, batch and step budget). */
    engine?: SweepOptions["engine"];
    kvCapacityTokens?: number;
    speedup?: number;
    maxInputTokens?: number;
  } = {},
): CapacityTable {
  const entries: CapacityEntry[] = [];
  const iwShare =
    (tierMix["iw-fast"] + tierMix["iw-normal"]) / (tierMix["iw-fast"] + tierMix["iw-normal"] + tierMix.niw);
  for (const model of models)
    for (const gpu of perf.gpusFor(model).filter((g) => !o.gpus || o.gpus.includes(g)))
      for (const tokens of o.mixes ?? (["conv", "code"] as const)) {
        const t = stats.azure2023[tokens];
        const meanPrompt = t.inputTokens.reduce((a, b) => a + b, 0) / t.inputTokens.length;
        const start = Math.max(
          0.005,
          (0.05 * (o.speedup ?? 1) * perf.capacity(model, gpu).prefillTokensPerSecond) / meanPrompt,
        );
        const r = sweepInstance(
          perf,
          model,
          gpu,
          {
            inputTokens: t.inputTokens,
            outputTokens: t.outputTokens,
            maxInputTokens: o.maxInputTokens ?? 32_768,
            tiers: tierMix,
          },
          {
            rates: geometricRates(
              start,
              o.rateFactor ?? 1.2,
              Math.ceil((40 * Math.log(1.2)) / Math.log(o.rateFactor ?? 1.2)),
            ),
            durationS: o.durationS ?? 600,
            warmupS: o.warmupS ?? 60,
            minRequests: o.minRequests ?? 20_000,
            seed: o.seed ?? 1,
            ...(o.engine ? { engine: o.engine } : {}),
            ...(o.kvCapacityTokens ? { kvCapacityTokens: o.kvCapacityTokens } : {}),
            ...(o.speedup ? { speedup: o.speedup } : {}),
          },
        );
        const k = r.knee;
        const kneeRps = k ? k.ratePerSecond : (r.points[0]?.ratePerSecond ?? start) / 2;
        entries.push({
          model,
          gpu,
          tokens,
          stepTokenBudget: r.maxBatchedTokens,
          kneeRps,
          iwKneeRps: Math.round(kneeRps * iwShare * 1000) / 1000,
          kneeTokensPerSecond: Math.round(k ? k.tokensPerSecond : 0),
          ...(k ? {} : { belowRange: true }),
          saturationRps: Math.round(Math.max(...r.points.map((p) => p.completedPerSecond)) * 1000) / 1000,
        });
      }
  return {
    source:
      "engine load sweep (packages/sim/src/engine/sweep.ts) over the built-in performance profiles and the Azure 2023 length mixes; scripts/derive-capacity.ts",
    tierMix,
    entries,
  };
}

let cached: CapacityTable | undefined;

/** The committed sweep table (data/engine-capacity.json, made by scripts/derive-capacity.ts). */
export function builtinCapacityTable(): CapacityTable {
  cached ??= readBuiltinData<CapacityTable>("engine-capacity.json");
  return cached;
}

/** The capacity model on the committed table, planning endpoints at `targetUtilization` of the knee. */
export function builtinCapacityModel(
  targetUtilization = DEFAULT_TARGET_UTILIZATION,
  o: CapacityOptions = {},
): CapacityModel {
  return new CapacityModel(capacityData(builtinCapacityTable(), workloadStats()), targetUtilization, o);
}

/** Interactive share of all requests in the sweep's tier mix (IW requests/s = knee × this). */
export function iwShareOf(table: CapacityTable): number {
  const m = table.tierMix;
  return (m["iw-fast"] + m["iw-normal"]) / (m["iw-fast"] + m["iw-normal"] + m.niw);
}

/**
 * The capacity model of emulated engines (`sageserve up`): the same sweep on the emulator's settings —
 * `speedup` times the measured hardware, a small KV cache, its batch limit and vLLM's default step budget
 * — so the live planner and region agents count instances for the engines they actually run (the
 * hardware table overstates a laptop engine's capacity by an order of magnitude). A short sweep: ~1 s.
 */
export function emulatorCapacityModel(o: {
  models: readonly string[];
  gpus: readonly string[];
  speedup: number;
  kvTokens: number;
  maxRunning: number;
  maxInputTokens: number;
  maxBatchedTokens?: number;
  targetUtilization?: number;
  perf?: PerformanceModel;
}): CapacityModel {
  const stats = workloadStats();
  const table = deriveCapacityTable(
    o.perf ?? builtinPerformanceModel(),
    stats,
    o.models,
    { "iw-fast": 0.45, "iw-normal": 0.27, niw: 0.28 },
    {
      gpus: o.gpus,
      speedup: o.speedup,
      kvCapacityTokens: o.kvTokens,
      maxInputTokens: o.maxInputTokens,
      engine: { maxNumSeqs: o.maxRunning, maxBatchedTokens: o.maxBatchedTokens ?? 8_192 },
      // Requests, not seconds, bound each point: a fast emulator with short prompts runs thousands of
      // requests a second, and a minute-long point would cost minutes of CPU at start-up.
      minRequests: 1_500,
      durationS: 5,
      warmupS: 5,
      rateFactor: 1.3,
    },
  );
  return new CapacityModel(capacityData(table, stats, o.maxInputTokens), o.targetUtilization);
}
