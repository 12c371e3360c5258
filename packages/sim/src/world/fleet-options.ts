/**
 * The simulated fleet's settings: timings of the VM lifecycle, engine limits of every instance, and
 * the sensitivity-study knobs (supply, outages). Apart from `SimFleet` so the actor reads as event
 * flow; `resolveFleetOptions` applies every default once, at construction.
 */
import { DEFAULT_MAX_NUM_SEQS, type PerformanceModel, type SchedulingPolicy } from "@sageserve/engine";

export interface FleetTimings {
  /** Boot a new VM and load its model (reference: 155 s). */
  spinUpMs: number;
  /** Bring a spot VM back into service with its model still loaded (reference: 65 s). */
  reclaimMs: number;
  /** Load another model onto an existing VM — warm migration (reference: 150 s). */
  swapMs: number;
}

/** Longest engine step (ms) the default token budget allows: a quarter of the IW-fast TTFT target. */
export const DEFAULT_STEP_BUDGET_MS = 250;

/** Sequences one instance runs at once (vLLM's max_num_seqs; reported as LoadReport.maxRunning). */
export const DEFAULT_MAX_BATCH = DEFAULT_MAX_NUM_SEQS;

/** Keep-alive interval of an idle instance's load reports (routers and agents go stale after 30 s). */
export const IDLE_REPORT_MS = 20_000;

export const DEFAULT_TIMINGS: FleetTimings = { spinUpMs: 155_000, reclaimMs: 65_000, swapMs: 150_000 };

/** Most VMs of one GPU type a region can have when `supply` does not say. */
export const DEFAULT_VM_SUPPLY = 200;

/** A request that missed its TTFT target, and where its time went (ms). */
export interface SlowRequest {
  id: string;
  tier: string;
  model: string;
  region: string;
  gpu: string;
  instanceId: string;
  inputTokens: number;
  outputTokens: number;
  arrivalMs: number;
  /** Arrival → the instance received it: the router's hold, re-routes and the hop. */
  routerMs: number;
  /** Received → admitted to the engine (first prefill chunk scheduled): the instance's queue. */
  queueMs: number;
  /** Admitted → first token: prefill steps (shared with other requests' chunks and decodes), recompute. */
  prefillMs: number;
  ttftMs: number;
  preemptions: number;
  /** This prompt's prefill alone on an idle instance of this (model, GPU). */
  idlePrefillMs: number;
}

/** A region outage (ms since the start of the run). */
export interface Outage {
  region: string;
  startMs: number;
  endMs: number;
}

export interface FleetOptions {
  perf: PerformanceModel;
  regions: string[];
  /** Most VMs of each GPU type a region can have (default 200). */
  supply?: Record<string, Record<string, number>>;
  timings?: Partial<FleetTimings>;
  loadReportMs?: number;
  /** GPU-hours are compared over [start, start + horizonMs]; later time is reported apart. */
  horizonMs: number;
  /** Sequences per instance (default DEFAULT_MAX_BATCH). */
  maxBatch?: number;
  /** Most of an instance's KV cache batch (NIW) requests may hold (default 1: no limit). */
  niwKvShare?: number;
  /** Tokens per engine step (vLLM's max_num_batched_tokens); default: from `stepBudgetMs`. */
  maxPrefillTokens?: number;
  /**
   * Without `maxPrefillTokens`, each instance's step budget is the most tokens whose prefill takes at
   * most this long on its (model, GPU) (`PerformanceModel.stepTokenBudget`; default 250 ms).
   */
  stepBudgetMs?: number;
  /**
   * Requests whose first token came later than their tier's TTFT target, one record each, with where
   * the time went (`sageserve sim --trace-slow`).
   */
  traceSlow?: { ttftMs: Partial<Record<string, number>>; write(r: SlowRequest): void };
  /**
   * Interactive requests/s one instance of (model, GPU) serves within its TTFT SLOs (SloCapacity): sent
   * in load reports with the instance's smoothed IW arrival rate. Absent = not reported.
   */
  iwCapacityRps?: (model: string, gpu: string) => number | undefined;
  /** Tokens per KV block (vLLM's block_size); default 16. */
  blockSize?: number;
  /** Engine queue order: "priority" (tiers, default) or "fcfs" (vLLM's default policy). */
  scheduling?: SchedulingPolicy;
  /** Attempts to re-route a request that reached an instance that cannot serve it. */
  maxReroutes?: number;
  /**
   * Region outages (ms since the start): at `startMs` every VM of the region fails — its requests go
   * back to the routers — and until `endMs` the region boots nothing.
   */
  outages?: Outage[];
}

/** `FleetOptions` with every default applied (the engine's own defaults stay optional). */
export interface ResolvedFleetOptions {
  perf: PerformanceModel;
  regions: string[];
  supply: Record<string, Record<string, number>> | undefined;
  timings: FleetTimings;
  loadReportMs: number;
  horizonMs: number;
  maxBatch: number;
  niwKvShare: number;
  maxPrefillTokens: number | undefined;
  stepBudgetMs: number;
  traceSlow: FleetOptions["traceSlow"];
  iwCapacityRps: FleetOptions["iwCapacityRps"];
  blockSize: number | undefined;
  scheduling: SchedulingPolicy | undefined;
  maxReroutes: number;
  outages: Outage[];
}

export function resolveFleetOptions(opts: FleetOptions): ResolvedFleetOptions {
  return {
    perf: opts.perf,
    regions: opts.regions,
    supply: opts.supply,
    timings: { ...DEFAULT_TIMINGS, ...opts.timings },
    loadReportMs: opts.loadReportMs ?? 5_000,
    horizonMs: opts.horizonMs,
    maxBatch: opts.maxBatch ?? DEFAULT_MAX_BATCH,
    niwKvShare: opts.niwKvShare ?? 1,
    maxPrefillTokens: opts.maxPrefillTokens,
    stepBudgetMs: opts.stepBudgetMs ?? DEFAULT_STEP_BUDGET_MS,
    traceSlow: opts.traceSlow,
    iwCapacityRps: opts.iwCapacityRps,
    blockSize: opts.blockSize,
    scheduling: opts.scheduling,
    maxReroutes: opts.maxReroutes ?? 10,
    outages: opts.outages ?? [],
  };
}

/** Most VMs of `gpu` that `region` can have under `supply` (region → GPU type → VMs). */
export function supplyLimit(
  supply: Record<string, Record<string, number>> | undefined,
  region: string,
  gpu: string,
): number {
  return supply?.[region]?.[gpu] ?? DEFAULT_VM_SUPPLY;
}
