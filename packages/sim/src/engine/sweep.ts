import {
  type Completion,
  Instance,
  type InstanceOptions,
  type InstanceRequest,
  type InstanceTiming,
  type PerformanceModel,
} from "@sageserve/engine";
import type { Tier } from "@sageserve/protocol";
import { DEFAULT_SLO_TTFT_MS } from "@sageserve/protocol";
import { createRng, type Rng } from "@sageserve/runtime";
import { sampleQuantiles } from "../workload/stats.js";

/**
 * One instance under Poisson load at increasing rates: throughput against TTFT/TBT per tier, and the
 * knee — the highest rate at which each interactive tier's TTFT SLO still holds. The engine is the
 * simulator's (`Instance`), so the curve is what the simulator and the emulator do; it is the input of
 * a capacity model that plans by SLO rather than by raw throughput.
 */
export interface LengthMix {
  /** Evenly spaced quantiles of prompt and output lengths (the workload statistics' form). */
  inputTokens: readonly number[];
  outputTokens: readonly number[];
  /** Longest prompt (the scenario's cap). */
  maxInputTokens?: number;
  /** Share of requests per tier. */
  tiers: Record<Tier, number>;
}

export interface SweepPoint {
  ratePerSecond: number;
  requests: number;
  completedPerSecond: number;
  tokensPerSecond: number;
  preemptions: number;
  /** Requests still queued or running when the window closed (overload shows here). */
  unfinished: number;
  byTier: Record<
    Tier,
    {
      n: number;
      ttftP50: number;
      ttftP99: number;
      tbtP50: number;
      tbtP99: number;
      /** Share of requests whose TTFT met the tier's target (NIW: the IW-normal target, as a guide). */
      attainment: number;
      /** The same over requests whose prompt can meet the target on an idle instance. */
      attainmentFeasible: number;
    }
  >;
}

export interface SweepResult {
  model: string;
  gpu: string;
  maxBatchedTokens: number;
  kvCapacityTokens: number;
  points: SweepPoint[];
  /** Highest swept rate at which IW-fast ≥ 99 % and IW-normal ≥ 99.9 % of feasible requests met TTFT. */
  knee: SweepPoint | undefined;
}

export interface SweepOptions {
  rates: readonly number[];
  /**
   * Simulated seconds per rate (default 600), after `warmupS` (default 60) that is not measured; longer
   * at low rates so each point has at least `minRequests` requests (default 20,000: a 99 % target
   * judged on 100 requests would be noise).
   */
  durationS?: number;
  minRequests?: number;
  warmupS?: number;
  seed?: number;
  ttftMs?: Record<"iw-fast" | "iw-normal", number>;
  engine?: Partial<Omit<InstanceOptions, "timing" | "nowMs" | "kvCapacityTokens">>;
  /** KV cache of the swept engine in tokens (default: the GPU's, from the performance model). */
  kvCapacityTokens?: number;
  /** The engine runs this many times as fast as the measured hardware (an emulator's `--speedup`). */
  speedup?: number;
  /** Stop after the first rate whose IW-fast attainment falls below this (default 0.8). */
  stopBelow?: number;
}

const TIERS: Tier[] = ["iw-fast", "iw-normal", "niw"];

/** What every rate of one sweep shares. */
interface SweepContext {
  perf: PerformanceModel;
  model: string;
  gpu: string;
  ttftMs: Record<"iw-fast" | "iw-normal", number>;
  warmupMs: number;
}

type TierPoint = SweepPoint["byTier"][Tier];

