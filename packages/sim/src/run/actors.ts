/**
 * The actors of a run and their options: the metrics collector, the router, one region agent per
 * region, the simulated fleet, the trace replayer, the planner (lt-* policies) and any observers.
 * They are built, started and stopped in a fixed order — bus connections, subscriptions and timers
 * are made in that order, and a seeded run depends on it.
 */
import { GPUS } from "@sageserve/engine";
import { PlannerActor, type SolveOptions } from "@sageserve/planner";
import type { PlanStrategy } from "@sageserve/protocol";
import { RegionAgentActor } from "@sageserve/region-agent";
import { RouterActor } from "@sageserve/router";
import type { Actor, ActorContext } from "@sageserve/runtime";
import { builtinCapacityTable, iwShareOf } from "../engine/capacity.js";
import type { SimRequest } from "../workload/types.js";
import { SimFleet } from "../world/fleet.js";
import { type FleetOptions, supplyLimit } from "../world/fleet-options.js";
import { DEFAULT_SLO, MetricsCollector } from "./collector.js";
import { TraceReplayer } from "./replayer.js";
import type { RunSetup } from "./setup.js";
import type { SimOptions } from "./sim-options.js";
import { plannerCapacity } from "./sizing.js";

type RouterOptions = ConstructorParameters<typeof RouterActor>[1];
type RegionAgentOptions = ConstructorParameters<typeof RegionAgentActor>[1];
type PlannerOptions = ConstructorParameters<typeof PlannerActor>[1];

/** An actor's connection to the run's broker and clock. */
export type ContextFor = (name: string) => ActorContext;

export interface SimActors {
  collector: MetricsCollector;
  router: RouterActor;
  agents: RegionAgentActor[];
  fleet: SimFleet;
  replayer: TraceReplayer;
  planner: PlannerActor | undefined;
  /** `planner`, when there is one. */
  planners: PlannerActor[];
  observers: Actor[];
}

/**
 * The planner's ILP in simulation stops on work, not on the wall clock, so a seed gives the same plans (and
 * the same report bytes) on a fast and a slow machine. The built-in scenarios' plans (4 models × 3 regions × 2
 * GPU types, 15 integers) take 0 branch-and-bound nodes and 24–33 simplex iterations each (`day`, lt-i, seed
 * 2); the budget is orders of magnitude above that and still bounds a pathological plan.
 */
const PLANNER_SOLVE: SolveOptions = { deterministic: true, maxNodes: 10_000, maxIterations: 1_000_000 };

/** Build every actor of the run (not started), each on its own connection. */
export function buildActors(
  opts: SimOptions,
  setup: RunSetup,
  ctx: ContextFor,
  prefetched: SimRequest[][],
): SimActors {
  const { workload, perf, planStrategy } = setup;
  // SLO feasibility is judged on the GPU type that served each request (the fleet is built below).
  const collector = new MetricsCollector(ctx("metrics"), opts.slo ?? DEFAULT_SLO, opts.trackIds ?? false, {
    timing: perf,
    gpuOf: (instanceId) => fleet.gpuOf(instanceId),
  });
  const router = new RouterActor(ctx("router"), routerOptions(setup));
  const agents = workload.regions.map(
    (region) => new RegionAgentActor(ctx(`agent-${region}`), regionAgentOptions(opts, setup, region)),
  );
  const fleet = new SimFleet(ctx("fleet"), fleetOptions(opts, setup));
  const replayer = new TraceReplayer(ctx("replayer"), workload, prefetched);
  const planner = planStrategy
    ? new PlannerActor(ctx("planner"), plannerOptions(opts, setup, planStrategy, prefetched))
    : undefined;
  const observers = (opts.observers ?? []).map((make, i) => make(ctx(`observer-${i}`)));
  const planners = planner ? [planner] : [];
  return { collector, router, agents, fleet, replayer, planner, planners, observers };
}

/** The order the actors start in (the replayer starts on its own, once the fleet is deployed). */
export function startOrder(a: SimActors): Actor[] {
  return [...a.observers, a.collector, a.router, ...a.planners, ...a.agents, a.fleet];
}

/** The actors whose error counters the report sums, in the order they stop in (the observers stop last). */
export function reportedActors(a: SimActors): Actor[] {
  return [a.replayer, a.fleet, ...a.agents, ...a.planners, a.router, a.collector];
}

function routerOptions({ workload, siloed, scalesToZero }: RunSetup): RouterOptions {
  return {
    regions: [...workload.regions],
    models: [...workload.models],
    config: { niwMode: siloed ? "pool" : "queue" },
    // An endpoint that may scale to zero holds requests through a cold start (a boot takes ~155 s).
    ...(scalesToZero ? { maxPendingMs: 300_000 } : {}),
  };
}

