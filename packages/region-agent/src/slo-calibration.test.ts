import { describe, expect, it } from "vitest";
import { DEFAULT_SLO_CALIBRATION, SloCalibration, type SloCalibrationConfig } from "./slo-calibration.js";

const MIN = 60_000;
const cfg: SloCalibrationConfig = {
  ...DEFAULT_SLO_CALIBRATION,
  enabled: true,
  low: 0.99,
  high: 0.995,
  windowMs: 60 * MIN,
  stepMs: 10 * MIN,
  minSamples: 100,
  down: 0.1,
  up: 0.05,
  min: 0.8,
  max: 1.2,
};

/** `n` finished requests of `model` spread over the minute before `atMs`, `missed` of them late. */
function feed(c: SloCalibration, model: string, atMs: number, n: number, missed: number): void {
  for (let i = 0; i < n; i++) c.record(model, atMs - MIN + (i * MIN) / n, i < missed);
}

describe("SloCalibration", () => {
  it("lowers a model's capacity factor while its attainment is below the band, down to the bound", () => {
    const c = new SloCalibration(cfg);
    const seen: number[] = [];
    for (let t = MIN; t <= 120 * MIN; t += MIN) {
      feed(c, "m", t, 100, 5); // 95 %
      seen.push(c.update("m", t, true));
    }
    expect(seen[0]).toBeCloseTo(0.9); // the first step as soon as there is evidence
    expect(seen[9]).toBeCloseTo(0.9); // no second step inside stepMs
    expect(seen[10]).toBeCloseTo(0.81);
    expect(Math.min(...seen)).toBe(0.8);
    expect(c.factor("m")).toBe(0.8);
    expect(c.factor("other")).toBe(1); // per model
    expect(c.factors()).toEqual({ m: 0.8 });
  });

  it("raises it above the band only while the capacity model's count binds, a window after each change", () => {
    const c = new SloCalibration(cfg);
    for (let t = MIN; t <= 180 * MIN; t += MIN) {
      feed(c, "m", t, 100, 0);
      c.update("m", t, false); // held by its floor or by utilisation: no wind-up
    }
    expect(c.factor("m")).toBe(1);
    const ups: number[] = [];
    for (let t = 181 * MIN; t <= 600 * MIN; t += MIN) {
      feed(c, "m", t, 100, 0);
      const before = c.factor("m");
      if (c.update("m", t, true) > before) ups.push(t);
    }
    expect(ups.length).toBeGreaterThan(2);
    for (let i = 1; i < ups.length; i++) expect(ups[i]! - ups[i - 1]!).toBeGreaterThanOrEqual(cfg.windowMs);
    expect(c.factor("m")).toBe(1.2);
  });

  it("holds inside the band, without evidence, and when disabled", () => {
    const c = new SloCalibration(cfg);
    for (let t = MIN; t <= 120 * MIN; t += MIN) {
      feed(c, "in-band", t, 1000, 7); // 99.3 %
      feed(c, "quiet", t, 1, 1); // 60 late requests an hour: below minSamples
      c.update("in-band", t, true);
      c.update("quiet", t, true);
    }
    expect(c.factor("in-band")).toBe(1);
    expect(c.factor("quiet")).toBe(1);
    const off = new SloCalibration({ ...cfg, enabled: false });
    for (let t = MIN; t <= 60 * MIN; t += MIN) {
      feed(off, "m", t, 100, 50);
      expect(off.update("m", t, true)).toBe(1);
    }
    expect(off.factors()).toEqual({});
  });

  it("forgets misses older than its window", () => {
    const c = new SloCalibration({ ...cfg, min: 0.9 });
    feed(c, "m", MIN, 200, 100);
    expect(c.update("m", MIN, true)).toBeCloseTo(0.9);
    // Two hours of clean traffic later, the late minute is out of the window: the factor may rise again.
    for (let t = 2 * MIN; t <= 150 * MIN; t += MIN) {
      feed(c, "m", t, 100, 0);
      c.update("m", t, true);
    }
    expect(c.factor("m")).toBeGreaterThan(0.9);
  });
});
