import { TIERS, type Tier } from "@sageserve/protocol";
import { createRng, type Rng } from "@sageserve/runtime";
import { z } from "zod";
import { MODELS } from "../catalog.js";
import { gamma, poisson } from "./random.js";
import { sampleQuantiles, workloadStats } from "./stats.js";
import type { SimRequest, Workload } from "./types.js";

/**
 * A synthetic multi-day, multi-model, multi-region workload. The rate of each
 * (model, region) follows a real weekly shape (ServeGen, 10-minute windows) in
 * the region's local time; arrivals are over-dispersed within the minute to the
 * configured burstiness; token lengths come from the Azure 2023 traces.
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
        shape: z.enum(["m-large", "m-mid", "m-small"]),
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
  niwDeadlineHours: z.number().positive().default(24),
  /** 1 = Poisson; above 1, 10-second sub-windows get a gamma rate multiplier with this CV. */
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
  // The paper's deployment size: rates at which, on the SLO capacity model (H100, half the knee), the
  // endpoints run 10–40 instances at their weekly peak (llama2-70b 31/18/21, bloom-176b 30/17/20,
  // llama3.1-8b 15/9/10, llama3.2-3b 11/6/7 in eastus/centralus/westus) — where paper-week keeps every
  // endpoint at its 2-instance floor. 180 req/s, ~109 M requests over the week.
  "paper-scale": {
    name: "paper-scale",
    durationHours: 168,
    meanRatePerSecond: 180,
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
const SLICE_MS = 60_000;
const SUB_MS = 10_000;

export function generateScenario(spec: ScenarioSpec, seed: number): Workload {
  const s = ScenarioSpecSchema.parse(spec);
  const stats = workloadStats();
  const rng: Rng = createRng(seed, `scenario-${s.name}`);
  const durationMs = Math.round(s.durationHours * 3600_000);
  const modelTotal = s.models.reduce((a, m) => a + m.share, 0);
  const regionTotal = s.regions.reduce((a, r) => a + r.weight, 0);
  const tierTotal = TIERS.reduce((a, t) => a + s.tierMix[t], 0);
  const tierCdf = TIERS.map(
    (_, i) => TIERS.slice(0, i + 1).reduce((a, t) => a + s.tierMix[t], 0) / tierTotal,
  );
  const k = s.burstCv > 1 ? 1 / (s.burstCv ** 2 - 1) : 0;
  const streams = s.models.flatMap((m) =>
    s.regions.map((r) => ({
      model: m.id,
      region: r.id,
      shape: stats.servegenWeekly10min[m.shape],
      tokens: stats.azure2023[m.tokens],
      offsetMs: (r.utcOffsetHours + s.startHourOfWeek) * 3600_000,
      ratePerMs: (s.meanRatePerSecond * s.scale * (m.share / modelTotal) * (r.weight / regionTotal)) / 1000,
    })),
  );
  let t = 0;
  let nextId = 0;
  return {
    name: s.name,
    durationMs,
    models: s.models.map((m) => m.id),
    regions: s.regions.map((r) => r.id),
    next(): SimRequest[] {
      const out: SimRequest[] = [];
      while (out.length === 0 && t < durationMs) {
        const sliceEnd = Math.min(durationMs, t + SLICE_MS);
        for (const st of streams) {
          for (let sub = t; sub < sliceEnd; sub += SUB_MS) {
            const subEnd = Math.min(sliceEnd, sub + SUB_MS);
            const local = (((sub + st.offsetMs) % WEEK_MS) + WEEK_MS) % WEEK_MS;
            const shape = st.shape[Math.floor(local / 600_000)] ?? 1;
            const burst = k > 0 ? gamma(rng, k, 1 / k) : 1;
            const n = poisson(rng, st.ratePerMs * shape * burst * (subEnd - sub));
            for (let i = 0; i < n; i++) {
              const arrivalMs = Math.floor(sub + rng.next() * (subEnd - sub));
              const u = rng.next();
              const tier: Tier = u < tierCdf[0]! ? "iw-fast" : u < tierCdf[1]! ? "iw-normal" : "niw";
              const req: SimRequest = {
                id: 0,
                arrivalMs,
                model: st.model,
                region: st.region,
                tier,
                inputTokens: Math.min(s.maxInputTokens, sampleQuantiles(st.tokens.inputTokens, rng.next())),
                outputTokens: sampleQuantiles(st.tokens.outputTokens, rng.next()),
              };
              if (tier === "niw") req.deadlineMs = arrivalMs + s.niwDeadlineHours * 3600_000;
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
