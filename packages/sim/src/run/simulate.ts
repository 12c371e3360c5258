import {
  blendedTokensPerSecond,
  builtinPerformanceModel,
  DEFAULT_BLOCK_SIZE,
  GPUS,
  type PerformanceModel,
  type SchedulingPolicy,
} from "@sageserve/engine";
import { PlannerActor, preloadSolvers, type SolveOptions } from "@sageserve/planner";
import { type PlanStrategy, SageError } from "@sageserve/protocol";
import { RegionAgentActor } from "@sageserve/region-agent";
import { RouterActor } from "@sageserve/router";
import { type Actor, type ActorContext, MemoryBroker, VirtualClock } from "@sageserve/runtime";
import { builtinCapacityModel, builtinCapacityTable, iwShareOf } from "../engine/capacity.js";
import { resolveWorkload, type WorkloadOptions, withBurst } from "../workload/index.js";
import type { SimRequest, Workload } from "../workload/types.js";
import { type FleetTimings, SimFleet, type SlowRequest } from "../world/fleet.js";
import { DEFAULT_SLO, MetricsCollector, type SloTargets } from "./collector.js";
import type { SimConfig } from "./config.js";
import { TraceReplayer } from "./replayer.js";
import { buildReport, type SimReport, type TimeseriesBin } from "./report.js";

export const POLICIES = ["unified-reactive", "siloed-reactive", "lt-i", "lt-u", "lt-ua"] as const;
export type PolicyName = (typeof POLICIES)[number];

export interface SimOptions {
  /** Built-in scenario name or trace file path. */
  scenario: string;
  /** A workload object to replay instead of `scenario` (programmatic use, tests). */
  workload?: Workload;
  policy: string;
  seed: number;
  /** Rate multiplier: of a scenario's or rate file's rate; for traces see `transforms.scaleMode`. */
  scale?: number;
  /** Window, renaming, trace scale mode and sort window (docs/simulator.md, "Transforms"). */
  transforms?: WorkloadTransforms;
  /** Told what loading the workload found worth a warning (e.g. requests that can never fit). */
  onWarning?: (message: string) => void;
  gpuTypes?: string[];
  timings?: Partial<FleetTimings>;
  slo?: SloTargets;
  /** Give up waiting for in-flight requests this long after the trace ends (default 30 h: NIW deadlines). */
  maxDrainMs?: number;
  /** Keep every finished request id (conservation tests). */
  trackIds?: boolean;
  perf?: PerformanceModel;
  /**
   * Validate every message against its schema (default true). false trusts the typed actor code
   * in-process and skips validation: faster for long runs (docs/benchmarks.md gives both).
   */
  validate?: boolean;
  /** Planner settings for the lt-* policies. */
  planner?: SimConfig["planner"];
  /** Region-agent settings (thresholds, NIW release, scaling interval). */
  regionAgent?: SimConfig["regionAgent"];
  /** Most of an instance's KV cache batch requests may hold (default 1: no limit). */
  niwKvShare?: number;
  /**
   * Tokens per engine step on every simulated instance (vLLM's max_num_batched_tokens); default: per
   * (model, GPU), the most tokens whose prefill takes ≤ `stepBudgetMs`.
   */
  maxPrefillTokens?: number;
  /**
   * Report each instance's interactive arrivals against its SLO capacity (the engine sweep's knee,
   * data/engine-capacity.json) so routing and scaling see "full" where TTFT stops holding. Off by default:
   * the baselines scale on utilisation, as the paper's; SageServe's best configuration turns it on. The
   * step budget must be the default for the table to apply.
   */
  sloCapacity?: boolean;
  /** Called for every request that missed its tier's TTFT target, with where its time went. */
  traceSlow?: (r: SlowRequest) => void;
  /** Longest engine step the default token budget allows (ms, default 250). */
  stepBudgetMs?: number;
  /** KV block size of every simulated instance (vLLM's block_size, default 16). */
  blockSize?: number;
  /** Engine queue order on every simulated instance: "priority" (default) or "fcfs". */
  scheduling?: SchedulingPolicy;
  /** Sensitivity studies: most VMs per region and GPU type (default 200 each). */
  supply?: Record<string, Record<string, number>>;
  /** Sensitivity studies: a region loses its GPUs for a while (ms since the start). */
  outages?: { region: string; startMs: number; endMs: number }[];
  /** Sensitivity studies: one region's arrivals multiplied by `factor` for a while. */
  burst?: { region: string; startMs: number; durationMs: number; factor: number };
  /** Sensitivity studies: every planner forecast multiplied by this (lt-* policies). */
  forecastBias?: number;
  /** Extra actors to run alongside (observers in tests, custom policies). */
  observers?: ((ctx: ActorContext) => Actor)[];
  onProgress?: (p: { simulatedMs: number; durationMs: number; generated: number; finished: number }) => void;
}

