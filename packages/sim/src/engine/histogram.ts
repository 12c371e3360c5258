/**
 * Latency histogram with logarithmic buckets (≈1 % relative resolution from
 * 0.01 ms to hours): constant memory for ten million samples, mergeable,
 * deterministic percentiles.
 */
const MIN = 0.01;
const GROWTH = 1.01;
const LOG_GROWTH = Math.log(GROWTH);
const BUCKETS = Math.ceil(Math.log(1e9 / MIN) / LOG_GROWTH) + 2;

export class LogHistogram {
  private readonly counts = new Uint32Array(BUCKETS);
  count = 0;
  sum = 0;
  max = 0;

  add(v: number): void {
    const i = v <= MIN ? 0 : Math.min(BUCKETS - 1, 1 + Math.floor(Math.log(v / MIN) / LOG_GROWTH));
    this.counts[i]!++;
    this.count++;
    this.sum += v;
    if (v > this.max) this.max = v;
  }

  /** The value below which p % of samples fall (bucket upper bound, capped at the max seen). */
  percentile(p: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil((p / 100) * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(this.max, i === 0 ? MIN : MIN * GROWTH ** i);
    }
    return this.max;
  }

  get mean(): number {
    return this.count ? this.sum / this.count : 0;
  }
}
