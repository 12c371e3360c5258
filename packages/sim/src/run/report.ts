import { GPUS, type PerformanceModel } from "@sageserve/engine";
import { forecastErrors, type PlannerActor } from "@sageserve/planner";
import { pairKey, sloRates, TIERS, type Tier, tripleKey } from "@sageserve/protocol";
import type { RegionAgentActor } from "@sageserve/region-agent";
import type { RouterActor } from "@sageserve/router";
import type { LogHistogram } from "../engine/histogram.js";
import type { SimFleet } from "../world/fleet.js";
import type { GpuLedger, LedgerKey } from "../world/ledger.js";
import type { CapacityBoundReport } from "./bound.js";
import type { MetricsCollector } from "./collector.js";

export interface TimeseriesBin {
  tMinutes: number;
  /** Paid VMs per "model|region". */
  instances: Record<string, number>;
  finished: number;
  niwQueued: number;
}

export interface Percentiles {
  p50: number;
  p95: number;
  p99: number;
  mean: number;
}

export interface TierSlo {
  /** Share of finished requests (completed + failed) that met the SLO: over all requests. */
  attainment: number;
  completed: number;
  target: string;
  /**
   * Requests whose prompt misses the TTFT target even alone on an idle instance of the GPU type that
   * served it (idle prefill > target; NIW: none), and their share of the finished ones.
   */
  infeasible: number;
  infeasibleShare: number;
  /** Attainment over the feasible requests only (1 when there are none). */
  attainmentFeasible: number;
}

export interface SimReport {
  scenario: string;
  policy: string;
  seed: number;
  simulatedHours: number;
  requests: { generated: number; completed: number; failed: number; unfinished: number; dropped: number };
  /**
   * Requests the router held because no instance could take them — cold starts of an endpoint scaled to
   * zero, or every instance lost — and how long they waited before an instance took them (ms).
   */
  coldStarts: { held: number; routed: number; waitMs: { p50: number; p99: number; max: number } };
  gpuHours: {
    total: number;
    byState: Record<string, number>;
    byTier: Record<string, number>;
    byModel: Record<string, number>;
    byRegion: Record<string, number>;
    byGpu: Record<string, number>;
    /** Booting, loading after reclaim, and swapping models: capacity paid for but not serving. */
    scalingOverhead: number;
    /** VM-hours lent to the spot pool (not paid). */
    spotLent: number;
    /** After the trace window, while in-flight work drained (reported apart, not in total). */
    afterWindow: number;
    /**
     * The window's GPU-hours as the paper counts them: per (model, region), the most GPUs paid in each
     * 15-minute bin, summed (GpuLedger.binnedPeakHours). Absent from reports stored before 2026-12-07.
     */
    binnedPeak15m?: number;
  };
  /**
   * The workload's capacity bound (run/bound.ts): the GPU-hours an oracle holding each minute exactly the
   * instances the capacity model counts would pay. Absent without the built-in capacity model, and from
   * reports stored before 2026-12-08.
   */
  capacityBound?: CapacityBoundReport;
  costUsd: number;
  scalingActions: Record<string, number>;
  slo: Record<Tier, TierSlo>;
  /**
   * SLO attainment per model and tier (over all requests and over the feasible ones): where a run's
   * misses are. Absent from reports stored before December 2026.
   */
  sloByModel?: Record<string, Record<Tier, ModelTierSlo>>;
  /**
   * Prompts longer than the measured profile of the (model, GPU) that served them, whose timing is an
   * extrapolation: requests per model, and how far each model's profiles measured (the shortest
   * range over its GPU types).
   */
  beyondProfile: {
    total: number;
    byModel: Record<string, number>;
    measuredPromptTokens: Record<string, number>;
  };
  latencyMs: Record<Tier, { ttft: Percentiles; tbt: Percentiles; e2e: Percentiles }>;
  /** TTFT distribution per tier: [percentile, ms] pairs (latency CDF plots). */
  ttftCdf: Record<Tier, [number, number][]>;
  /**
   * `released` and `escalated` count jobs (each once); `releasedAgain` (only when some were) counts
   * the further releases of jobs handed back by their instance and queued again; `handoffsLost` (only
   * when some were; never on the simulator's lossless bus) the releases their node said it never received.
   */
  niw: {
    deadlineMisses: number;
    escalated: number;
    released: number;
    releasedAgain?: number;
    handoffsLost?: number;
  };
  invariants: {
    servedWhileNotServing: number;
    duplicateCompletions: number;
    /** Messages an actor could not publish (schema or bus errors) and handler failures: must be 0. */
    publishFailures: number;
    handlerErrors: number;
    rejectedMessages: number;
  };
  timeseries: { binMinutes: number; bins: TimeseriesBin[] };
  /** Present for planner policies (lt-*): how the hourly plans went. */
  planner?: {
    plans: number;
    statuses: Record<string, number>;
    /** Recent forecast error (MAPE, exponentially weighted) of the chosen forecaster per series at the last plan. */
    forecastMape: Record<string, number>;
    /**
     * Whole-run forecast error per series over every plan window that ended before the workload did:
     * MAPE over windows with demand, sMAPE (bounded, 0–2) over windows with demand or forecast.
     */
    forecastError: Record<string, { mape: number | null; smape: number | null; windows: number }>;
    /** Re-plans the planner made on its own (demand far above forecast, a region lost). */
    replans: { atMinutes: number; reason: string }[];
    notes: string[];
  };
  /** Things about the run the reader must know (e.g. a trace shorter than the plan interval). */
  warnings?: string[];
}