export interface RunStats {
  wallTimeMs: number;
  simulatedRequestsPerWallSecond: number;
  events: number;
  /** Highest V8 heap in use seen during the run (MB; sampled every 15 simulated minutes). */
  peakHeapMb: number;
  /** Planner policies: wall-clock ILP solve times. */
  plannerSolveMs?: { mean: number; max: number; plans: number };
}

export interface SimResult {
  report: SimReport;
  run: RunStats;
  fleet: SimFleet;
  collector: MetricsCollector;
  generated: number;
  /** What loading the workload warned of (also passed to `onWarning`). */
  warnings: readonly string[];
}

export type WorkloadTransforms = Pick<
  WorkloadOptions,
  "scaleMode" | "startMs" | "durationMs" | "map" | "sortWindowMs"
>;

const START_MS = Date.UTC(2025, 0, 6);
const BIN_MS = 15 * 60_000;

export function checkPolicy(policy: string): PolicyName {
  if ((POLICIES as readonly string[]).includes(policy)) return policy as PolicyName;
  throw new SageError("CONFIG", `unknown policy '${policy}' (known: ${POLICIES.join(", ")})`);
}

/**
 * Per-instance capacity for the planner, in the demand's unit (prompt + output tokens/s): the
 * instance's prefill and decode throughputs combined in the workload's token mix.
 */
function plannerCapacity(
  first: SimRequest[],
  perf: PerformanceModel,
  gpuTypes: string[],
  ttftTargetMs: number,
): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  const mix = new Map<string, { in: number; out: number; prompts: number[] }>();
  for (const r of first) {
    const m = mix.get(r.model) ?? { in: 0, out: 0, prompts: [] };
    m.in += r.inputTokens;
    m.out += r.outputTokens;
    if (r.tier === "iw-fast") m.prompts.push(r.inputTokens);
    mix.set(r.model, m);
  }
  for (const [model, m] of mix) {
    const outShare = m.out / Math.max(1, m.in + m.out);
    const caps: Record<string, number> = {};
    // Only GPU types that can meet the IW-fast TTFT target on a long (p95) prompt get capacity.
    m.prompts.sort((a, b) => a - b);
    const p95 = m.prompts[Math.floor(0.95 * (m.prompts.length - 1))] ?? 2_048;
    const eligible = perf.latencyEligible(model, gpuTypes, p95, ttftTargetMs);
    for (const g of eligible) {
      const c = perf.capacity(model, g);
      caps[g] = Math.round(blendedTokensPerSecond(c, outShare));
    }
    out[model] = caps;
  }
  return out;
}

/** Size the initial deployment from the first minutes of the workload, with 20 % headroom. */
function initialCounts(
  first: SimRequest[],
  windowMs: number,
  perf: PerformanceModel,
  gpu: (model: string) => string,
  siloed: boolean,
): Map<string, number> {
  const tokens = new Map<string, { in: number; out: number }>();
  for (const r of first) {
    const pool = siloed ? (r.tier === "niw" ? "niw" : "iw") : "";
    const k = `${r.model}|${r.region}|${pool}`;
    const t = tokens.get(k) ?? { in: 0, out: 0 };
    t.in += r.inputTokens;
    t.out += r.outputTokens;
    tokens.set(k, t);
  }
  const out = new Map<string, number>();
  for (const [k, t] of tokens) {
    const model = k.split("|")[0]!;
    const cap = perf.capacity(model, gpu(model));
    const seconds = Math.max(1, windowMs / 1000);
    const busy = t.in / seconds / cap.prefillTokensPerSecond + t.out / seconds / cap.decodeTokensPerSecond;
    out.set(k, Math.ceil(busy * 1.2));
  }
  return out;
}

/**
 * The planner's ILP in simulation stops on work, not on the wall clock, so a seed gives the same plans (and
 * the same report bytes) on a fast and a slow machine. The built-in scenarios' plans (4 models × 3 regions × 2
 * GPU types, 15 integers) take 0 branch-and-bound nodes and 24–33 simplex iterations each (`day`, lt-i, seed
 * 2); the budget is orders of magnitude above that and still bounds a pathological plan.
 */
