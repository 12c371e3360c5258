/**
 * Reactive scaling and NIW release decisions, as pure functions of an endpoint's
 * state. Defaults are the reference simulator's (0.5 / 0.25); the paper states
 * 0.7 / 0.3 — both are one config change away.
 */
export interface ReactiveConfig {
  scaleUpAbove: number;
  scaleDownBelow: number;
  minInstances: number;
  maxInstances: number;
  /** Wait after a scale-down before the endpoint may scale down again. */
  scaleDownCooldownMs: number;
  /**
   * How many instances one scale-up adds: "one" (the paper: +1, then wait for it to land) or
   * "proportional" (enough to bring utilisation back to `targetUtilization` at once — a ramp needs one
   * cool-down instead of one per instance).
   */
  scaleUpStep: "one" | "proportional";
  targetUtilization: number;
  /**
   * Scale down only when the instances left would stay at or below `targetUtilization`
   * (u·n/(n−1)); without it (the paper) a bursty endpoint flips between lending a VM to spot and
   * reclaiming it, and requests wait out every reclaim.
   */
  scaleDownGuard: boolean;
  /**
   * SLO guard (off unless set): scale up when more than this fraction of the endpoint's recent IW-fast
   * requests missed their TTFT target, whatever the utilisation says, and do not scale down while more
   * than a quarter of it miss. Utilisation (KV or slots) cannot see an instance that is busy prefilling,
   * a burst that queues faster than reports arrive, or a too-optimistic plan; the SLO itself can.
   */
  sloScaleUpAbove?: number;
  /**
   * With `minInstances: 0` (scale to zero): the last instance goes only after the endpoint has been idle
   * (nothing running or waiting) this long. Default 10 minutes.
   */
  zeroAfterIdleMs: number;
}

export const DEFAULT_REACTIVE: ReactiveConfig = {
  scaleUpAbove: 0.5,
  scaleDownBelow: 0.25,
  minInstances: 2,
  maxInstances: 64,
  scaleDownCooldownMs: 60_000,
  scaleUpStep: "one",
  targetUtilization: 0.4,
  scaleDownGuard: false,
  zeroAfterIdleMs: 10 * 60_000,
};

/** Instances one "up" decision adds (≥ 1, within maxInstances). */
export function scaleUpCount(ep: EndpointSnapshot, cfg: ReactiveConfig): number {
  const total = ep.serving + ep.pending;
  const room = Math.max(1, cfg.maxInstances - total);
  if (total < cfg.minInstances) return Math.min(room, cfg.minInstances - total);
  if (cfg.scaleUpStep !== "proportional" || ep.serving === 0) return 1;
  const needed = Math.ceil((ep.serving * ep.utilization) / Math.max(0.05, cfg.targetUtilization)) - total;
  return Math.max(1, Math.min(room, needed));
}

export interface EndpointSnapshot {
  /** Serving instances. */
  serving: number;
  /** Instances on their way in (booting, loading, swapping, reclaiming). */
  pending: number;
  /** Capacity-weighted KV utilisation of the serving instances (1 when none serve). */
  utilization: number;
  /** The endpoint may not act before this time (last action's cool-down). */
  cooldownUntilMs: number;
  /** Fraction of recent IW-fast requests served here that missed their TTFT target (SloWindow); 0 if unknown. */
  sloMissRate?: number;
  /** A router holds requests for this endpoint (it has no serving instance): capacity is wanted now. */
  wanted?: boolean;
  /** How long nothing has run or waited on the endpoint (ms); 0 if busy or unknown. */
  idleMs?: number;
}

/** The SLO guard says "add capacity now" (ReactiveConfig.sloScaleUpAbove). */
export function sloPressure(ep: EndpointSnapshot, cfg: ReactiveConfig): boolean {
  return cfg.sloScaleUpAbove !== undefined && (ep.sloMissRate ?? 0) > cfg.sloScaleUpAbove;
}

/** The SLO guard forbids giving capacity back (misses above a quarter of the scale-up threshold). */
export function sloHolds(ep: EndpointSnapshot, cfg: ReactiveConfig): boolean {
  return cfg.sloScaleUpAbove !== undefined && (ep.sloMissRate ?? 0) > cfg.sloScaleUpAbove / 4;
}

/**
 * Recent TTFT misses of one endpoint in fixed time buckets (default 6 × 10 s): the fraction of requests
 * over the last window that missed, once at least `minSamples` finished (else 0: no evidence).
 */
export class SloWindow {
  private readonly total: number[];
  private readonly missed: number[];
  private readonly stamp: number[];

  constructor(
    private readonly windowMs = 60_000,
    private readonly buckets = 6,
    private readonly minSamples = 20,
  ) {
    this.total = new Array(buckets).fill(0);
    this.missed = new Array(buckets).fill(0);
    this.stamp = new Array(buckets).fill(-1);
  }

  private slot(atMs: number): number {
    const width = this.windowMs / this.buckets;
    const k = Math.floor(atMs / width);
    const i = k % this.buckets;
    if (this.stamp[i] !== k) {
      this.stamp[i] = k;
      this.total[i] = 0;
      this.missed[i] = 0;
    }
    return i;
  }

  add(atMs: number, missed: boolean): void {
    const i = this.slot(atMs);
    this.total[i]!++;
    if (missed) this.missed[i]!++;
  }

