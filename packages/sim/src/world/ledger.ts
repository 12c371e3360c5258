import { type InstanceState, PAID_STATES } from "@sageserve/protocol";

export { PAID_STATES };

export interface LedgerKey {
  state: InstanceState;
  model: string;
  region: string;
  gpu: string;
  /** "" for a shared (unified) pool. */
  pool: string;
}

/**
 * GPU-time accounting from VM state transitions: every interval a VM spends in a
 * state is added, in GPU-milliseconds, to (state, model, region, GPU type).
 * Time beyond `horizonMs` is kept apart so policies are compared on the same window.
 */
export class GpuLedger {
  private readonly inWindow = new Map<string, number>();
  private readonly afterWindow = new Map<string, number>();
  /** Per "model|region": paid GPUs changing over the window, as (time, ±gpus) pairs in arrival order. */
  private readonly paidSteps = new Map<string, number[]>();

  /** `startMs`: the window's start (bins of `binnedPeakHours` are counted from it). */
  constructor(
    private readonly horizonMs: number,
    private readonly startMs = 0,
  ) {}

  add(key: LedgerKey, gpus: number, fromMs: number, toMs: number): void {
    if (toMs <= fromMs) return;
    if (PAID_STATES.has(key.state) && fromMs < this.horizonMs) {
      const e = `${key.model}|${key.region}`;
      let steps = this.paidSteps.get(e);
      if (!steps) {
        steps = [];
        this.paidSteps.set(e, steps);
      }
      steps.push(fromMs, gpus, Math.min(toMs, this.horizonMs), -gpus);
    }
    const k = `${key.state}|${key.model}|${key.region}|${key.gpu}|${key.pool}`;
    const inside = Math.max(0, Math.min(toMs, this.horizonMs) - fromMs);
    const outside = toMs - fromMs - inside;
    if (inside > 0) this.inWindow.set(k, (this.inWindow.get(k) ?? 0) + inside * gpus);
    if (outside > 0) this.afterWindow.set(k, (this.afterWindow.get(k) ?? 0) + outside * gpus);
  }

  /** GPU-hours in the window, summed by the chosen dimensions, for states matching `filter`. */
  hours(
    by: (k: LedgerKey) => string,
    filter: (k: LedgerKey) => boolean = (k) => PAID_STATES.has(k.state),
    after = false,
  ): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, ms] of after ? this.afterWindow : this.inWindow) {
      const [state, model, region, gpu, pool] = k.split("|") as [
        InstanceState,
        string,
        string,
        string,
        string,
      ];
      const key = { state, model, region, gpu, pool };
      if (!filter(key)) continue;
      const b = by(key);
      out[b] = (out[b] ?? 0) + ms / 3_600_000;
    }
    return out;
  }

  total(filter?: (k: LedgerKey) => boolean, after = false): number {
    return Object.values(this.hours(() => "all", filter, after)).reduce((a, b) => a + b, 0);
  }

  /**
   * GPU-hours as the paper counts them (its plotting scripts: instance-hours are the sum over 15-minute
   * bins of the most instances an endpoint had in the bin): per (model, region), the most GPUs paid at
   * any moment of each bin, times the bin's length, summed. A VM lent to spot and reclaimed within a bin
   * costs the whole bin here, where `total` counts only the minutes it was paid; the difference is what
   * flapping between two counts saves on the integral and not on this measure.
   */
  binnedPeakHours(binMs = 15 * 60_000): number {
    let gpuMs = 0;
    const bins = Math.ceil((this.horizonMs - this.startMs) / binMs);
    for (const flat of this.paidSteps.values()) {
      const order: number[] = [];
      for (let i = 0; i < flat.length; i += 2) order.push(i);
      order.sort((a, b) => flat[a]! - flat[b]!);
      let level = 0;
      let j = 0;
      for (let b = 0; b < bins; b++) {
        const end = this.startMs + (b + 1) * binMs;
        let peak = level;
        // Every change inside the bin, all changes at one instant applied together (a VM moving from
        // one paid state to the next ends one interval where the next begins).
        while (j < order.length && flat[order[j]!]! < end) {
          const t = flat[order[j]!]!;
          while (j < order.length && flat[order[j]!]! === t) level += flat[order[j++]! + 1]!;
          peak = Math.max(peak, level);
        }
        gpuMs += peak * binMs;
      }
    }
    return gpuMs / 3_600_000;
  }
}
