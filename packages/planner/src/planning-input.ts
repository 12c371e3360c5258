/**
 * What one plan is computed from, as pure functions of the planner's observations: the batch rate a
 * backlog needs by its deadlines, the forecast profile a plan carries, the current allocation from load
 * reports, and the capacity, supply and config of the planning snapshot. Separate from the actor so that
 * the policy can be read and tested without a bus or a clock.
 */
import { type CapacityModel, type LengthMix, tripleKey } from "@sageserve/protocol";
import type { PlannerOptions } from "./planner-options.js";

/** Bins of the forecast profile a plan carries (minutes). */
export const PROFILE_BIN_MINUTES = 5;

/** Forecast demand of one series for the ILP (tokens/s). */
export interface SeriesDemand {
  model: string;
  region: string;
  iwTokensPerSecond: number;
  niwTokensPerSecond: number;
  niwRequiredTokensPerSecond?: number;
}

/** A plan window's demand: what the ILP plans for, and the forecast and batch rates the plan tells the agents. */
export interface WindowDemand {
  demand: SeriesDemand[];
  forecast: {
    model: string;
    region: string;
    tokensPerSecond: number;
    profile?: number[];
    binMinutes?: number;
  }[];
  niw: { model: string; region: string; tokensPerSecond: number }[];
}

/** An instance as the planner last heard of it (LoadReport). */
export interface InstanceSeen {
  model: string;
  region: string;
  gpu: string;
  state: string;
}

/**
 * Batch tokens/s needed from now on for every job of a backlog (cumulative deadline buckets) to finish
 * `marginMinutes` before its deadline: the most demanding bucket's tokens over the time it has left.
 */
export function deadlineRate(
  backlog: readonly { withinMinutes: number; tokens: number }[],
  marginMinutes: number,
): number {
  let rate = 0;
  for (const b of backlog) {
    if (b.tokens <= 0) continue;
    const minutes = Math.max(5, b.withinMinutes - marginMinutes);
    rate = Math.max(rate, b.tokens / (minutes * 60));
  }
  return rate;
}

/**
 * Batch tokens/s to run in the coming window (`windowMinutes`) so that every job of a backlog (cumulative
 * deadline buckets) finishes `marginMinutes` before its deadline while batch work goes where the
 * interactive forecast is lowest (valley filling): the lowest level L of interactive + batch load such
 * that, before every bucket's bound (less the margin), the room between the forecast and L holds the
 * bucket's tokens; the window gets L less its interactive forecast, minute by minute (nothing in a peak
 * that stands above L). `iwForecast` is the interactive forecast per minute from now (tokens/s); minutes
 * past its end repeat its last day (or its mean, when shorter). With a flat forecast this is
 * `deadlineRate`.
 */
export function valleyFillRate(
  backlog: readonly { withinMinutes: number; tokens: number }[],
  iwForecast: readonly number[],
  marginMinutes: number,
  windowMinutes: number,
): number {
  if (iwForecast.length === 0) return deadlineRate(backlog, marginMinutes);
  const n = iwForecast.length;
  const mean = iwForecast.reduce((a, b) => a + b, 0) / n;
  const f = (t: number): number =>
    t < n ? iwForecast[t]! : n >= 1440 ? iwForecast[n - 1440 + ((t - n) % 1440)]! : mean;
  let level = Number.NEGATIVE_INFINITY;
  let prevTokens = 0;
  for (const b of valleyBuckets(backlog, marginMinutes)) {
    // Cumulative buckets: one that adds no tokens to the one before has more room for the same work.
    if (b.tokens <= prevTokens) continue;
    prevTokens = b.tokens;
    const sorted: number[] = [];
    for (let t = 0; t < b.minutes; t++) sorted.push(f(t));
    sorted.sort((x, y) => x - y);
    level = Math.max(level, fillLevel(sorted, b.tokens / 60));
  }
  if (level === Number.NEGATIVE_INFINITY) return 0;
  let sum = 0;
  const w = Math.max(1, Math.round(windowMinutes));
  for (let t = 0; t < w; t++) sum += Math.max(0, level - f(t));
  return sum / w;
}

