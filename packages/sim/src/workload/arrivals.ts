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
  /** Inter-arrival CV of the stream at `ms` (≤ 1: Poisson); see `burstShape`. */
  burstCvAt(ms: number): number;
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

/**
 * The gamma shape of a sub-window's rate multiplier (mean 1) that gives the stream an inter-arrival CV of
 * `cv` at any rate: a window expecting `expected` arrivals gets counts whose variance-to-mean ratio is
 * cv² — what a renewal process with that inter-arrival CV has over long windows, and what a superposition
 * of many independent sources keeps (its relative swings shrink as 1/√rate). Count variance of the
 * gamma-mixed Poisson is n + n²/k, so k = n / (cv² − 1); at or below one expected arrival per window
 * k = 1 / (cv² − 1). (Until December 2026 k was 1 / (cv² − 1) at every rate: the rate of a busy stream
 * swung ±112 % from one 10-second window to the next for cv 1.5, far burstier than the CV it was given,
 * and the more so the busier — every policy needed 2–3× the instances of a Poisson stream at paper-scale.)
 * 0: Poisson.
 */
export const burstShape = (cv: number, expected = 1): number =>
  cv > 1 ? Math.max(1, expected) / (cv ** 2 - 1) : 0;

/**
 * Arrivals of every stream, a minute at a time: each 10-second sub-window draws a gamma rate
 * multiplier (mean 1, shape from the stream's inter-arrival CV and rate), then a Poisson count placed uniformly;
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
            const k = burstShape(st.burstCvAt(sub), rate * (subEnd - sub));
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
      const sorted = sortByArrival(out);
      for (const r of sorted) r.id = nextId++;
      return sorted;
    },
  };
}

let counts = new Int32Array(0);
const byArrival = (a: SimRequest, b: SimRequest) => a.arrivalMs - b.arrivalMs;

/**
 * Requests in arrival order, ties in their order in `reqs` (what a stable sort gives): a counting sort
 * over the span of whole milliseconds when it is small next to the count (a minute of arrivals: one pass,
 * no comparisons), else `Array.prototype.sort`. Sorting each minute's arrivals with a comparator was
 * ~5 % of a paper-scale run.
 */
export function sortByArrival(reqs: SimRequest[]): SimRequest[] {
  const n = reqs.length;
  if (n < 64) return reqs.sort(byArrival);
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const r of reqs) {
    if (r.arrivalMs < lo) lo = r.arrivalMs;
    if (r.arrivalMs > hi) hi = r.arrivalMs;
  }
  const span = hi - lo + 1;
  if (!Number.isInteger(lo) || !Number.isInteger(hi) || span > 16 * n + 65_536) return reqs.sort(byArrival);
  if (counts.length < span + 1) counts = new Int32Array(span + 1);
  else counts.fill(0, 0, span + 1);
  for (const r of reqs) counts[r.arrivalMs - lo + 1]!++;
  for (let i = 1; i <= span; i++) counts[i]! += counts[i - 1]!;
  const out = new Array<SimRequest>(n);
  for (const r of reqs) out[counts[r.arrivalMs - lo]!++] = r;
  return out;
}