const PLANNER_SOLVE: SolveOptions = { deterministic: true, maxNodes: 10_000, maxIterations: 1_000_000 };

export async function runSimulation(opts: SimOptions): Promise<SimResult> {
  const policy = checkPolicy(opts.policy);
  const siloed = policy === "siloed-reactive";
  const planStrategy = policy.startsWith("lt-") ? (policy as PlanStrategy) : undefined;
  if (planStrategy) await preloadSolvers();
  const perf = opts.perf ?? builtinPerformanceModel();
  const gpuTypes = opts.gpuTypes ?? ["h100", "a100"];
  const blockSize = opts.blockSize ?? DEFAULT_BLOCK_SIZE;
  const base: Workload =
    opts.workload ??
    resolveWorkload(opts.scenario, {
      seed: opts.seed,
      ...(opts.scale !== undefined ? { scale: opts.scale } : {}),
      ...opts.transforms,
      // A request fits where its prompt and output fit in the KV blocks of the largest instance.
      kvLimitTokens: (model) =>
        Math.max(
          0,
          ...gpuTypes
            .filter((g) => perf.has(model, g))
            .map((g) => Math.floor(perf.kvTokenCapacity(model, g) / blockSize) * blockSize),
        ) || Number.POSITIVE_INFINITY,
    });
  for (const w of base.warnings ?? []) opts.onWarning?.(w);
  const workload: Workload = opts.burst ? withBurst(base, opts.burst) : base;
  for (const m of workload.models)
    if (!gpuTypes.some((g) => perf.has(m, g)))
      throw new SageError("CONFIG", `no GPU type in [${gpuTypes}] has a profile for ${m}`);
  const gpuFor = (model: string): string => gpuTypes.find((g) => perf.has(model, g))!;
  // The one capacity model (SLO knees of the engine sweep) — only for the built-in performance profiles
  // and step budget it was measured with.
  const capacityModel =
    opts.perf || opts.maxPrefillTokens || opts.stepBudgetMs
      ? undefined
      : builtinCapacityModel(opts.planner?.targetUtilization, {
          pooling: opts.planner?.pooledCapacity ?? true,
        });
  const warnings: string[] = [];
  const scalesToZero =
    opts.regionAgent?.reactive?.minInstances === 0 ||
    Object.values(opts.regionAgent?.endpoints ?? {}).some((e) => e.minInstances === 0);
  if (planStrategy) {
    const every = opts.planner?.intervalMinutes ?? 60;
    if (workload.durationMs < every * 60_000)
      warnings.push(
        `the workload lasts ${Math.round(workload.durationMs / 60_000)} min, less than the plan interval (${every} min): ${policy} gets one plan at start-up and otherwise acts as its reactive rules (set planner.intervalMinutes)`,
      );
  }

  const clock = new VirtualClock({ seed: opts.seed, startMs: START_MS });
  const validate = opts.validate ?? true;
  const broker = new MemoryBroker(clock, { codec: "none", trustAll: !validate });
  const ctx = (name: string) => ({ bus: broker.connect(name), clock, validateOutgoing: validate });

  // Look ahead ten minutes to size the starting fleet (operators start from last week's footprint).
  const prefetched: SimRequest[][] = [];
  const firstWindowMs = Math.min(workload.durationMs, 10 * 60_000);
  for (let b = workload.next(); b.length; b = workload.next()) {
    prefetched.push(b);
    if (b.at(-1)!.arrivalMs >= firstWindowMs) break;
  }
  const counts = initialCounts(
    prefetched.flat().filter((r) => r.arrivalMs < firstWindowMs),
    firstWindowMs,
    perf,
    gpuFor,
    siloed,
  );

  // SLO feasibility is judged on the GPU type that served each request (the fleet is built below).
  const collector = new MetricsCollector(ctx("metrics"), opts.slo ?? DEFAULT_SLO, opts.trackIds ?? false, {
    timing: perf,
    gpuOf: (instanceId) => fleet.gpuOf(instanceId),
  });
  const router = new RouterActor(ctx("router"), {
    regions: [...workload.regions],
    models: [...workload.models],
    config: { niwMode: siloed ? "pool" : "queue" },
    // An endpoint that may scale to zero holds requests through a cold start (a boot takes ~155 s).
    ...(scalesToZero ? { maxPendingMs: 300_000 } : {}),
  });
  const agents = workload.regions.map(
    (region) =>
      new RegionAgentActor(ctx(`agent-${region}`), {
        region,
        models: [...workload.models],
        mode: siloed ? "siloed" : "unified",
        gpuTypes,
        ...(siloed ? { poolReactive: { niw: { minInstances: 1 } } } : {}),
        ...(opts.regionAgent?.reactive ? { reactive: opts.regionAgent.reactive } : {}),
        ...(opts.regionAgent?.niw ? { niw: opts.regionAgent.niw } : {}),
        ...(opts.regionAgent?.endpoints ? { endpoints: opts.regionAgent.endpoints } : {}),
        ...(opts.regionAgent?.scalingIntervalMs
          ? { scalingIntervalMs: opts.regionAgent.scalingIntervalMs }
          : {}),
        ...(planStrategy ? { planStrategy } : {}),
        ...(capacityModel ? { capacity: capacityModel } : {}),
        ...(opts.slo ? { sloTtftMs: opts.slo.ttftMs["iw-fast"] } : {}),
        // Nobody reads region summaries in a replay; one a minute keeps them exercised, cheaply.
        statusIntervalMs: 60_000,
      }),
  );
  const fleet = new SimFleet(ctx("fleet"), {
    perf,
    regions: [...workload.regions],
    horizonMs: workload.durationMs,
    ...(opts.supply ? { supply: opts.supply } : {}),
    ...(opts.maxPrefillTokens ? { maxPrefillTokens: opts.maxPrefillTokens } : {}),
    ...(opts.niwKvShare !== undefined ? { niwKvShare: opts.niwKvShare } : {}),
    ...(opts.stepBudgetMs ? { stepBudgetMs: opts.stepBudgetMs } : {}),
    ...(opts.sloCapacity && capacityModel
      ? {
          iwCapacityRps: (m: string, g: string) => {
            const c = capacityModel.capacity(m, g);
            return c ? c.rps * iwShareOf(builtinCapacityTable()) : undefined;
          },
        }
      : {}),
    ...(opts.traceSlow
      ? { traceSlow: { ttftMs: (opts.slo ?? DEFAULT_SLO).ttftMs, write: opts.traceSlow } }
      : {}),
    ...(opts.blockSize ? { blockSize: opts.blockSize } : {}),
    ...(opts.scheduling ? { scheduling: opts.scheduling } : {}),
    ...(opts.outages ? { outages: opts.outages } : {}),
    ...(opts.timings ? { timings: opts.timings } : {}),
  });
  const replayer = new TraceReplayer(ctx("replayer"), workload, prefetched);

  const planner = planStrategy
    ? new PlannerActor(ctx("planner"), {
        models: [...workload.models],
        regions: [...workload.regions],
        capacity: plannerCapacity(
          prefetched.flat(),
          perf,
          gpuTypes,
          (opts.slo ?? DEFAULT_SLO).ttftMs["iw-fast"],
        ),
        gpuTypes: gpuTypes.map((g) => ({
          id: g,
          // The plan minimises dollars (VM prices) unless told to minimise GPU-hours (every GPU alike).
          pricePerHour:
            opts.planner?.objective === "gpu-hours"
              ? (GPUS[g]?.gpusPerVm ?? 8)
              : (GPUS[g]?.vmPricePerHour ?? 0),
          gpusPerVm: GPUS[g]?.gpusPerVm ?? 8,
        })),
        supply: Object.fromEntries(
          workload.regions.map((r) => [
            r,
            Object.fromEntries(gpuTypes.map((g) => [g, opts.supply?.[r]?.[g] ?? 200])),
          ]),
        ),
        // Interactive work may be planned into any other region; the routers follow the plan's fractions.
        routes: Object.fromEntries(workload.regions.map((r) => [r, workload.regions.filter((q) => q !== r)])),
        strategy: planStrategy,
        ...(capacityModel ? { capacityModel } : {}),
        ...(opts.planner?.intervalMinutes ? { intervalMinutes: opts.planner.intervalMinutes } : {}),
        ...(opts.planner?.leadMinutes !== undefined ? { leadMinutes: opts.planner.leadMinutes } : {}),
        ...(opts.planner?.replanOnForecastError !== undefined
          ? { replanOnForecastError: opts.planner.replanOnForecastError }
          : {}),
        solve: PLANNER_SOLVE,
        ...(opts.planner?.postProcess ? { postProcess: opts.planner.postProcess } : {}),
        ...(opts.planner?.forecastStat ? { forecastStat: opts.planner.forecastStat } : {}),
        ...(opts.forecastBias !== undefined ? { forecastBias: opts.forecastBias } : {}),
        ...(opts.planner?.schedule ? { schedule: opts.planner.schedule } : {}),
        ...(opts.planner?.headroom !== undefined ||
        opts.regionAgent?.reactive?.minInstances !== undefined ||
        opts.regionAgent?.endpoints
          ? {
              // Unset fields take the snapshot's defaults (headroom: 0 with the capacity model).
              config: {
                ...(opts.planner?.headroom !== undefined ? { headroom: opts.planner.headroom } : {}),
                ...(opts.regionAgent?.reactive?.minInstances !== undefined
                  ? { minInstances: opts.regionAgent.reactive.minInstances }
                  : {}),
                ...(opts.regionAgent?.endpoints
                  ? {
                      minInstancesByModel: Object.fromEntries(
                        Object.entries(opts.regionAgent.endpoints).flatMap(([m, e]) =>
                          e.minInstances !== undefined ? [[m, e.minInstances]] : [],
                        ),
                      ),
                    }
                  : {}),
              },
            }
          : {}),
      })
    : undefined;
  const observers = (opts.observers ?? []).map((make, i) => make(ctx(`observer-${i}`)));
  const planners = planner ? [planner] : [];
  for (const a of [...observers, collector, router, ...planners, ...agents, fleet]) await a.start();
  for (const model of workload.models) {
    for (const region of workload.regions) {
      for (const pool of siloed ? ["iw", "niw"] : [undefined]) {
        const min =
          pool === "niw"
            ? 1
            : (opts.regionAgent?.endpoints?.[model]?.minInstances ??
              opts.regionAgent?.reactive?.minInstances ??
              2);
        const n = Math.max(min, counts.get(`${model}|${region}|${pool ?? ""}`) ?? 0);
        for (let i = 0; i < n; i++) fleet.deploy(region, gpuFor(model), model, pool);
      }
    }
  }

  const bins: TimeseriesBin[] = [];
  const sample = (): void => {
    const instances: Record<string, number> = {};
    for (const [k, n] of [...fleet.paidVmCounts()].sort()) instances[k] = n;
    bins.push({
      tMinutes: Math.round((clock.now() - START_MS) / 60_000),
      instances,
      finished: collector.finished,
      niwQueued: agents.reduce((a, g) => a + g.queueDepth(), 0),
    });
  };
  sample();
  clock.every(BIN_MS, sample);
  await replayer.start();

  const wall0 = performance.now();
  const step = 15 * 60_000;
  let peakHeap = process.memoryUsage().heapUsed;
  const progress = () => {
    peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
    opts.onProgress?.({
      simulatedMs: clock.now() - START_MS,
      durationMs: workload.durationMs,
      generated: replayer.generated,
      finished: collector.finished,
    });
  };
  while (!replayer.exhausted || clock.now() - START_MS < workload.durationMs) {
    await clock.advance(step);
    progress();
  }
  const drainLimit = START_MS + workload.durationMs + (opts.maxDrainMs ?? 30 * 3600_000);
  while (collector.finished + router.pendingCount < replayer.generated && clock.now() < drainLimit) {
    await clock.advance(step);
    progress();
  }
  const wallTimeMs = performance.now() - wall0;
  fleet.closeLedger();
  for (const a of [replayer, fleet, ...agents, ...planners, router, collector, ...observers]) await a.stop();

  const report = buildReport({
    scenario: workload.name,
    policy,
    seed: opts.seed,
    durationMs: workload.durationMs,
    endMs: clock.now() - START_MS,
    generated: replayer.generated,
    collector,
    fleet,
    agents,
    router,
    bins,
    actors: [replayer, fleet, ...agents, ...planners, router, collector],
    ...(planner ? { planner } : {}),
    startMs: START_MS,
    warnings,
    perf,
  });
  return {
    report,
    run: {
      wallTimeMs: Math.round(wallTimeMs),
      simulatedRequestsPerWallSecond: Math.round(replayer.generated / (wallTimeMs / 1000)),
      events: clock.executed,
      peakHeapMb: Math.round(peakHeap / 2 ** 20),
      ...(planner && planner.history.length
        ? {
            plannerSolveMs: {
              mean: Math.round(planner.history.reduce((a, h) => a + h.solveMs, 0) / planner.history.length),
              max: Math.round(Math.max(...planner.history.map((h) => h.solveMs))),
              plans: planner.history.length,
            },
          }
        : {}),
    },
    fleet,
    collector,
    generated: replayer.generated,
    warnings: base.warnings ?? [],
  };
}