const r4 = (x: number): number => Math.round(x * 1e4) / 1e4;
const sorted = (o: Record<string, number>): Record<string, number> =>
  Object.fromEntries(
    Object.entries(o)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => [k, r4(v)]),
  );
const pct = (h: LogHistogram): Percentiles => ({
  p50: r4(h.percentile(50)),
  p95: r4(h.percentile(95)),
  p99: r4(h.percentile(99)),
  mean: r4(h.mean),
});

/** What the report is built from: the run's description and its actors at the end of the run. */
export interface ReportInputs {
  scenario: string;
  policy: string;
  seed: number;
  durationMs: number;
  /** Epoch ms of simulated time zero (to place planner windows). */
  startMs?: number;
  warnings?: string[];
  endMs: number;
  generated: number;
  collector: MetricsCollector;
  fleet: SimFleet;
  agents: RegionAgentActor[];
  router: RouterActor;
  bins: TimeseriesBin[];
  actors: { stats(): { publishFailures: number; handlerErrors: number; rejected: number } }[];
  planner?: PlannerActor;
  perf: PerformanceModel;
  capacityBound?: CapacityBoundReport | undefined;
}

export function buildReport(x: ReportInputs): SimReport {
  const { collector: c, fleet } = x;
  const completed = TIERS.reduce((a, t) => a + c.tiers[t].completed, 0);
  const failed = TIERS.reduce((a, t) => a + c.tiers[t].failed, 0);
  const unfinished = Math.max(0, x.generated - completed - failed);
  const byTier = gpuHoursByTier(fleet);
  const byGpu = fleet.ledger.hours((k) => k.gpu);
  const actions = scalingActions(fleet, x.router, x.agents);
  const releasedAgain = x.agents.reduce((a, g) => a + g.niwReleasedAgain, 0);
  const handoffsLost = x.agents.reduce((a, g) => a + g.niwHandoffsLost, 0);
  const slo = sloSection(c);
  const { latencyMs, ttftCdf } = latencySection(c);
  return {
    scenario: x.scenario,
    policy: x.policy,
    seed: x.seed,
    simulatedHours: r4(x.endMs / 3_600_000),
    requests: { generated: x.generated, completed, failed, unfinished, dropped: failed + unfinished },
    coldStarts: coldStarts(x.router),
    gpuHours: gpuHoursSection(fleet.ledger, byTier, byGpu),
    ...(x.capacityBound ? { capacityBound: x.capacityBound } : {}),
    costUsd: Math.round(costUsdOf(byGpu) * 100) / 100,
    scalingActions: sorted(actions),
    slo,
    sloByModel: sloByModelSection(c),
    beyondProfile: beyondProfileSection(c, x.perf),
    latencyMs,
    ttftCdf,
    niw: {
      deadlineMisses: c.tiers.niw.deadlineMisses,
      escalated: actions.niwEscalated ?? 0,
      released: actions.niwReleased ?? 0,
      ...(releasedAgain > 0 ? { releasedAgain } : {}),
      ...(handoffsLost > 0 ? { handoffsLost } : {}),
    },
    invariants: invariantsSection(fleet, c, x.actors),
    timeseries: { binMinutes: 15, bins: x.bins },
    ...(x.planner ? { planner: plannerSummary(x.planner, x.startMs ?? 0, x.durationMs) } : {}),
    ...(x.warnings?.length ? { warnings: x.warnings } : {}),
  };
}