/** The backlog's buckets with tokens, each with the minutes it has (its bound less the margin, ≥ 5). */
export function valleyBuckets(
  backlog: readonly { withinMinutes: number; tokens: number }[],
  marginMinutes: number,
): { minutes: number; tokens: number }[] {
  return backlog
    .filter((b) => b.tokens > 0)
    .map((b) => ({ minutes: Math.ceil(Math.max(5, b.withinMinutes - marginMinutes)), tokens: b.tokens }));
}

/**
 * The lowest level L with Σ max(0, L − x) ≥ need over the minutes `sorted` (ascending): between two
 * consecutive values the sum is j·L − (sum of the j lowest), so L is found in one pass.
 */
function fillLevel(sorted: readonly number[], need: number): number {
  let prefix = 0;
  for (let j = 1; j <= sorted.length; j++) {
    prefix += sorted[j - 1]!;
    const next = j < sorted.length ? sorted[j]! : Number.POSITIVE_INFINITY;
    // Room at the next value up: if it holds the work, L lies at or below it.
    if (j * next - prefix >= need) return (need + prefix) / j;
  }
  return Number.POSITIVE_INFINITY; // unreachable: the last step's room is unbounded
}

/** When in the window the demand comes: each 5-minute bin's peak minute (biased like the rest). */
export function forecastProfile(points: readonly number[], bias: number): number[] {
  const profile: number[] = [];
  for (let i = 0; i < points.length; i += PROFILE_BIN_MINUTES)
    profile.push(Math.round(Math.max(...points.slice(i, i + PROFILE_BIN_MINUTES)) * bias));
  return profile;
}

/** Serving instances and spot VMs per (model, region, GPU type); failed and stopped instances count as neither. */
export function currentInstances(
  instances: Iterable<InstanceSeen>,
): { model: string; region: string; gpu: string; instances: number; spot: number }[] {
  const current = new Map<
    string,
    { model: string; region: string; gpu: string; instances: number; spot: number }
  >();
  for (const i of instances) {
    const k = tripleKey(i.model, i.region, i.gpu);
    const c = current.get(k) ?? { model: i.model, region: i.region, gpu: i.gpu, instances: 0, spot: 0 };
    if (i.state === "spot") c.spot++;
    else if (i.state !== "stopped" && i.state !== "failed") c.instances++;
    current.set(k, c);
  }
  return [...current.values()];
}

/**
 * Per-instance capacity for the ILP: the capacity model's, for each model's measured length mix, over the
 * fixed capacities (which remain for models it does not know); the fixed ones alone without it.
 */
export function planningCapacity(
  opts: Pick<PlannerOptions, "capacity" | "models" | "gpuTypes">,
  cm: CapacityModel | undefined,
  demand: readonly SeriesDemand[],
  mixOf: (model: string) => LengthMix | undefined,
): Record<string, Record<string, number>> {
  return cm
    ? {
        ...opts.capacity,
        ...cm.plannerCapacity(
          opts.models,
          opts.gpuTypes.map((g) => g.id),
          mixOf,
          // Pools are sized by the quietest region's forecast (interactive + batch), the least pooling any
          // region gets.
          (m) => {
            const ds = demand.filter((d) => d.model === m && d.iwTokensPerSecond > 0);
            return ds.length ? Math.min(...ds.map((d) => d.iwTokensPerSecond + d.niwTokensPerSecond)) : 0;
          },
        ),
      }
    : opts.capacity;
}

/** GPU supply per region and type, with none in the regions that are down. */
export function planningSupply(
  supply: Record<string, Record<string, number>>,
  downRegions: ReadonlySet<string>,
): Record<string, Record<string, number>> {
  return downRegions.size
    ? Object.fromEntries(
        Object.entries(supply).map(([r, byGpu]) => [
          r,
          downRegions.has(r) ? Object.fromEntries(Object.keys(byGpu).map((g) => [g, 0])) : byGpu,
        ]),
      )
    : supply;
}

/** The snapshot's ILP settings: with a capacity model the headroom defaults to 0 (its target utilisation is the headroom). */
export function planningConfig(
  config: PlannerOptions["config"],
  cm: CapacityModel | undefined,
): PlannerOptions["config"] {
  return cm && config?.headroom === undefined ? { ...config, headroom: 0 } : config;
}
