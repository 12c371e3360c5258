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
 * Instances are planned at `targetUtilization` of the knee (default 1: the pooled knee below already
 * leaves the headroom a pool needs). The knee is measured on Poisson arrivals and real traffic is
 * burstier (the built-in scenarios' streams have an inter-arrival CV of 1.5): a lower target buys margin
 * for bursts the pooling rule does not cover.
 *
 * **Pools.** The knee is one instance's. Behind the router, N instances of an endpoint share one stream
 * and each request goes to the instance with the least queued work, so the pool keeps its SLO at a higher
 * load per instance than one instance alone: a request rarely finds every instance busy with a prefill.
 * Where a point also has the sweep's saturation throughput s (the most requests/s one instance completed
 * at any swept rate), one instance of a pool of N carries s − (s − knee) / √N at the SLO: the knee alone,
 * approaching saturation as the pool grows, with the headroom shrinking as 1/√N — the square-root staffing
 * rule of many-server queues with Poisson-like arrivals (Halfin–Whitt), which the arrivals of a busy
 * endpoint are (its bursts shrink with volume). `targetUtilization` still applies on top, for bursts.
 */
export interface CapacityPoint {
  /** Mean prompt and output tokens of the length mix the point was measured on. */
  meanInputTokens: number;
  meanOutputTokens: number;
  /** All-tier requests/s one instance serves at the knee. */
  rps: number;
  /** All-tier requests/s one instance completes at saturation (the sweep's most); absent: no pooling. */
  saturationRps?: number;
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
  /** All-tier requests/s one instance carries at the SLO for this mix (in a pool of `pool`). */
  rps: number;
  /** Prompt + output tokens/s at the same point. */
  tokensPerSecond: number;
}

export interface CapacityOptions {
  /** Count on pooling (see the class comment); false: every instance at its lone knee. Default true. */
  pooling?: boolean;
}

/**
 * The fraction of the knee endpoints are planned at, unless configured: the pooled knee itself. Measured
 * at `day` × 10 (LT-UA, seed 1, VM-dollar objective): at 1.0 IW-fast 99.4 % of feasible requests for
 * 11,549 GPU-hours, at 0.5 99.7 % for 19,134 — half the knee (the default until December 2026, chosen
 * before pooling and before the arrival model's bursts shrank with volume) cost 66 % more GPU-hours for
 * a third of a point of attainment. LT-I, which applies each plan at once, misses IW-fast at 1.0 (97.2 %).
 */
export const DEFAULT_TARGET_UTILIZATION = 1;

export class CapacityModel {
  readonly pooling: boolean;

