import { createRng } from "@sageserve/runtime";
import { describe, expect, it } from "vitest";
import { type ArrivalStream, burstShape, generateArrivals, sortByArrival } from "./arrivals.js";
import { drain } from "./types.js";

const tokens = { inputTokens: [100, 100], outputTokens: [10, 10] };

/** Variance-to-mean ratio of the 10-second counts of `ratePerS` arrivals with inter-arrival CV `cv`. */
function fano10s(ratePerS: number, cv: number, hours: number, seed = 3): { fano: number; mean: number } {
  const stream: ArrivalStream = {
    model: "m",
    region: "r",
    tier: "iw-fast",
    rateAt: () => ratePerS / 1000,
    burstCvAt: () => cv,
    tokensAt: () => tokens,
  };
  const durationMs = hours * 3_600_000;
  const w = generateArrivals(
    {
      name: "t",
      durationMs,
      models: ["m"],
      regions: ["r"],
      streams: [stream],
      tierMix: { "iw-fast": 1, "iw-normal": 0, niw: 0 },
      niwDeadlineMs: 86_400_000,
      maxInputTokens: 1_000,
    },
    createRng(seed, "arrivals-test"),
  );
  const counts = new Array<number>(Math.ceil(durationMs / 10_000)).fill(0);
  for (const r of drain(w)) counts[Math.floor(r.arrivalMs / 10_000)]!++;
  const mean = counts.reduce((a, b) => a + b, 0) / counts.length;
  const v = counts.reduce((a, b) => a + (b - mean) ** 2, 0) / counts.length;
  return { fano: v / mean, mean };
}

describe("burstiness of generated arrivals", () => {
  it("keeps the 10-second counts' variance-to-mean at cv² whatever the rate (a quiet and a busy stream)", () => {
    // cv 1.5 → 2.25. A quiet stream (one arrival per 10 s) and a busy one (300 per 10 s) alike: a busy
    // stream is a superposition of quiet ones, so its relative swings shrink, not stay.
    const quiet = fano10s(0.1, 1.5, 48);
    const busy = fano10s(30, 1.5, 12);
    expect(quiet.mean).toBeCloseTo(1, 0);
    expect(busy.mean).toBeGreaterThan(290);
    expect(quiet.fano).toBeGreaterThan(1.9);
    expect(quiet.fano).toBeLessThan(2.6);
    expect(busy.fano).toBeGreaterThan(1.9);
    expect(busy.fano).toBeLessThan(2.6);
    // Poisson stays Poisson.
    const poisson = fano10s(30, 1, 6);
    expect(poisson.fano).toBeGreaterThan(0.85);
    expect(poisson.fano).toBeLessThan(1.15);
  });

  it("derives the rate multiplier's shape from the expected count: n / (cv² − 1), never below 1 / (cv² − 1)", () => {
    expect(burstShape(1)).toBe(0);
    expect(burstShape(1.5)).toBeCloseTo(0.8, 10);
    expect(burstShape(1.5, 0.2)).toBeCloseTo(0.8, 10);
    expect(burstShape(1.5, 300)).toBeCloseTo(240, 10);
  });
});

describe("sortByArrival", () => {
  it("orders like a stable comparator sort: counting sort on a minute, fallback on a wide span or fractions", () => {
    const rng = createRng(5, "sort-test");
    const make = (n: number, span: number, frac = false) =>
      Array.from({ length: n }, (_, i) => ({
        id: i, // generation order: ties must keep it
        arrivalMs: (frac ? rng.next() * span : Math.floor(rng.next() * span)) + 3_600_000,
        model: "m",
        region: "r",
        tier: "iw-fast" as const,
        inputTokens: 1,
        outputTokens: 1,
      }));
    for (const [n, span, frac] of [
      [5_000, 60_000, false], // a minute: counting sort, many ties
      [5_000, 100, false], // dense ties
      [200, 1e9, false], // sparse: comparator sort
      [1_000, 60_000, true], // fractional times: comparator sort
      [10, 60_000, false], // small
    ] as const) {
      const reqs = make(n, span, frac);
      const want = [...reqs].sort((a, b) => a.arrivalMs - b.arrivalMs).map((r) => r.id);
      expect(sortByArrival([...reqs]).map((r) => r.id)).toEqual(want);
    }
  });
});