  missRate(nowMs: number): number {
    const [n, m] = this.counts(nowMs);
    return n >= this.minSamples ? m / n : 0;
  }

  /** The fraction that met the target over the window, or undefined before `minSamples` finished. */
  attainment(nowMs: number): number | undefined {
    const [n, m] = this.counts(nowMs);
    return n >= this.minSamples ? 1 - m / n : undefined;
  }

  /** Requests finished and missed over the window. */
  private counts(nowMs: number): [number, number] {
    const width = this.windowMs / this.buckets;
    const k = Math.floor(nowMs / width);
    let n = 0;
    let m = 0;
    for (let i = 0; i < this.buckets; i++) {
      if (this.stamp[i]! <= k - this.buckets) continue; // older than the window
      n += this.total[i]!;
      m += this.missed[i]!;
    }
    return [n, m];
  }
}

export type ScaleDecision = "up" | "down" | undefined;

export function reactiveDecision(ep: EndpointSnapshot, cfg: ReactiveConfig, nowMs: number): ScaleDecision {
  const total = ep.serving + ep.pending;
  // Scaled to zero: only traffic held for it brings an instance back (a cold start), cool-down or not.
  if (total === 0 && cfg.minInstances === 0) return ep.wanted ? "up" : undefined;
  if (nowMs < ep.cooldownUntilMs) return undefined;
  if (total < cfg.minInstances) return "up";
  // Capacity already on its way counts: do not scale up again until it lands.
  if (
    (ep.utilization > cfg.scaleUpAbove || sloPressure(ep, cfg)) &&
    ep.pending === 0 &&
    total < cfg.maxInstances
  )
    return "up";
  // The last instance of a scale-to-zero endpoint goes only once it has been idle long enough.
  if (ep.serving === 1 && cfg.minInstances === 0)
    return ep.pending === 0 && (ep.idleMs ?? 0) >= cfg.zeroAfterIdleMs ? "down" : undefined;
  if (
    ep.utilization < cfg.scaleDownBelow &&
    ep.serving > cfg.minInstances &&
    ep.pending === 0 &&
    !sloHolds(ep, cfg)
  ) {
    const after = (ep.utilization * ep.serving) / (ep.serving - 1);
    if (cfg.scaleDownGuard && after > cfg.targetUtilization) return undefined;
    return "down";
  }
  return undefined;
}

export interface NiwReleaseConfig {
  /** Release NIW work while utilisation is below this (paper: 60 %). */
  releaseBelow: number;
  /** Below this, release two at a time (paper: 50 %). */
  releaseTwoBelow: number;
  /** Jobs whose deadline is closer than this are released regardless of utilisation. */
  escalateBeforeDeadlineMs: number;
  /** Upper bound of jobs released per decision (burst guard). */
  maxPerTick: number;
}

export const DEFAULT_NIW_RELEASE: NiwReleaseConfig = {
  releaseBelow: 0.6,
  releaseTwoBelow: 0.5,
  escalateBeforeDeadlineMs: 4 * 3600_000,
  maxPerTick: 64,
};

/** How many queued NIW jobs to release now (the paper's intent: <60 % one, <50 % two). */
export function niwReleaseCount(utilization: number, cfg: NiwReleaseConfig): number {
  if (utilization < cfg.releaseTwoBelow) return 2;
  if (utilization < cfg.releaseBelow) return 1;
  return 0;
}

/** How a queued NIW job goes out (see `niwReleaseKind`). */
export type NiwReleaseKind = "urgent" | "budget" | "paced" | "hold";

/**
 * How the job at the head of the NIW queue may go out now: `urgent` (its deadline is within the
 * escalation bound — whatever the utilisation), `budget` (one of this decision's utilisation-based
 * releases), `paced` (the plan's batch allowance covers its tokens and utilisation is below 0.9, so
 * interactive work keeps its headroom), or `hold` (not now: it and the jobs behind it wait).
 * Positional arguments: it runs once per released job.
 */
export function niwReleaseKind(
  dueInMs: number,
  costTokens: number,
  budget: number,
  allowanceTokens: number | undefined,
  utilization: number,
  cfg: NiwReleaseConfig,
): NiwReleaseKind {
  if (dueInMs <= cfg.escalateBeforeDeadlineMs) return "urgent";
  if (budget > 0) return "budget";
  if (allowanceTokens !== undefined && allowanceTokens >= costTokens && utilization < 0.9) return "paced";
  return "hold";
}

/** A Batch API request the engine failed runs again, up to its last attempt (its result is stored on that). */
export function batchRunsAgain(
  outcome: string,
  resultKey: string | undefined,
  attempt: number,
  maxAttempts: number,
): boolean {
  return outcome === "failed" && resultKey !== undefined && attempt < maxAttempts - 1;
}

/**
 * A released NIW job is lost with its instance once it has run past the stale bound and its instance is
 * gone: silent past the stale bound, failed or stopped.
 */
export function niwRunLost(
  startedAtMs: number,
  instance: { atMs: number; state: string } | undefined,
  nowMs: number,
  staleAfterMs: number,
): boolean {
  if (nowMs - startedAtMs <= staleAfterMs) return false;
  return !(
    instance &&
    nowMs - instance.atMs <= staleAfterMs &&
    instance.state !== "failed" &&
    instance.state !== "stopped"
  );
}
