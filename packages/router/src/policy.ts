import { type InstanceState, instanceLoadWith, type LoadSignals } from "@sageserve/protocol";

/** What the router knows of one instance: its last load report plus what it routed there since. */
export interface InstanceView extends LoadSignals {
  instanceId: string;
  nodeId: string;
  region: string;
  model: string;
  pool: string | undefined;
  state: InstanceState;
  kvCapacityTokens: number;
  outstandingTokens: number;
  reportedAtMs: number;
  /** Tokens routed here since the last report (the report does not know them yet). */
  routedTokens: number;
  /** Requests routed here since the last report. */
  routedRequests: number;
  /**
   * Until when its node is known alive: the last heartbeat's arrival plus its ttlMs. Past it the node is
   * gone (killed, partitioned) and the instance is not routed to, whatever its last load report said.
   * Absent until a heartbeat arrives (a router that just started): the report's staleness alone decides.
   */
  aliveUntilMs?: number | undefined;
}

export interface RouterConfig {
  /** Spill interactive work out of the home region when its endpoint utilisation is at or above this. */
  spillThreshold: number;
  /** A view older than this is stale: the instance is not routed to. */
  staleAfterMs: number;
  /** "queue": NIW goes to the region's durable queue; "pool": NIW goes straight to the niw pool (siloed). */
  niwMode: "queue" | "pool";
  /** Regions each region may spill to, in preference order; absent = any region. */
  spillTargets?: Record<string, string[]>;
}

export const DEFAULT_ROUTER_CONFIG: RouterConfig = {
  spillThreshold: 0.7,
  staleAfterMs: 30_000,
  niwMode: "queue",
};

/**
 * Estimated load of an instance including work routed since its report: KV cache or sequence slots,
 * whichever is fuller (protocol's instanceLoad).
 */
export function estimatedUtilization(v: InstanceView): number {
  return instanceLoadWith(
    v,
    v.kvCapacityTokens > 0 ? v.kvUtilization + v.routedTokens / v.kvCapacityTokens : v.kvUtilization,
    v.waiting + v.routedRequests,
  );
}

export function isRoutable(v: InstanceView, nowMs: number, cfg: RouterConfig): boolean {
  return (
    v.state === "serving" &&
    nowMs - v.reportedAtMs <= cfg.staleAfterMs &&
    (v.aliveUntilMs === undefined || nowMs <= v.aliveUntilMs)
  );
}

/**
 * Tokens queued at the instance and not yet admitted: the report's outstanding tokens minus what its
 * running requests hold in KV, plus everything routed there since the report (counted as queued).
 * The simulated fleet reports outstanding = KV reserved + queued; an engine that reports 0 (the node
 * agent today) leaves the routed tokens alone, i.e. the previous behaviour.
 */
export function queuedTokens(v: InstanceView): number {
  const held = v.kvUtilization * v.kvCapacityTokens;
  return Math.max(0, v.outstandingTokens - held) + v.routedTokens;
}

/**
 * Whether `tokens` (a request's prompt + output) fit in the KV cache the instance has free after what
 * is queued there: if not, the request waits for running requests to finish, however short the queue.
 * Unknown capacity (0) counts as fitting.
 */
export function fitsKv(v: InstanceView, tokens: number): boolean {
  if (v.kvCapacityTokens <= 0) return true;
  return (1 - v.kvUtilization) * v.kvCapacityTokens - queuedTokens(v) >= tokens;
}

/**
 * Join-shortest-queue for a request of `tokens` (prompt + output): instances where it fits in free KV
 * first, then the fewest tokens queued (not yet admitted: what a new request's first token waits
 * behind); ties by outstanding tokens (queued + held by running requests), then by lower load, then id
 * (deterministic).
 */
export function chooseInstance(
  candidates: readonly InstanceView[],
  nowMs: number,
  cfg: RouterConfig,
  tokens = 0,
): InstanceView | undefined {
  let best: InstanceView | undefined;
  let bestFits = false;
  let bestQueued = Number.POSITIVE_INFINITY;
  let bestLoad = Number.POSITIVE_INFINITY;
  for (const v of candidates) {
    if (!isRoutable(v, nowMs, cfg)) continue;
    const fits = fitsKv(v, tokens);
    const queued = queuedTokens(v);
    const load = v.outstandingTokens + v.routedTokens;
    const better =
      best === undefined ||
      (fits && !bestFits) ||
      (fits === bestFits &&
        (queued < bestQueued ||
          (queued === bestQueued &&
            (load < bestLoad ||
              (load === bestLoad &&
                (estimatedUtilization(v) < estimatedUtilization(best) ||
                  (estimatedUtilization(v) === estimatedUtilization(best) &&
                    v.instanceId < best.instanceId)))))));
    if (better) {
      best = v;
      bestFits = fits;
      bestQueued = queued;
      bestLoad = load;
    }
  }
  return best;
}

/** Endpoint utilisation: capacity-weighted instance load (KV or slots) over routable instances (1 if none). */
export function endpointUtilization(
  candidates: readonly InstanceView[],
  nowMs: number,
  cfg: RouterConfig,
): number {
  let used = 0;
  let cap = 0;
  for (const v of candidates) {
    if (!isRoutable(v, nowMs, cfg)) continue;
    used += estimatedUtilization(v) * v.kvCapacityTokens;
    cap += v.kvCapacityTokens;
  }
  return cap > 0 ? used / cap : 1;
}

/**
 * Home region first; when its endpoint is at or above the spill threshold, the first allowed
 * region below it, else the least-utilised allowed region (the reference's global router).
 */
export function chooseRegion(
  home: string,
  utilizationOf: (region: string) => number,
  regions: readonly string[],
  cfg: RouterConfig,
): string {
  const homeUtil = utilizationOf(home);
  if (homeUtil < cfg.spillThreshold) return home;
  const allowed = cfg.spillTargets?.[home] ?? regions.filter((r) => r !== home);
  let best = home;
  let bestUtil = homeUtil;
  for (const r of allowed) {
    const u = utilizationOf(r);
    if (u < cfg.spillThreshold) return r;
    if (u < bestUtil) {
      best = r;
      bestUtil = u;
    }
  }
  return best;
}
