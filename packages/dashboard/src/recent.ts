/**
 * SLO attainment over a sliding window (the last `windowMs`), in one-second buckets so memory stays
 * bounded at any request rate. Cumulative attainment alone stays pinned by one burst long after it
 * (one burst of misses held a quiet cluster at 67 % for the rest of its run).
 */
export class RecentSlo {
  private readonly buckets: { second: number; judged: number; met: number }[] = [];

  constructor(readonly windowMs: number) {}

  add(nowMs: number, met: boolean): void {
    const second = Math.floor(nowMs / 1000);
    let last = this.buckets.at(-1);
    if (!last || last.second !== second) {
      last = { second, judged: 0, met: 0 };
      this.buckets.push(last);
    }
    last.judged++;
    if (met) last.met++;
    this.prune(nowMs);
  }

  /** The share of requests finished in the window that met their SLO; null when none finished. */
  attainment(nowMs: number): number | null {
    this.prune(nowMs);
    let judged = 0;
    let met = 0;
    for (const b of this.buckets) {
      judged += b.judged;
      met += b.met;
    }
    return judged ? met / judged : null;
  }

  private prune(nowMs: number): void {
    const oldest = Math.floor((nowMs - this.windowMs) / 1000);
    let drop = 0;
    while (drop < this.buckets.length && this.buckets[drop]!.second <= oldest) drop++;
    if (drop) this.buckets.splice(0, drop);
  }
}
