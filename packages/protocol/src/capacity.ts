/**
 * The one capacity model: how much traffic one instance of (model, GPU type) carries with its TTFT SLOs
 * kept, for the prompt/output-length mix of the traffic. The planner's ILP coefficients, the region
 * agents' instance counts for measured demand, the GPU-type eligibility and the simulator's load signal
 * all come from here, so the plan and the agents that carry it out agree on what "enough" is.
 *
 * The data are the knees of the engine load sweep (the simulator derives them from the measured
 * performance profiles: packages/sim/data/engine-capacity.json): for each (model, GPU type) one point per
 * length mix measured, each the highest all-tier request rate at which one instance still meets the
 * IW-fast (99 %) and IW-normal (99.9 %) TTFT targets. Between two measured mixes the cost of a request
 * (1 / requests per second) is interpolated linearly in the mean prompt length; past the longest mix
 * measured it grows in proportion to the prompt (prefill-bound), and below the shortest it is not
 * extrapolated down (conservative).
 *
 * Instances are planned at `targetUtilization` of the knee: the knee is measured on Poisson arrivals,
 * and real traffic is burstier (the built-in scenarios' streams have an inter-arrival CV of 1.5), so an
 * endpoint run at its knee misses its SLO in every burst.
 */
export interface CapacityPoint {
  /** Mean prompt and output tokens of the length mix the point was measured on. */
  meanInputTokens: number;
  meanOutputTokens: number;
  /** All-tier requests/s one instance serves at the knee. */
  rps: number;
  /** This is the mix the model's traffic has when nothing is known about it. */
  default?: boolean;
}

/** Measured points per model and GPU type. A (model, GPU) with no point is not eligible. */
export type CapacityTableData = Record<string, Record<string, CapacityPoint[]>>;

export interface LengthMix {
  meanInputTokens: number;
  meanOutputTokens: number;
}

export interface InstanceCapacity {
  /** All-tier requests/s at the knee for this mix. */
  rps: number;
  /** Prompt + output tokens/s at the knee for this mix. */
  tokensPerSecond: number;
}

/** The fraction of the knee endpoints are planned at, unless configured. */
export const DEFAULT_TARGET_UTILIZATION = 0.5;

export class CapacityModel {
  constructor(
    readonly table: CapacityTableData,
    readonly targetUtilization = DEFAULT_TARGET_UTILIZATION,
  ) {
    if (!(targetUtilization > 0 && targetUtilization <= 1))
      throw new RangeError(`targetUtilization must be in (0, 1], got ${targetUtilization}`);
  }

  /** GPU types with a measured point for the model. */
  gpus(model: string): string[] {
    return Object.keys(this.table[model] ?? {});
  }

  /** The mix a model's traffic is assumed to have before any is measured. */
  defaultMix(model: string, gpu?: string): LengthMix | undefined {
    const byGpu = this.table[model];
    if (!byGpu) return undefined;
    const points = (gpu ? byGpu[gpu] : undefined) ?? Object.values(byGpu)[0] ?? [];
    const p = points.find((x) => x.default) ?? points[0];
    return p ? { meanInputTokens: p.meanInputTokens, meanOutputTokens: p.meanOutputTokens } : undefined;
  }

  /** Knee capacity of one instance for a mix (the model's default mix when none is given). */
  capacity(model: string, gpu: string, mix?: LengthMix): InstanceCapacity | undefined {
    const points = this.table[model]?.[gpu];
    if (!points?.length) return undefined;
    const m = mix && mix.meanInputTokens > 0 ? mix : this.defaultMix(model, gpu);
    if (!m) return undefined;
    const sorted = [...points].sort((a, b) => a.meanInputTokens - b.meanInputTokens);
    const p = m.meanInputTokens;
    const cost = (x: CapacityPoint) => 1 / x.rps;
    let c: number;
    const lo = sorted[0]!;
    const hi = sorted.at(-1)!;
    if (p <= lo.meanInputTokens) c = cost(lo);
    else if (p >= hi.meanInputTokens) c = cost(hi) * (p / hi.meanInputTokens);
    else {
      let i = 1;
      while (sorted[i]!.meanInputTokens < p) i++;
      const a = sorted[i - 1]!;
      const b = sorted[i]!;
      const w = (p - a.meanInputTokens) / (b.meanInputTokens - a.meanInputTokens);
      c = cost(a) + w * (cost(b) - cost(a));
    }
    const rps = 1 / c;
    return { rps, tokensPerSecond: rps * (m.meanInputTokens + m.meanOutputTokens) };
  }

  /** Tokens/s one instance is planned to carry: the knee times the target utilisation. */
  plannedTokensPerSecond(model: string, gpu: string, mix?: LengthMix): number | undefined {
    const c = this.capacity(model, gpu, mix);
    return c ? c.tokensPerSecond * this.targetUtilization : undefined;
  }

  /** Instances of (model, GPU) that carry `tokensPerSecond` of demand at the target utilisation. */
  instancesFor(model: string, gpu: string, tokensPerSecond: number, mix?: LengthMix): number {
    const per = this.plannedTokensPerSecond(model, gpu, mix);
    if (!per || tokensPerSecond <= 0) return 0;
    // A hair of tolerance so that demand computed as n × capacity does not round up to n + 1.
    return Math.ceil(tokensPerSecond / per - 1e-9);
  }

  /**
   * The ILP's per-instance capacity (tokens/s at the target utilisation) for every eligible GPU type of
   * each model, for each model's mix.
   */
  plannerCapacity(
    models: readonly string[],
    gpus: readonly string[],
    mixOf: (model: string) => LengthMix | undefined = () => undefined,
  ): Record<string, Record<string, number>> {
    const out: Record<string, Record<string, number>> = {};
    for (const m of models) {
      const caps: Record<string, number> = {};
      for (const g of gpus) {
        const c = this.plannedTokensPerSecond(m, g, mixOf(m));
        if (c && c > 0) caps[g] = c;
      }
      if (Object.keys(caps).length) out[m] = caps;
    }
    return out;
  }
}

/** Interactive (IW-fast + IW-normal) share of a demand window's tokens and its length mix. */
export function mixOf(counts: {
  requests: number;
  inputTokens: number;
  outputTokens: number;
}): LengthMix | undefined {
  if (counts.requests <= 0) return undefined;
  return {
    meanInputTokens: counts.inputTokens / counts.requests,
    meanOutputTokens: counts.outputTokens / counts.requests,
  };
}
