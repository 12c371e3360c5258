import { describe, expect, it } from "vitest";
import { GpuLedger, type LedgerKey } from "./ledger.js";

const MIN = 60_000;
const key = (state: LedgerKey["state"], model = "m", region = "r"): LedgerKey => ({
  state,
  model,
  region,
  gpu: "h100",
  pool: "",
});

describe("GpuLedger: the paper's binned peak beside the integral", () => {
  it("charges a bin the most GPUs paid in it; the integral charges only the minutes paid", () => {
    // One hour, four 15-minute bins. A floor VM all hour; a second VM paid 10:00–10:05 (bin 0) and lent
    // to spot and reclaimed twice more, 20:00–21:00 and 50:00–59:00 (bins 1 and 3).
    const L = new GpuLedger(60 * MIN);
    L.add(key("serving"), 8, 0, 60 * MIN);
    L.add(key("serving"), 8, 10 * MIN, 15 * MIN);
    L.add(key("spot"), 8, 15 * MIN, 20 * MIN);
    L.add(key("serving"), 8, 20 * MIN, 21 * MIN);
    L.add(key("spot"), 8, 21 * MIN, 50 * MIN);
    L.add(key("serving"), 8, 50 * MIN, 59 * MIN);
    expect(L.total()).toBeCloseTo(8 + (8 * 15) / 60, 9); // 8 GPU-h of floor + 15 paid minutes of 8 GPUs
    // Bins: 16, 16, 8, 16 GPUs at their peak → (16 + 16 + 8 + 16) × 0.25 h.
    expect(L.binnedPeakHours()).toBeCloseTo(14, 9);
  });

  it("does not count a VM twice where one paid state ends and the next begins, and sums endpoints", () => {
    const L = new GpuLedger(30 * MIN);
    // booting → loading → serving: one VM all the way, whatever order the intervals were booked in.
    L.add(key("serving"), 8, 10 * MIN, 30 * MIN);
    L.add(key("booting"), 8, 0, 5 * MIN);
    L.add(key("loading"), 8, 5 * MIN, 10 * MIN);
    L.add(key("serving", "other"), 4, 0, 30 * MIN);
    expect(L.binnedPeakHours()).toBeCloseTo((8 + 4) * 0.5, 9);
    expect(L.total()).toBeCloseTo((8 + 4) * 0.5, 9);
  });

  it("counts bins from the window's start and stops at its end", () => {
    const start = 1_000_000;
    const L = new GpuLedger(start + 30 * MIN, start);
    L.add(key("serving"), 8, start + 14 * MIN, start + 16 * MIN); // touches bins 0 and 1
    L.add(key("serving"), 8, start + 25 * MIN, start + 90 * MIN); // past the window: cut at its end
    expect(L.binnedPeakHours()).toBeCloseTo(8 * 0.25 * 2, 9);
  });
});
