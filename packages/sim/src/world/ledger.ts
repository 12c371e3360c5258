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

  constructor(private readonly horizonMs: number) {}

  add(key: LedgerKey, gpus: number, fromMs: number, toMs: number): void {
    if (toMs <= fromMs) return;
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
}
