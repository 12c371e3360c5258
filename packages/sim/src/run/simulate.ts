import type { PlannerActor } from "@sageserve/planner";
import { MemoryBroker, VirtualClock } from "@sageserve/runtime";
import { builtinCapacityModel } from "../engine/capacity.js";
import type { SimFleet } from "../world/fleet.js";
import { buildActors, type ContextFor, reportedActors, type SimActors, startOrder } from "./actors.js";
import type { CapacityBoundReport } from "./bound.js";
import type { MetricsCollector } from "./collector.js";
import { buildReport, type SimReport, type TimeseriesBin } from "./report.js";
import { prepareRun, type RunSetup } from "./setup.js";
import type { SimOptions } from "./sim-options.js";
import { deployInitialFleet, readFirstWindow } from "./sizing.js";

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

const START_MS = Date.UTC(2025, 0, 6);
const BIN_MS = 15 * 60_000;

/**
 * Replay a workload through the real actors on a virtual clock: prepare the run, wire its actors to
 * an in-memory broker, deploy the starting fleet, replay until the workload ends and its requests
 * drain, then report. A seed gives a byte-identical report.
 */
export async function runSimulation(opts: SimOptions): Promise<SimResult> {
  const setup = await prepareRun(opts);
  const clock = new VirtualClock({ seed: opts.seed, startMs: START_MS });
  const ctx = connectTo(clock, opts.validate ?? true);
  const { prefetched, counts } = readFirstWindow(setup);
  const actors = buildActors(opts, setup, ctx, prefetched);
  for (const a of startOrder(actors)) await a.start();
  deployInitialFleet(opts, setup, counts, actors.fleet);
  const bins = sampleTimeseries(clock, actors);
  await actors.replayer.start();

  const { wallTimeMs, peakHeap } = await replay(opts, setup, clock, actors);
  actors.fleet.closeLedger();
  for (const a of [...reportedActors(actors), ...actors.observers]) await a.stop();

  const { replayer, planner, fleet, collector } = actors;
  const report = buildReport({
    scenario: setup.workload.name,
    policy: setup.policy,
    seed: opts.seed,
    durationMs: setup.workload.durationMs,
    endMs: clock.now() - START_MS,
    generated: replayer.generated,
    collector,
    fleet,
    agents: actors.agents,
    router: actors.router,
    bins,
    actors: reportedActors(actors),
    ...(planner ? { planner } : {}),
    startMs: START_MS,
    warnings: setup.warnings,
    perf: setup.perf,
    capacityBound: setup.bound?.result(builtinCapacityModel(1), setup.gpuTypes),
  });
  return {
    report,
    run: {
      wallTimeMs: Math.round(wallTimeMs),
      simulatedRequestsPerWallSecond: Math.round(replayer.generated / (wallTimeMs / 1000)),
      events: clock.executed,
      peakHeapMb: Math.round(peakHeap / 2 ** 20),
      ...(planner?.history.length ? { plannerSolveMs: solveTimes(planner) } : {}),
    },
    fleet,
    collector,
    generated: replayer.generated,
    warnings: setup.base.warnings ?? [],
  };
}

/**
 * The capacity bound (run/bound.ts) of the workload `opts` describes, without simulating it: the
 * workload is read through once, as a run would replay it. Undefined without the built-in capacity model.
 */
export async function workloadCapacityBound(opts: SimOptions): Promise<CapacityBoundReport | undefined> {
  const setup = await prepareRun(opts);
  if (!setup.bound) return undefined;
  for (let b = setup.workload.next(); b.length; b = setup.workload.next()) {}
  return setup.bound.result(builtinCapacityModel(1), setup.gpuTypes);
}

/** Every actor's connection to one in-memory broker on `clock` (validating messages unless told not to). */
function connectTo(clock: VirtualClock, validate: boolean): ContextFor {
  const broker = new MemoryBroker(clock, { codec: "none", trustAll: !validate });
  return (name) => ({ bus: broker.connect(name), clock, validateOutgoing: validate });
}

/** Paid VMs, finished requests and queued NIW jobs now and every BIN_MS (the report's time series). */
function sampleTimeseries(clock: VirtualClock, { fleet, collector, agents }: SimActors): TimeseriesBin[] {
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
  return bins;
}

/**
 * Advance the clock in 15-minute steps until the workload is replayed, then until its requests have
 * finished (or `maxDrainMs` has passed); the wall time it took and the highest heap seen.
 */
async function replay(
  opts: SimOptions,
  { workload }: RunSetup,
  clock: VirtualClock,
  { replayer, collector, router }: SimActors,
): Promise<{ wallTimeMs: number; peakHeap: number }> {
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
  return { wallTimeMs: performance.now() - wall0, peakHeap };
}

/** Wall-clock ILP solve times of the planner's plans (run.json, never the report). */
function solveTimes(planner: PlannerActor): NonNullable<RunStats["plannerSolveMs"]> {
  return {
    mean: Math.round(planner.history.reduce((a, h) => a + h.solveMs, 0) / planner.history.length),
    max: Math.round(Math.max(...planner.history.map((h) => h.solveMs))),
    plans: planner.history.length,
  };
}
