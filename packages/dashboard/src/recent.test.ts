import { describe, expect, it } from "vitest";
import { RecentSlo } from "./recent.js";

describe("recent SLO attainment", () => {
  it("forgets what finished more than the window ago", () => {
    const r = new RecentSlo(300_000);
    expect(r.attainment(0)).toBeNull();
    for (let i = 0; i < 3; i++) r.add(1_000, false);
    r.add(2_000, true);
    expect(r.attainment(2_000)).toBe(0.25);
    r.add(302_500, true);
    // The misses at 1 s are out of the window at 302.5 s; the hit at 2 s is not.
    expect(r.attainment(302_500)).toBe(1);
    expect(r.attainment(700_000)).toBeNull();
  });
});