/** GPU-hours by tier: a pool's hours split by the tokens each tier had served on it. */
function gpuHoursByTier(fleet: SimFleet): Record<string, number> {
  const byTier: Record<string, number> = { "iw-fast": 0, "iw-normal": 0, niw: 0 };
  const perEndpoint = fleet.ledger.hours((k: LedgerKey) => tripleKey(k.model, k.region, k.pool));
  for (const [k, hours] of Object.entries(perEndpoint)) {
    const [model, region, pool] = k.split("|") as [string, string, string];
    const tiers: Tier[] = pool === "niw" ? ["niw"] : pool === "iw" ? ["iw-fast", "iw-normal"] : [...TIERS];
    const tokens = fleet.tokensByTier.get(pairKey(model, region)) ?? {};
    const sum = tiers.reduce((a, t) => a + (tokens[t] ?? 0), 0);
    for (const t of tiers) byTier[t]! += sum > 0 ? (hours * (tokens[t] ?? 0)) / sum : hours / tiers.length;
  }
  return byTier;
}

const OVERHEAD_STATES = new Set(["booting", "loading", "swapping"]);

function gpuHoursSection(
  L: GpuLedger,
  byTier: Record<string, number>,
  byGpu: Record<string, number>,
): SimReport["gpuHours"] {
  return {
    total: r4(L.total()),
    byState: sorted(
      L.hours(
        (k) => k.state,
        () => true,
      ),
    ),
    byTier: sorted(byTier),
    byModel: sorted(L.hours((k) => k.model)),
    byRegion: sorted(L.hours((k) => k.region)),
    byGpu: sorted(byGpu),
    scalingOverhead: r4(L.total((k) => OVERHEAD_STATES.has(k.state))),
    spotLent: r4(L.total((k) => k.state === "spot")),
    afterWindow: r4(L.total(undefined, true)),
    binnedPeak15m: r4(L.binnedPeakHours()),
  };
}

/** VM prices of the GPU-hours per GPU type (USD, unrounded). */
function costUsdOf(byGpu: Record<string, number>): number {
  return Object.entries(byGpu).reduce(
    (a, [g, h]) => a + (h / (GPUS[g]?.gpusPerVm ?? 8)) * (GPUS[g]?.vmPricePerHour ?? 0),
    0,
  );
}

/** Re-routes and router rejections, and every region agent's actions summed by kind. */
function scalingActions(
  fleet: SimFleet,
  router: RouterActor,
  agents: RegionAgentActor[],
): Record<string, number> {
  const actions: Record<string, number> = { rerouted: fleet.rerouted, routerRejected: router.rejected };
  for (const a of agents) for (const [k, v] of Object.entries(a.actions)) actions[k] = (actions[k] ?? 0) + v;
  return actions;
}

const TTFT_CDF_PERCENTILES = [1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98, 99, 99.5, 99.9];

/** Latency percentiles per tier, and the TTFT distribution per tier. */
function latencySection(c: MetricsCollector): Pick<SimReport, "latencyMs" | "ttftCdf"> {
  const latencyMs = {} as SimReport["latencyMs"];
  const ttftCdf = {} as SimReport["ttftCdf"];
  for (const t of TIERS) {
    const s = c.tiers[t];
    latencyMs[t] = { ttft: pct(s.ttft), tbt: pct(s.tbt), e2e: pct(s.e2e) };
    ttftCdf[t] = TTFT_CDF_PERCENTILES.map((p) => [p, r4(s.ttft.percentile(p))]);
  }
  return { latencyMs, ttftCdf };
}

function invariantsSection(
  fleet: SimFleet,
  c: MetricsCollector,
  actors: ReportInputs["actors"],
): SimReport["invariants"] {
  return {
    servedWhileNotServing: fleet.servedWhileNotServing,
    duplicateCompletions: c.duplicates,
    publishFailures: actors.reduce((a, s) => a + s.stats().publishFailures, 0),
    handlerErrors: actors.reduce((a, s) => a + s.stats().handlerErrors, 0),
    rejectedMessages: actors.reduce((a, s) => a + s.stats().rejected, 0),
  };
}

