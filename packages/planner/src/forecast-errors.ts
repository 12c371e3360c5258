/**
 * Every plan's forecast judged against what happened: each forecast is recorded per series and window,
 * given its observed demand once the window has passed, and summed into whole-run errors (the simulator's
 * report). Separate from the forecasters (`forecast.ts`), which score themselves for choosing a model.
 */
import { pairKey } from "@sageserve/protocol";
import type { SeriesState } from "./demand-history.js";

/** One forecast judged against what happened (per series, per plan window). */
export interface ForecastRecord {
  model: string;
  region: string;
  /** Window the forecast was for (epoch ms). */
  fromMs: number;
  toMs: number;
  /** Mean forecast interactive + batch demand (tokens/s) over the window, before bias. */
  forecast: number;
  /** Mean observed demand over the window, once it has passed. */
  actual?: number;
}

/** Give each forecast whose window has passed (before `nowMinute`) the mean demand its series observed over it. */
export function judgeForecasts(
  forecasts: readonly ForecastRecord[],
  series: ReadonlyMap<string, SeriesState>,
  nowMinute: number,
): void {
  for (const f of forecasts) {
    if (f.actual !== undefined || f.toMs > nowMinute * 60_000) continue;
    const s = series.get(pairKey(f.model, f.region));
    if (!s || s.nextMinute === undefined) continue;
    const first = s.nextMinute - s.iw.length; // minute of values[0]
    const from = Math.floor(f.fromMs / 60_000) - first;
    const to = Math.floor(f.toMs / 60_000) - first;
    let sum = 0;
    let n = 0;
    for (let i = Math.max(0, from); i < Math.min(s.iw.length, to); i++) {
      sum += s.iw.values[i]! + s.niw.values[i]!;
      n++;
    }
    if (n > 0) f.actual = sum / n;
  }
}

/** Whole-run forecast error per series: MAPE over windows with demand, sMAPE over windows with either. */
export function forecastErrors(
  records: readonly ForecastRecord[],
  untilMs = Number.POSITIVE_INFINITY,
): Map<string, { mape: number | undefined; smape: number | undefined; windows: number }> {
  const acc = new Map<string, { ape: number[]; sape: number[]; windows: number }>();
  for (const r of records) {
    if (r.actual === undefined || r.toMs > untilMs) continue;
    const k = pairKey(r.model, r.region);
    const a = acc.get(k) ?? { ape: [], sape: [], windows: 0 };
    a.windows++;
    if (r.actual > 0) a.ape.push(Math.abs(r.forecast - r.actual) / r.actual);
    if (r.actual + r.forecast > 0)
      a.sape.push((2 * Math.abs(r.forecast - r.actual)) / (r.actual + r.forecast));
    acc.set(k, a);
  }
  const mean = (xs: number[]) => (xs.length ? xs.reduce((x, y) => x + y, 0) / xs.length : undefined);
  return new Map(
    [...acc].map(([k, a]) => [k, { mape: mean(a.ape), smape: mean(a.sape), windows: a.windows }]),
  );
}
