import { describe, expect, it } from "vitest";
import { DemandSeries, FORECASTERS } from "./forecast.js";

const diurnal = (minute: number) => 1000 + 600 * Math.sin((2 * Math.PI * minute) / 1440);

describe("demand forecasting", () => {
  it("falls back to the observed demand with little history, and never returns NaN or negatives", () => {
    const s = new DemandSeries();
    expect(s.forecast()).toMatchObject({ mean: 0, peak: 0 });
    s.push(500);
    s.push(Number.NaN);
    s.push(-3);
    const f = s.forecast();
    expect(f.model).toBe("last-hour");
    expect(f.mean).toBeCloseTo(500 / 3, 6);
    for (const m of FORECASTERS) {
      const w = s.forecastWith(m);
      expect(Number.isFinite(w.mean) && w.mean >= 0 && w.peak >= w.mean - 1e-9).toBe(true);
    }
  });

  it("learns a daily cycle: after two days it beats persistence and picks a seasonal model", () => {
    const s = new DemandSeries();
    for (let t = 0; t < 3 * 1440; t++) {
      s.push(diurnal(t));
      if (t % 60 === 0) s.forecast(); // hourly planning, scored out of sample
    }
    const now = 3 * 1440;
    const truth = Array.from({ length: 40 }, (_, i) => diurnal(now + 20 + i)).reduce((a, b) => a + b, 0) / 40;
    const f = s.forecast();
    expect(["daily", "holt-winters", "weekly"]).toContain(f.model);
    expect(Math.abs(f.mean - truth) / truth).toBeLessThan(0.05);
    expect(s.error.get(f.model)!).toBeLessThan(s.error.get("last-hour")!);
    expect(f.mape).toBeLessThan(0.05);
  });
});
