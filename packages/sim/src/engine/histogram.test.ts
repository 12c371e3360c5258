import { describe, expect, it } from "vitest";
import { LogHistogram } from "./histogram.js";

/** The exact nearest-rank percentile of `xs` (the oracle the histogram approximates). */
const exact = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(1, Math.ceil((p / 100) * s.length)) - 1]!;
};

describe("LogHistogram", () => {
  it("gives every percentile within its 1 % bucket of the exact nearest-rank value, over six decades", () => {
    let x = 7;
    const rnd = () => {
      x = (x * 16807) % 2147483647;
      return x / 2147483647;
    };
    const xs = Array.from({ length: 20_000 }, () => 0.05 * 10 ** (6 * rnd())); // 0.05 ms … 50 s, log-uniform
    const h = new LogHistogram();
    for (const v of xs) h.add(v);
    for (const p of [1, 10, 50, 90, 99, 99.9]) {
      const want = exact(xs, p);
      const got = h.percentile(p);
      // The bucket's upper bound: never below the exact value, at most one bucket (1 %) above it.
      expect(got, `p${p}`).toBeGreaterThanOrEqual(want);
      expect(got / want, `p${p}`).toBeLessThanOrEqual(1.0101);
    }
    expect(h.count).toBe(xs.length);
    expect(h.mean).toBeCloseTo(xs.reduce((a, b) => a + b, 0) / xs.length, 6);
    expect(h.percentile(100)).toBe(Math.max(...xs));
  });

  it("is 0 when empty, caps at the largest sample, and puts tiny values in the first bucket", () => {
    const h = new LogHistogram();
    expect(h.percentile(50)).toBe(0);
    expect(h.mean).toBe(0);
    h.add(0);
    h.add(0.001);
    expect(h.percentile(100)).toBe(0.001); // capped at the max seen, not the bucket bound (0.01)
    h.add(5);
    expect(h.percentile(50)).toBe(0.01);
    expect(h.percentile(99)).toBe(5);
    expect(h.max).toBe(5);
  });

  it("counts by bucket, not by sample: two million samples of one distribution give its percentile", () => {
    const h = new LogHistogram();
    for (let i = 0; i < 1_000_000; i++) h.add((i % 5_000) + 1);
    const p = h.percentile(99);
    for (let i = 0; i < 1_000_000; i++) h.add((i % 5_000) + 1);
    expect(h.count).toBe(2_000_000);
    expect(h.percentile(99)).toBe(p); // same distribution, same answer
    expect(p / 4_950).toBeGreaterThanOrEqual(1);
    expect(p / 4_950).toBeLessThanOrEqual(1.0101);
  });
});