/** Seconds without trailing zeros: 1000 → "1 s", 60000 → "60 s", 1500 → "1.5 s". */
const seconds = (ms: number): string => `${r4(ms / 1000)} s`;

/** SLO attainment per tier, over all requests and over the feasible ones, with the targets the run used. */
export function sloSection(c: Pick<MetricsCollector, "tiers" | "slo">): SimReport["slo"] {
  const slo = {} as SimReport["slo"];
  for (const t of TIERS) {
    const s = c.tiers[t];
    const r = sloRates(s.slo);
    slo[t] = {
      attainment: r4(r.attainment ?? 1),
      completed: s.completed,
      target: t === "niw" ? "done by deadline" : `TTFT ≤ ${seconds(c.slo.ttftMs[t])}`,
      infeasible: s.slo.infeasible,
      infeasibleShare: r4(r.infeasibleShare ?? 0),
      attainmentFeasible: r4(r.attainmentFeasible ?? 1),
    };
  }
  return slo;
}

export interface ModelTierSlo {
  requests: number;
  attainment: number;
  attainmentFeasible: number;
}

/** SLO attainment per model and tier, models in name order (a tier without requests counts as met). */
export function sloByModelSection(c: Pick<MetricsCollector, "sloByModel">): SimReport["sloByModel"] {
  const out: NonNullable<SimReport["sloByModel"]> = {};
  for (const model of [...c.sloByModel.keys()].sort()) {
    const byTier = c.sloByModel.get(model)!;
    const row = {} as Record<Tier, ModelTierSlo>;
    for (const t of TIERS) {
      const r = sloRates(byTier[t]);
      row[t] = {
        requests: byTier[t].requests,
        attainment: r4(r.attainment ?? 1),
        attainmentFeasible: r4(r.attainmentFeasible ?? 1),
      };
    }
    out[model] = row;
  }
  return out;
}

export function beyondProfileSection(
  c: Pick<MetricsCollector, "beyondProfile">,
  perf: PerformanceModel,
): SimReport["beyondProfile"] {
  const byModel = sorted(Object.fromEntries(c.beyondProfile));
  const measuredPromptTokens: Record<string, number> = {};
  for (const m of Object.keys(byModel)) {
    const ranges = perf.gpusFor(m).map((g) => perf.measuredPromptTokens(m, g));
    if (ranges.length) measuredPromptTokens[m] = Math.min(...ranges);
  }
  return { total: Object.values(byModel).reduce((a, n) => a + n, 0), byModel, measuredPromptTokens };
}

function coldStarts(r: Pick<RouterActor, "held" | "heldWaitMs">): SimReport["coldStarts"] {
  const w = [...r.heldWaitMs].sort((a, b) => a - b);
  const at = (p: number) => (w.length ? w[Math.min(w.length - 1, Math.floor(p * w.length))]! : 0);
  return { held: r.held, routed: w.length, waitMs: { p50: at(0.5), p99: at(0.99), max: w.at(-1) ?? 0 } };
}

function plannerSummary(
  p: PlannerActor,
  startMs: number,
  durationMs: number,
): NonNullable<SimReport["planner"]> {
  const errors = forecastErrors(p.forecasts, startMs + durationMs);
  const forecastError: NonNullable<SimReport["planner"]>["forecastError"] = {};
  for (const k of [...errors.keys()].sort()) {
    const e = errors.get(k)!;
    forecastError[k] = {
      mape: e.mape === undefined ? null : r4(e.mape),
      smape: e.smape === undefined ? null : r4(e.smape),
      windows: e.windows,
    };
  }
  const statuses: Record<string, number> = {};
  for (const h of p.history) statuses[h.status] = (statuses[h.status] ?? 0) + 1;
  // Solve times are wall-clock: they go to run.json, not here, so report.json stays byte-identical.
  return {
    plans: p.history.length,
    statuses: sorted(statuses),
    forecastMape: sorted(Object.fromEntries(p.mape)),
    forecastError,
    replans: p.replans.map((r) => ({ atMinutes: Math.round((r.atMs - startMs) / 60_000), reason: r.reason })),
    notes: (p.history.at(-1)?.notes ?? []).slice(0, 20),
  };
}