function regionAgentOptions(opts: SimOptions, setup: RunSetup, region: string): RegionAgentOptions {
  const { workload, siloed, gpuTypes, planStrategy, capacityModel } = setup;
  return {
    region,
    models: [...workload.models],
    mode: siloed ? "siloed" : "unified",
    gpuTypes,
    ...(siloed ? { poolReactive: { niw: { minInstances: 1 } } } : {}),
    ...(opts.regionAgent?.reactive ? { reactive: opts.regionAgent.reactive } : {}),
    ...(opts.regionAgent?.niw ? { niw: opts.regionAgent.niw } : {}),
    ...(opts.regionAgent?.endpoints ? { endpoints: opts.regionAgent.endpoints } : {}),
    ...(opts.regionAgent?.scalingIntervalMs ? { scalingIntervalMs: opts.regionAgent.scalingIntervalMs } : {}),
    ...(opts.regionAgent?.planExecution ? { planExecution: opts.regionAgent.planExecution } : {}),
    ...(opts.regionAgent?.sloCalibration ? { sloCalibration: opts.regionAgent.sloCalibration } : {}),
    ...(planStrategy ? { planStrategy, promptTiming: setup.perf } : {}),
    ...(capacityModel ? { capacity: capacityModel } : {}),
    ...(opts.slo ? { sloTtftMs: opts.slo.ttftMs["iw-fast"] } : {}),
    // Nobody reads region summaries in a replay; one a minute keeps them exercised, cheaply.
    statusIntervalMs: 60_000,
  };
}

function fleetOptions(opts: SimOptions, { perf, workload, capacityModel }: RunSetup): FleetOptions {
  return {
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
  };
}

function plannerOptions(
  opts: SimOptions,
  { workload, perf, gpuTypes, capacityModel }: RunSetup,
  strategy: PlanStrategy,
  prefetched: SimRequest[][],
): PlannerOptions {
  // A sensitivity study's bias (SimOptions) or the config file's.
  const bias = opts.forecastBias ?? opts.planner?.forecastBias;
  return {
    models: [...workload.models],
    regions: [...workload.regions],
    capacity: plannerCapacity(prefetched.flat(), perf, gpuTypes, (opts.slo ?? DEFAULT_SLO).ttftMs["iw-fast"]),
    gpuTypes: gpuTypes.map((g) => ({
      id: g,
      // The plan minimises dollars (VM prices) unless told to minimise GPU-hours (every GPU alike).
      pricePerHour:
        opts.planner?.objective === "gpu-hours" ? (GPUS[g]?.gpusPerVm ?? 8) : (GPUS[g]?.vmPricePerHour ?? 0),
      gpusPerVm: GPUS[g]?.gpusPerVm ?? 8,
    })),
    supply: Object.fromEntries(
      workload.regions.map((r) => [
        r,
        Object.fromEntries(gpuTypes.map((g) => [g, supplyLimit(opts.supply, r, g)])),
      ]),
    ),
    // Interactive work may be planned into any other region; the routers follow the plan's fractions.
    routes: Object.fromEntries(workload.regions.map((r) => [r, workload.regions.filter((q) => q !== r)])),
    strategy,
    ...(capacityModel ? { capacityModel } : {}),
    ...(opts.planner?.intervalMinutes ? { intervalMinutes: opts.planner.intervalMinutes } : {}),
    ...(opts.planner?.leadMinutes !== undefined ? { leadMinutes: opts.planner.leadMinutes } : {}),
    ...(opts.planner?.replanOnForecastError !== undefined
      ? { replanOnForecastError: opts.planner.replanOnForecastError }
      : {}),
    solve: PLANNER_SOLVE,
    ...(opts.planner?.postProcess ? { postProcess: opts.planner.postProcess } : {}),
    ...(opts.planner?.forecastStat ? { forecastStat: opts.planner.forecastStat } : {}),
    ...(opts.planner?.niwValleyFill !== undefined ? { niwValleyFill: opts.planner.niwValleyFill } : {}),
    ...(bias !== undefined ? { forecastBias: bias } : {}),
    ...(opts.planner?.schedule ? { schedule: opts.planner.schedule } : {}),
    ...plannerConfig(opts),
  };
}

/**
 * The planner's snapshot settings the run overrides (headroom, minimum instances), when it overrides
 * any: unset fields take the snapshot's defaults (headroom: 0 with the capacity model).
 */
function plannerConfig(opts: SimOptions): Pick<PlannerOptions, "config"> {
  const reactiveMin = opts.regionAgent?.reactive?.minInstances;
  const endpoints = opts.regionAgent?.endpoints;
  if (opts.planner?.headroom === undefined && reactiveMin === undefined && !endpoints) return {};
  return {
    config: {
      ...(opts.planner?.headroom !== undefined ? { headroom: opts.planner.headroom } : {}),
      ...(reactiveMin !== undefined ? { minInstances: reactiveMin } : {}),
      ...(endpoints
        ? {
            minInstancesByModel: Object.fromEntries(
              Object.entries(endpoints).flatMap(([m, e]) =>
                e.minInstances !== undefined ? [[m, e.minInstances]] : [],
              ),
            ),
          }
        : {}),
    },
  };
}
