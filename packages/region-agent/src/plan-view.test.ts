import { CapacityModel } from "@sageserve/protocol";
import { VirtualClock } from "@sageserve/runtime";
import { describe, expect, it } from "vitest";
import { PlanView } from "./plan-view.js";

// One instance of "m" carries 1 request/s of 100 + 100 tokens (200 tokens/s); no pooling: ⌈tokens/s ÷ 200⌉.
const CAP = new CapacityModel({
  m: { h100: [{ meanInputTokens: 100, meanOutputTokens: 100, rps: 1, default: true }] },
});
const empty = { requests: 0, inputTokens: 0, outputTokens: 0 };

/** A view fed ten one-minute windows of `perMinute[i]` interactive requests, read at the end of the last. */
async function viewAfter(perMinute: number[], holdMeanWindows?: number): Promise<PlanView> {
  const clock = new VirtualClock({ seed: 1, startMs: 0 });
  const view = new PlanView(clock, "east", CAP, ["h100"], 300_000, undefined, holdMeanWindows);
  for (const [i, n] of perMinute.entries())
    view.recordDemand({
      region: "east",
      model: "m",
      windowStartMs: i * 60_000,
      windowMs: 60_000,
      byTier: {
        "iw-fast": { requests: n, inputTokens: 100 * n, outputTokens: 100 * n },
        "iw-normal": empty,
        niw: empty,
      },
    });
  await clock.advance(perMinute.length * 60_000);
  return view;
}

describe("PlanView.demandFloor's hold", () => {
  // 1 request/s for ten minutes but for one minute of 5/s, five minutes before the end.
  const spike = [60, 60, 60, 60, 60, 300, 60, 60, 60, 60];

  it("holds the most any single window needed by default", async () => {
    expect((await viewAfter(spike)).demandFloor("m", "h100")).toEqual({ up: 2, hold: 5 });
    expect((await viewAfter(spike, 1)).demandFloor("m", "h100")).toEqual({ up: 2, hold: 5 });
  });

  it("holds the most the 5-window mean needed with holdMeanWindows 5: the demand's peak, not one minute's", async () => {
    // Every mean with the spike in it: (4 × 60 + 300) / 5 = 108 requests a minute, 1.8/s: two instances.
    expect((await viewAfter(spike, 5)).demandFloor("m", "h100")).toEqual({ up: 2, hold: 2 });
    // A level that lasts holds the same either way.
    const level = [60, 60, 60, 60, 60, 300, 300, 300, 300, 300];
    expect((await viewAfter(level, 5)).demandFloor("m", "h100").hold).toBe(5);
    expect((await viewAfter(level, 1)).demandFloor("m", "h100").hold).toBe(5);
  });

  it("looks back over the ten windows only: a spike that has left the means is not held", async () => {
    // Fifteen windows: the hold's ten and the four before its first that its first mean takes in.
    const minutes = [300, ...Array(14).fill(60)];
    expect((await viewAfter(minutes, 1)).demandFloor("m", "h100").hold).toBe(1);
    expect((await viewAfter(minutes, 5)).demandFloor("m", "h100").hold).toBe(1);
  });
});