  constructor(
    readonly table: CapacityTableData,
    readonly targetUtilization = DEFAULT_TARGET_UTILIZATION,
    o: CapacityOptions = {},
  ) {
    if (!(targetUtilization > 0 && targetUtilization <= 1))
      throw new RangeError(`targetUtilization must be in (0, 1], got ${targetUtilization}`);
    this.pooling = o.pooling ?? true;
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

  /**
   * What one instance carries at the SLO for a mix (the model's default mix when none is given), as one
   * of a pool of `pool` instances (1: its lone knee).
   */
  capacity(model: string, gpu: string, mix?: LengthMix, pool = 1): InstanceCapacity | undefined {
    const c = this.curve(model, gpu, mix);
    if (!c) return undefined;
    const rps = perInstanceRps(c, pool);
    return { rps, tokensPerSecond: rps * c.tokensPerRequest };
  }

  /** Tokens/s one instance (of a pool of `pool`) is planned to carry: its SLO load times the target utilisation. */
  plannedTokensPerSecond(model: string, gpu: string, mix?: LengthMix, pool = 1): number | undefined {
    const c = this.capacity(model, gpu, mix, pool);
    return c ? c.tokensPerSecond * this.targetUtilization : undefined;
  }

  /**
   * Instances of (model, GPU) that carry `tokensPerSecond` of demand at the target utilisation: the
   * smallest pool N whose N instances, each at its share of a pool of N, carry it.
   */
  instancesFor(model: string, gpu: string, tokensPerSecond: number, mix?: LengthMix): number {
    const c = this.curve(model, gpu, mix);
    if (!c || tokensPerSecond <= 0) return 0;
    const planned = (pool: number) => perInstanceRps(c, pool) * c.tokensPerRequest * this.targetUtilization;
    // A hair of tolerance so that demand computed as n × capacity does not round up to n + 1.
    const lone = Math.max(1, Math.ceil(tokensPerSecond / planned(1) - 1e-9));
    if (c.saturation === undefined) return lone;
    // Pooling only lowers the count: the smallest N ≤ the lone count with N · c(N) ≥ demand (N · c(N)
    // grows with N, so a binary search finds it).
    let lo = 1;
    let hi = lone;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (mid * planned(mid) >= tokensPerSecond - 1e-9) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** The mix's lone knee and (pooling, where measured above it) saturation, in requests/s. */
  private curve(model: string, gpu: string, mix?: LengthMix): Curve | undefined {
    const points = this.table[model]?.[gpu];
    if (!points?.length) return undefined;
    const m = mix && mix.meanInputTokens > 0 ? mix : this.defaultMix(model, gpu);
    if (!m) return undefined;
    const knee = 1 / interpolatedCost(points, m.meanInputTokens, (x) => x.rps);
    let saturation: number | undefined;
    if (this.pooling && points.every((x) => x.saturationRps && x.saturationRps > x.rps)) {
      const sat = 1 / interpolatedCost(points, m.meanInputTokens, (x) => x.saturationRps!);
      if (sat > knee) saturation = sat;
    }
    return { knee, saturation, tokensPerRequest: m.meanInputTokens + m.meanOutputTokens };
  }

  /**
   * The ILP's per-instance capacity (tokens/s at the target utilisation) for every eligible GPU type of
   * each model, for each model's mix.
   */
  plannerCapacity(
    models: readonly string[],
    gpus: readonly string[],
    mixOf: (model: string) => LengthMix | undefined = () => undefined,
    /** Tokens/s of the smallest demand a model's pools serve (its quietest region): sizes the pool. */
    demandOf: (model: string) => number = () => 0,
  ): Record<string, Record<string, number>> {
    const out: Record<string, Record<string, number>> = {};
    for (const m of models) {
      const caps: Record<string, number> = {};
      // The ILP takes one capacity per (model, GPU) for every region: that of the pool the quietest
      // region needs (the smallest pool, so the least per instance — never more than an agent counts).
      const d = demandOf(m);
      const mix = mixOf(m);
      for (const g of gpus) {
        const pool = d > 0 ? this.instancesFor(m, g, d, mix) : 1;
        const c = this.plannedTokensPerSecond(m, g, mix, Math.max(1, pool));
        if (c && c > 0) caps[g] = c;
      }
      if (Object.keys(caps).length) out[m] = caps;
    }
    return out;
  }
}

interface Curve {
  knee: number;
  saturation: number | undefined;
  tokensPerRequest: number;
}

/** Requests/s one instance of a pool of `pool` carries at the SLO: s − (s − knee)/√N, or the knee alone. */
function perInstanceRps(c: Curve, pool: number): number {
  return c.saturation !== undefined && pool > 1
    ? c.saturation - (c.saturation - c.knee) / Math.sqrt(pool)
    : c.knee;
}

/**
 * The cost of a request (1 / requests per second, from `rpsOf`) for a mean prompt length: interpolated
 * linearly between the measured mixes, in proportion to the prompt past the longest one, and not
 * extrapolated below the shortest.
 */
function interpolatedCost(
  points: readonly CapacityPoint[],
  prompt: number,
  rpsOf: (p: CapacityPoint) => number,
): number {
  const sorted = [...points].sort((a, b) => a.meanInputTokens - b.meanInputTokens);
  const cost = (x: CapacityPoint) => 1 / rpsOf(x);
  const lo = sorted[0]!;
  const hi = sorted.at(-1)!;
  if (prompt <= lo.meanInputTokens) return cost(lo);
  if (prompt >= hi.meanInputTokens) return cost(hi) * (prompt / hi.meanInputTokens);
  let i = 1;
  while (sorted[i]!.meanInputTokens < prompt) i++;
  const a = sorted[i - 1]!;
  const b = sorted[i]!;
  const w = (prompt - a.meanInputTokens) / (b.meanInputTokens - a.meanInputTokens);
  return cost(a) + w * (cost(b) - cost(a));
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
