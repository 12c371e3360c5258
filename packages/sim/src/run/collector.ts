import {
  countSlo,
  DEFAULT_SLO_TTFT_MS,
  emptySloCounts,
  metSlo,
  type Payload,
  type PromptTiming,
  promptVerdict,
  RequestDone,
  type SloCounts,
  TIERS,
  type Tier,
} from "@sageserve/protocol";
import { Actor, type ActorContext } from "@sageserve/runtime";
import { LogHistogram } from "../engine/histogram.js";

export interface SloTargets {
  /** TTFT targets per interactive tier (paper v3: IW-fast < 1 s, IW-normal < 1 min). */
  ttftMs: Record<"iw-fast" | "iw-normal", number>;
}

export const DEFAULT_SLO: SloTargets = { ttftMs: { ...DEFAULT_SLO_TTFT_MS } };

/** How the collector judges SLO feasibility: the performance model and the GPU type of each instance. */
export interface FeasibilityJudge {
  timing: PromptTiming;
  gpuOf(instanceId: string): string | undefined;
}

interface TierStats {
  completed: number;
  failed: number;
  /** Finished, met, infeasible (idle prefill over the target) and met among the feasible. */
  slo: SloCounts;
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
  /** SLO counts per model and tier (where a run's misses are: which endpoints ran short). */
  readonly sloByModel = new Map<string, Record<Tier, SloCounts>>();
  /** Requests whose prompt is longer than the measured profile of the (model, GPU) that served it, per model (every model seen, 0 included). */
  readonly beyondProfile = new Map<string, number>();

  constructor(
    ctx: ActorContext,
    readonly slo: SloTargets = DEFAULT_SLO,
    private readonly trackIds = false,
    private readonly judge?: FeasibilityJudge,
  ) {
    super(ctx, { role: "sim-metrics", id: "sim-metrics" });
    const mk = (): TierStats => ({
      completed: 0,
      failed: 0,
      slo: emptySloCounts(),
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
    const verdict = promptVerdict(
      this.judge?.timing,
      { model: d.model, gpuType: this.judge?.gpuOf(d.instanceId), tier: d.tier, inputTokens: d.inputTokens },
      this.slo.ttftMs,
    );
    this.beyondProfile.set(d.model, (this.beyondProfile.get(d.model) ?? 0) + (verdict.beyondProfile ? 1 : 0));
    const met = metSlo(d, this.slo.ttftMs);
    countSlo(t.slo, met, verdict);
    let byTier = this.sloByModel.get(d.model);
    if (byTier === undefined) {
      byTier = { "iw-fast": emptySloCounts(), "iw-normal": emptySloCounts(), niw: emptySloCounts() };
      this.sloByModel.set(d.model, byTier);
    }
    countSlo(byTier[d.tier], met, verdict);
    if (d.outcome !== "ok") {
      t.failed++;
      if (d.tier === "niw") t.deadlineMisses++;
      return;
    }
    t.completed++;
    t.ttft.add(d.ttftMs);
    t.tbt.add(d.tbtMs);
    t.e2e.add(d.e2eMs);
    if (d.tier === "niw" && !met) t.deadlineMisses++;
  }

  get finished(): number {
    return TIERS.reduce((a, k) => a + this.tiers[k].completed + this.tiers[k].failed, 0);
  }
}