function pct(sorted: number[], p: number): number {
  if (!sorted.length) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

export function sweepInstance(
  perf: PerformanceModel,
  model: string,
  gpu: string,
  mix: LengthMix,
  o: SweepOptions,
): SweepResult {
  const ttftMs = o.ttftMs ?? DEFAULT_SLO_TTFT_MS;
  const warmupMs = (o.warmupS ?? 60) * 1000;
  const maxBatchedTokens = o.engine?.maxBatchedTokens ?? perf.stepTokenBudget(model, gpu);
  const kvCapacityTokens = o.kvCapacityTokens ?? perf.kvTokenCapacity(model, gpu);
  const timing = scaledTiming(perf.timingFor(model, gpu), o.speedup ?? 1);
  const tierTotal = TIERS.reduce((a, t) => a + mix.tiers[t], 0);
  const cx: SweepContext = { perf, model, gpu, ttftMs, warmupMs };
  const points: SweepPoint[] = [];
  for (const rate of o.rates) {
    const durationMs = Math.max(o.durationS ?? 600, (o.minRequests ?? 20_000) / rate) * 1000;
    const rng = createRng(o.seed ?? 1, `sweep-${model}-${gpu}-${rate}`);
    const inst = new Instance({ ...o.engine, kvCapacityTokens, timing, nowMs: 0, maxBatchedTokens });
    const done: Completion[] = [];
    const submitted: InstanceRequest[] = [];
    const end = warmupMs + durationMs;
    runPoisson(inst, rng, mix, tierTotal, rate, end, done, submitted);
    const point = measurePoint(cx, rate, durationMs, end, inst, done, submitted);
    points.push(point);
    if (point.byTier["iw-fast"].attainmentFeasible < (o.stopBelow ?? 0.8)) break;
  }
  return { model, gpu, maxBatchedTokens, kvCapacityTokens, points, knee: kneeOf(points) };
}

/** The measured timing, or the timing of an engine `speed` times as fast. */
function scaledTiming(measured: InstanceTiming, speed: number): InstanceTiming {
  return speed === 1
    ? measured
    : {
        prefillMs: (p: number, b: number) => measured.prefillMs(p, b) / speed,
        decodeIterMs: (b: number) => measured.decodeIterMs(b) / speed,
      };
}

/**
 * Poisson arrivals at `rate` per second until `end` (ms), each submitted to `inst` as it comes (those it
 * accepts into `submitted`), the instance's own events run in between; completions go to `done`.
 */
function runPoisson(
  inst: Instance,
  rng: Rng,
  mix: LengthMix,
  tierTotal: number,
  rate: number,
  end: number,
  done: Completion[],
  submitted: InstanceRequest[],
): void {
  let t = 0;
  let next = 0;
  t += interarrivalMs(rng, rate);
  while (t < end) {
    const ev = inst.nextEventMs();
    if (ev <= t) {
      inst.step(ev, done);
      continue;
    }
    const r = drawRequest(rng, mix, tierTotal, `r${next++}`, t);
    if (inst.submit(r, t)) submitted.push(r);
    t += interarrivalMs(rng, rate);
  }
  inst.step(end, done);
}

function interarrivalMs(rng: Rng, rate: number): number {
  return (-Math.log(1 - rng.next()) * 1000) / rate;
}

/** A request of the mix: its tier, then its prompt and output lengths (in that order of draws). */
function drawRequest(
  rng: Rng,
  mix: LengthMix,
  tierTotal: number,
  id: string,
  arrivalMs: number,
): InstanceRequest {
  const u = rng.next() * tierTotal;
  const tier: Tier =
    u < mix.tiers["iw-fast"]
      ? "iw-fast"
      : u < mix.tiers["iw-fast"] + mix.tiers["iw-normal"]
        ? "iw-normal"
        : "niw";
  return {
    id,
    seq: 0,
    tier,
    arrivalMs,
    inputTokens: Math.min(mix.maxInputTokens ?? 32_768, sampleQuantiles(mix.inputTokens, rng.next())),
    outputTokens: sampleQuantiles(mix.outputTokens, rng.next()),
  };
}

/** One rate's point: throughput and per-tier latency of what arrived after the warm-up. */
function measurePoint(
  cx: SweepContext,
  rate: number,
  durationMs: number,
  end: number,
  inst: Instance,
  done: Completion[],
  submitted: InstanceRequest[],
): SweepPoint {
  const measured = done.filter((c) => c.req.arrivalMs >= cx.warmupMs);
  const inWindow = submitted.filter((r) => r.arrivalMs >= cx.warmupMs);
  const byTier = {} as SweepPoint["byTier"];
  for (const tier of TIERS) byTier[tier] = tierPoint(cx, tier, inWindow, measured, end);
  const tokens = measured.reduce((a, c) => a + c.req.inputTokens + c.req.outputTokens, 0);
  return {
    ratePerSecond: rate,
    requests: inWindow.length,
    completedPerSecond: measured.length / (durationMs / 1000),
    tokensPerSecond: tokens / (durationMs / 1000),
    preemptions: inst.preemptions,
    unfinished: inst.inFlight,
    byTier,
  };
}

/** TTFT and TBT quantiles and TTFT attainment of one tier's requests in the measured window. */
function tierPoint(
  cx: SweepContext,
  tier: Tier,
  inWindow: InstanceRequest[],
  measured: Completion[],
  end: number,
): TierPoint {
  const target = tier === "niw" ? cx.ttftMs["iw-normal"] : cx.ttftMs[tier];
  const mine = inWindow.filter((r) => r.tier === tier);
  // Unfinished requests by the window's end count as misses once they have waited past the target.
  const ttft = mine
    .map((r) => (r.firstTokenMs ?? Number.POSITIVE_INFINITY) - r.arrivalMs)
    .sort((a, b) => a - b);
  const tbt = measured
    .filter((c) => c.req.tier === tier && c.req.outputTokens > 1 && c.req.firstTokenMs !== undefined)
    .map((c) => (c.doneMs - c.req.firstTokenMs!) / (c.req.outputTokens - 1))
    .sort((a, b) => a - b);
  const feasible = mine.filter((r) => cx.perf.prefillMs(cx.model, cx.gpu, r.inputTokens) <= target);
  const met = (r: InstanceRequest) =>
    r.firstTokenMs !== undefined ? r.firstTokenMs - r.arrivalMs <= target : end - r.arrivalMs <= target;
  return {
    n: mine.length,
    ttftP50: pct(ttft, 0.5),
    ttftP99: pct(ttft, 0.99),
    tbtP50: pct(tbt, 0.5),
    tbtP99: pct(tbt, 0.99),
    attainment: mine.length ? mine.filter(met).length / mine.length : 1,
    attainmentFeasible: feasible.length ? feasible.filter(met).length / feasible.length : 1,
  };
}

/** The highest rate, of those swept in increasing order, up to which every point kept the SLOs. */
function kneeOf(points: SweepPoint[]): SweepPoint | undefined {
  const ok = (p: SweepPoint) =>
    p.byTier["iw-fast"].attainmentFeasible >= 0.99 && p.byTier["iw-normal"].attainmentFeasible >= 0.999;
  let knee: SweepPoint | undefined;
  for (const p of points) {
    if (!ok(p)) break;
    knee = p;
  }
  return knee;
}

/** `count` rates from `from`, each `factor` times the last. */
export function geometricRates(from: number, factor: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => Math.round(from * factor ** i * 100) / 100);
}
