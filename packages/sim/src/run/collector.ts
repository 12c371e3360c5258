import { DEFAULT_SLO_TTFT_MS, type Payload, RequestDone, TIERS, type Tier } from "@sageserve/protocol";
import { Actor, type ActorContext } from "@sageserve/runtime";
import { LogHistogram } from "../engine/histogram.js";

export interface SloTargets {
  /** TTFT targets per interactive tier (paper v3: IW-fast < 1 s, IW-normal < 1 min). */
  ttftMs: Record<"iw-fast" | "iw-normal", number>;
}

export const DEFAULT_SLO: SloTargets = { ttftMs: { ...DEFAULT_SLO_TTFT_MS } };

interface TierStats {
  completed: number;
  failed: number;
  sloMet: number;
  ttft: LogHistogram;
  tbt: LogHistogram;
  e2e: LogHistogram;
  deadlineMisses: number;
}

/** Listens (passively) to every RequestDone and keeps the run's latency and SLO statistics. */
export class MetricsCollector extends Actor {
  readonly tiers: Record<Tier, TierStats>;
  /** Request ids seen (only with trackIds: costs memory on multi-million-request runs). */
  readonly doneIds = new Set<string>();
  duplicates = 0;

  constructor(
    ctx: ActorContext,
    private readonly slo: SloTargets = DEFAULT_SLO,
    private readonly trackIds = false,
  ) {
    super(ctx, { role: "sim-metrics", id: "sim-metrics" });
    const mk = (): TierStats => ({
      completed: 0,
      failed: 0,
      sloMet: 0,
      ttft: new LogHistogram(),
      tbt: new LogHistogram(),
      e2e: new LogHistogram(),
      deadlineMisses: 0,
    });
    this.tiers = { "iw-fast": mk(), "iw-normal": mk(), niw: mk() };
  }

  protected setup(): void {
    this.on(RequestDone, {}, (d) => this.record(d), { broadcast: true, passive: true });
  }

  private record(d: Payload<typeof RequestDone>): void {
    if (this.trackIds) {
      if (this.doneIds.has(d.requestId)) {
        this.duplicates++;
        return;
      }
      this.doneIds.add(d.requestId);
    }
    const t = this.tiers[d.tier];
    if (d.outcome !== "ok") {
      t.failed++;
      if (d.tier === "niw") t.deadlineMisses++;
      return;
    }
    t.completed++;
    t.ttft.add(d.ttftMs);
    t.tbt.add(d.tbtMs);
    t.e2e.add(d.e2eMs);
    if (d.tier === "niw") {
      const met = d.deadlineMs === undefined || d.arrivalMs + d.e2eMs <= d.deadlineMs;
      if (met) t.sloMet++;
      else t.deadlineMisses++;
    } else if (d.ttftMs <= this.slo.ttftMs[d.tier]) t.sloMet++;
  }

  get finished(): number {
    return TIERS.reduce((a, k) => a + this.tiers[k].completed + this.tiers[k].failed, 0);
  }
}
