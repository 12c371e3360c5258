import { TIERS, type Tier } from "@sageserve/protocol";
import type { Rng } from "@sageserve/runtime";
import { gamma, poisson } from "./random.js";
import { sampleQuantiles } from "./stats.js";
import type { SimRequest, Workload } from "./types.js";

/** Evenly spaced quantiles (201 of them in the built-in data) of the prompt and output lengths. */
export interface TokenQuantiles {
  inputTokens: readonly number[];
  outputTokens: readonly number[];
}

/** One (model, region[, client]) source of arrivals whose rate, burstiness and lengths vary in time. */
export interface ArrivalStream {
  model: string;
  region: string;
  /** Every request of the stream has this tier; otherwise drawn from the tier mix. */
  tier?: Tier;
  /** Mean rate (requests per ms) of the sub-window starting at `ms`, before the burst multiplier. */
  rateAt(ms: number): number;
  /** Gamma shape k = 1 / (cv² − 1) of the sub-window's rate multiplier; 0 = Poisson. */
  burstShapeAt(ms: number): number;
  tokensAt(ms: number): TokenQuantiles;
}

export interface ArrivalSpec {
  name: string;
  durationMs: number;
  models: string[];
  regions: string[];
  streams: ArrivalStream[];
  tierMix: Record<Tier, number>;
  niwDeadlineMs: number;
  maxInputTokens: number;
}

const SLICE_MS = 60_000;
const SUB_MS = 10_000;

/** The gamma shape that gives a rate multiplier of mean 1 and inter-arrival CV `cv` (≤ 1: Poisson). */
export const burstShape = (cv: number): number => (cv > 1 ? 1 / (cv ** 2 - 1) : 0);

/**
 * Arrivals of every stream, a minute at a time: each 10-second sub-window draws a gamma rate
 * multiplier (mean 1, shape from the stream's burstiness), then a Poisson count placed uniformly;
 * each request draws its tier and its token lengths. The built-in scenarios and rate files share it.
 */
export function generateArrivals(spec: ArrivalSpec, rng: Rng): Workload {
  const tierTotal = TIERS.reduce((a, t) => a + spec.tierMix[t], 0);
  const tierCdf = TIERS.map(
    (_, i) => TIERS.slice(0, i + 1).reduce((a, t) => a + spec.tierMix[t], 0) / tierTotal,
  );
  const { durationMs, streams, maxInputTokens, niwDeadlineMs } = spec;
  let t = 0;
  let nextId = 0;
  return {
    name: spec.name,
    durationMs,
    models: spec.models,
    regions: spec.regions,
    next(): SimRequest[] {
      const out: SimRequest[] = [];
      while (out.length === 0 && t < durationMs) {
        const sliceEnd = Math.min(durationMs, t + SLICE_MS);
        for (const st of streams) {
          for (let sub = t; sub < sliceEnd; sub += SUB_MS) {
            const subEnd = Math.min(sliceEnd, sub + SUB_MS);
            const rate = st.rateAt(sub);
            const k = st.burstShapeAt(sub);
            const burst = k > 0 ? gamma(rng, k, 1 / k) : 1;
            const n = poisson(rng, rate * burst * (subEnd - sub));
            if (n === 0) continue;
            const tokens = st.tokensAt(sub);
            for (let i = 0; i < n; i++) {
              const arrivalMs = Math.floor(sub + rng.next() * (subEnd - sub));
              const u = rng.next();
              const tier: Tier =
                st.tier ?? (u < tierCdf[0]! ? "iw-fast" : u < tierCdf[1]! ? "iw-normal" : "niw");
              const req: SimRequest = {
                id: 0,
                arrivalMs,
                model: st.model,
                region: st.region,
                tier,
                inputTokens: Math.min(maxInputTokens, sampleQuantiles(tokens.inputTokens, rng.next())),
                outputTokens: sampleQuantiles(tokens.outputTokens, rng.next()),
              };
              if (tier === "niw") req.deadlineMs = arrivalMs + niwDeadlineMs;
              out.push(req);
            }
          }
        }
        t = sliceEnd;
      }
      out.sort((a, b) => a.arrivalMs - b.arrivalMs);
      for (const r of out) r.id = nextId++;
      return out;
    },
  };
}
