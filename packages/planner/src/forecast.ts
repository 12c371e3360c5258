/**
 * Demand forecasting per series (one model in one region), at 1-minute
 * granularity, for a planning window (the planner asks for [now, next plan + boot lead]; the
 * reference's is t+20 … t+60 min). A small ensemble —
 * persistence (last hour), seasonal-naive (same minutes yesterday, last week)
 * and Holt-Winters (additive, daily season on 10-minute buckets) — with the
 * model chosen per series by its recent out-of-sample error. Forecasts are
 * never negative or NaN; a series with no history falls back to the current
 * observed demand.
 */
export const FORECASTERS = ["last-hour", "daily", "weekly", "holt-winters"] as const;
export type ForecasterName = (typeof FORECASTERS)[number];

const DAY = 1440;
const WEEK = 7 * DAY;

export interface WindowForecast {
  /** Mean demand over the window. */
  mean: number;
  /** Highest 1-minute demand over the window (what the reference plans for). */
  peak: number;
  /** The forecast minute by minute over the window. */
  points?: number[];
}

function clean(x: number): number {
  return Number.isFinite(x) && x > 0 ? x : 0;
}

/** A per-minute series; index 0 is the first minute observed. */
export class DemandSeries {
  readonly values: number[] = [];
  private readonly pending = new Map<
    ForecasterName,
    { dueMinute: number; span: number; predicted: number }[]
  >();
  /** Exponentially weighted absolute percentage error per forecaster. */
  readonly error = new Map<ForecasterName, number>();
  private errorCount = 0;

  /** Record the demand of the next minute (tokens/s). */
  push(v: number): void {
    this.values.push(clean(v));
    this.score();
  }

  get length(): number {
    return this.values.length;
  }

  /** Forecast of the window [now+from, now+to) minutes with one forecaster. */
  forecastWith(name: ForecasterName, from = 20, to = 60): WindowForecast {
    const n = this.values.length;
    if (n === 0) return { mean: 0, peak: 0 };
    const pts: number[] = [];
    for (let h = from; h < to; h++) pts.push(clean(this.pointForecast(name, n + h)));
    const mean = pts.reduce((a, b) => a + b, 0) / pts.length;
    return { mean: clean(mean), peak: clean(Math.max(...pts)), points: pts };
  }

  /** The forecaster with the lowest recent error (last-hour until enough history is scored). */
  best(): ForecasterName {
    if (this.errorCount < 3) return "last-hour";
    let best: ForecasterName = "last-hour";
    let bestErr = Number.POSITIVE_INFINITY;
    for (const f of FORECASTERS) {
      const e = this.error.get(f);
      if (e !== undefined && e < bestErr) {
        best = f;
        bestErr = e;
      }
    }
    return best;
  }

  /**
   * Forecast the planning window with the best forecaster, and remember every
   * forecaster's prediction so it is scored when the window has happened.
   */
  forecast(from = 20, to = 60): WindowForecast & { model: ForecasterName; mape: number | undefined } {
    const n = this.values.length;
    for (const f of FORECASTERS) {
      const p = this.forecastWith(f, from, to);
      const list = this.pending.get(f) ?? [];
      list.push({ dueMinute: n + to, span: to - from, predicted: p.mean });
      this.pending.set(f, list);
    }
    const model = this.best();
    return { ...this.forecastWith(model, from, to), model, mape: this.error.get(model) };
  }

  private score(): void {
    const n = this.values.length;
    for (const [f, list] of this.pending) {
      while (list.length && list[0]!.dueMinute <= n) {
        const { dueMinute, span, predicted } = list.shift()!;
        const actual = mean(this.values.slice(Math.max(0, dueMinute - span), dueMinute));
        const ape = Math.abs(predicted - actual) / Math.max(actual, 1e-9);
        const prev = this.error.get(f);
        this.error.set(f, prev === undefined ? Math.min(ape, 10) : 0.7 * prev + 0.3 * Math.min(ape, 10));
        this.errorCount++;
      }
    }
  }

  private pointForecast(name: ForecasterName, t: number): number {
    const v = this.values;
    const n = v.length;
    const lastHour = mean(v.slice(Math.max(0, n - 60)));
    switch (name) {
      case "last-hour":
        return lastHour;
      case "daily":
      case "weekly": {
        const period = name === "daily" ? DAY : WEEK;
        let back = t - period;
        while (back >= n) back -= period;
        return back >= 0 ? (v[back] ?? lastHour) : lastHour;
      }
      case "holt-winters":
        return this.holtWinters(t);
    }
  }

  private hwCache: { n: number; level: number; trend: number; season: number[] } | undefined;

  /** Additive Holt-Winters on 10-minute buckets with a daily season (144 buckets). */
  private holtWinters(t: number): number {
    const B = 10;
    const P = DAY / B;
    const n = this.values.length;
    const buckets = Math.floor(n / B);
    if (buckets < 2 * P) return this.pointForecast("daily", t);
    if (!this.hwCache || this.hwCache.n !== buckets) {
      const y: number[] = [];
      for (let i = 0; i < buckets; i++) y.push(mean(this.values.slice(i * B, (i + 1) * B)));
      const alpha = 0.3;
      const beta = 0.01;
      const gamma = 0.2;
      let level = mean(y.slice(0, P));
      let trend = (mean(y.slice(P, 2 * P)) - level) / P;
      const season = y.slice(0, P).map((x) => x - level);
      for (let i = P; i < y.length; i++) {
        const s = season[i % P]!;
        const prevLevel = level;
        level = alpha * (y[i]! - s) + (1 - alpha) * (level + trend);
        trend = beta * (level - prevLevel) + (1 - beta) * trend;
        season[i % P] = gamma * (y[i]! - level) + (1 - gamma) * s;
      }
      this.hwCache = { n: buckets, level, trend, season };
    }
    const h = Math.floor(t / B) - (buckets - 1);
    const c = this.hwCache;
    return c.level + h * c.trend + c.season[Math.floor(t / B) % P]!;
  }
}

function mean(xs: number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
}
