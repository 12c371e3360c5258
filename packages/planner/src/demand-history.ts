/**
 * The planner's demand history: the routers' per-minute demand reports summed per (model, origin
 * region), moved into per-minute series once each minute is complete, with the interactive length mix
 * of the last hour. Separate from the actor: it is the planner's memory of what happened, which the
 * forecasts, the re-plan check and the forecast judging all read.
 */
import { type DemandReport, type LengthMix, type Payload, pairKey } from "@sageserve/protocol";
import { DemandSeries } from "./forecast.js";

interface MinuteDemand {
  iw: number;
  niw: number;
  iwRequests: number;
  iwInputTokens: number;
  iwOutputTokens: number;
}

export interface SeriesState {
  iw: DemandSeries;
  niw: DemandSeries;
  minutes: Map<number, MinuteDemand>;
  nextMinute: number | undefined;
  /** Interactive length mix per flushed minute (last hour). */
  mix: { requests: number; inputTokens: number; outputTokens: number }[];
  /** The last plan's forecast of this series' interactive demand (tokens/s). */
  forecastIw?: number;
}

export class DemandHistory {
  /** Per "model|region", in the order the series were first seen. */
  readonly series = new Map<string, SeriesState>();

  /** The series of (model, region), created empty on first use. */
  state(model: string, region: string): SeriesState {
    const k = pairKey(model, region);
    let s = this.series.get(k);
    if (!s) {
      s = {
        iw: new DemandSeries(),
        niw: new DemandSeries(),
        minutes: new Map(),
        nextMinute: undefined,
        mix: [],
      };
      this.series.set(k, s);
    }
    return s;
  }

  /** Add a router's report to its minute (several routers sum); the minute it is for. */
  record(d: Payload<typeof DemandReport>): number {
    const s = this.state(d.model, d.region);
    const minute = Math.floor(d.windowStartMs / 60_000);
    const secs = d.windowMs / 1000;
    const tok = (t: { inputTokens: number; outputTokens: number }) => (t.inputTokens + t.outputTokens) / secs;
    const m = s.minutes.get(minute) ?? { iw: 0, niw: 0, iwRequests: 0, iwInputTokens: 0, iwOutputTokens: 0 };
    const f = d.byTier["iw-fast"];
    const n = d.byTier["iw-normal"];
    m.iw += tok(f) + tok(n);
    m.niw += tok(d.byTier.niw);
    m.iwRequests += f.requests + n.requests;
    m.iwInputTokens += f.inputTokens + n.inputTokens;
    m.iwOutputTokens += f.outputTokens + n.outputTokens;
    s.minutes.set(minute, m);
    s.nextMinute ??= minute;
    return minute;
  }

  /** Move complete minutes (before the current one) into the series, zero-filling gaps. */
  flush(nowMinute: number): void {
    for (const s of this.series.values()) {
      if (s.nextMinute === undefined) continue;
      while (s.nextMinute < nowMinute) {
        const m = s.minutes.get(s.nextMinute);
        s.iw.push(m?.iw ?? 0);
        s.niw.push(m?.niw ?? 0);
        s.mix.push({
          requests: m?.iwRequests ?? 0,
          inputTokens: m?.iwInputTokens ?? 0,
          outputTokens: m?.iwOutputTokens ?? 0,
        });
        if (s.mix.length > 60) s.mix.shift();
        s.minutes.delete(s.nextMinute);
        s.nextMinute++;
      }
    }
  }

  /** Interactive length mix of a model over the last hour of demand (all regions). */
  mixOfModel(model: string, regions: readonly string[]): LengthMix | undefined {
    let req = 0;
    let inp = 0;
    let out = 0;
    for (const region of regions) {
      for (const m of this.state(model, region).mix) {
        req += m.requests;
        inp += m.inputTokens;
        out += m.outputTokens;
      }
    }
    return req > 0 ? { meanInputTokens: inp / req, meanOutputTokens: out / req } : undefined;
  }

  /** Whether any series has demand history (a plan before that would plan for nothing). */
  hasHistory(): boolean {
    for (const s of this.series.values()) if (s.iw.length > 0 || s.minutes.size > 0) return true;
    return false;
  }
}

/** Mean interactive demand (tokens/s) the series measured over its last `minutes` complete minutes. */
export function recentIw(s: SeriesState, minutes: number): number {
  const v = s.iw.values.slice(-minutes);
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : 0;
}
