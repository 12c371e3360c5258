/**
 * The planner's demand history as one router sees it: arrivals per "model|region" and tier in the
 * current minute, optionally corrected with the engines' prompt counts. Kept apart from the routing
 * decisions: it only counts, and the router publishes what it counted once a minute.
 */
import { type KeyCache, pairKey, type Tier } from "@sageserve/protocol";
import type { Clock } from "@sageserve/runtime";
import type { Route } from "./messages.js";

/** One tier's arrivals in a window. */
interface TierCount {
  requests: number;
  inputTokens: number;
  outputTokens: number;
}

/** One endpoint's arrivals in a window, by tier (the DemandReport's `byTier`). */
export type TierDemand = Record<Tier, TierCount>;

/** Demand windows are a minute long. */
export const DEMAND_WINDOW_MS = 60_000;

function emptyTierDemand(): TierDemand {
  const z = () => ({ requests: 0, inputTokens: 0, outputTokens: 0 });
  return { "iw-fast": z(), "iw-normal": z(), niw: z() };
}

export class DemandLedger {
  /** Arrivals of the current minute per "model|region", by tier. */
  private readonly demand = new Map<string, TierDemand>();
  /** With `fromEngine`: requests counted at arrival and not finished yet (kept 10 minutes at most). */
  private readonly estimates = new Map<string, { req: Route; atMs: number }>();
  private windowStartMs = 0;

  /**
   * `fromEngine`: correct the counted input tokens with the engine's prompt counts when requests finish
   * (see `RouterOptions.demandFromEngine`).
   */
  constructor(
    private readonly clock: Clock,
    private readonly keys: KeyCache,
    private readonly fromEngine: boolean,
  ) {}

  /** Start counting in the window that holds `nowMs`. */
  startWindow(nowMs: number): void {
    this.windowStartMs = Math.floor(nowMs / DEMAND_WINDOW_MS) * DEMAND_WINDOW_MS;
  }

  /** Count one arrival. */
  count(req: Route): void {
    const k = this.keys.key(req.model, req.originRegion);
    let d = this.demand.get(k);
    if (!d) {
      d = emptyTierDemand();
      this.demand.set(k, d);
    }
    const t = d[req.tier];
    t.requests++;
    t.inputTokens += req.inputTokens;
    t.outputTokens += req.maxOutputTokens;
    if (this.fromEngine) this.estimates.set(req.requestId, { req, atMs: this.clock.now() });
  }

  /** A request this router counted finished: its engine's prompt count replaces the estimate. */
  correct(requestId: string, engineInputTokens: number): void {
    // Re-routed attempts finish under `<request>-a<n>`; the arrival was counted under `<request>`.
    const id = requestId.replace(/-a\d+$/, "");
    const e = this.estimates.get(id);
    if (!e) return;
    this.estimates.delete(id);
    const delta = engineInputTokens - e.req.inputTokens;
    if (delta === 0) return;
    const k = pairKey(e.req.model, e.req.originRegion);
    if (!this.demand.has(k)) this.demand.set(k, emptyTierDemand());
    const t = this.demand.get(k)![e.req.tier];
    t.inputTokens = Math.max(0, t.inputTokens + delta);
  }

  /**
   * Close the current window: forget estimates older than 10 minutes and move on to the next window.
   * Returns the closed window's start; its counts stay readable through `counted` until `clear`.
   */
  closeWindow(): number {
    const start = this.windowStartMs;
    for (const [id, e] of this.estimates) {
      if (this.clock.now() - e.atMs < 600_000) break;
      this.estimates.delete(id);
    }
    this.windowStartMs += DEMAND_WINDOW_MS;
    return start;
  }

  /** The arrivals counted for one model and origin region (zeros when none). */
  counted(model: string, region: string): TierDemand {
    const z = { requests: 0, inputTokens: 0, outputTokens: 0 };
    return this.demand.get(pairKey(model, region)) ?? { "iw-fast": z, "iw-normal": z, niw: z };
  }

  /** Forget the closed window's counts. */
  clear(): void {
    this.demand.clear();
  }
}
