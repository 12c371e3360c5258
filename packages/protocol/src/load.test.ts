import { describe, expect, it } from "vitest";
import { instanceLoad } from "./domain.js";

describe("instanceLoad", () => {
  it("is KV use, or sequence slots when fuller", () => {
    expect(instanceLoad({ kvUtilization: 0.3, running: 10, waiting: 0, maxRunning: 100 })).toBe(0.3);
    expect(instanceLoad({ kvUtilization: 0.1, running: 60, waiting: 20, maxRunning: 100 })).toBe(0.8);
    expect(instanceLoad({ kvUtilization: 0.1, running: 600, waiting: 0 })).toBe(0.1); // no limit known
  });

  it("is interactive arrivals over the instance's SLO capacity where that is known", () => {
    const r = { kvUtilization: 0.1, running: 40, waiting: 0, maxRunning: 512 };
    expect(instanceLoad({ ...r, iwRps: 2.5, iwCapacityRps: 5 })).toBe(0.5);
    expect(instanceLoad({ ...r, iwRps: 2.5 })).toBe(0.1); // capacity unknown: not used
  });

  it("sees a prefill-bound queue through the oldest interactive wait against the TTFT target", () => {
    // 70 of 512 sequences, 12 % KV: idle by both — but the oldest IW-fast request has waited 1.3 s.
    const r = { kvUtilization: 0.12, running: 70, waiting: 90, maxRunning: 512 };
    expect(instanceLoad(r)).toBeCloseTo(160 / 512, 9);
    expect(instanceLoad({ ...r, iwFastWaitMs: 1_300 })).toBeCloseTo(1.3, 9);
    expect(instanceLoad({ ...r, iwNormalWaitMs: 45_000 })).toBeCloseTo(0.75, 9); // of 60 s
    expect(instanceLoad({ ...r, iwFastWaitMs: 400 }, { "iw-fast": 500, "iw-normal": 60_000 })).toBeCloseTo(
      0.8,
      9,
    );
  });
});
