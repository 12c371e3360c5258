import { describe, expect, it } from "vitest";
import { NiwQueue } from "./niw-queue.js";
import {
  DEFAULT_NIW_RELEASE,
  DEFAULT_REACTIVE,
  niwReleaseCount,
  reactiveDecision,
  scaleUpCount,
} from "./policy.js";

const ep = (over: Partial<Parameters<typeof reactiveDecision>[0]> = {}) => ({
  serving: 3,
  pending: 0,
  utilization: 0.4,
  cooldownUntilMs: 0,
  ...over,
});

describe("reactive scaling policy", () => {
  it("adds one instance per decision (the paper), or enough to reach the target utilisation (proportional)", () => {
    expect(scaleUpCount(ep({ serving: 4, utilization: 0.9 }), DEFAULT_REACTIVE)).toBe(1);
    const prop = { ...DEFAULT_REACTIVE, scaleUpStep: "proportional" as const, targetUtilization: 0.4 };
    // 4 × 0.9 / 0.4 = 9 instances needed → 5 more.
    expect(scaleUpCount(ep({ serving: 4, utilization: 0.9 }), prop)).toBe(5);
    expect(scaleUpCount(ep({ serving: 4, utilization: 0.9 }), { ...prop, maxInstances: 6 })).toBe(2);
    expect(scaleUpCount(ep({ serving: 0, pending: 0, utilization: 1 }), prop)).toBe(2); // up to the minimum
  });

  it("with the scale-down guard, keeps an instance whose removal would push the rest over the target", () => {
    const guarded = { ...DEFAULT_REACTIVE, scaleDownGuard: true, targetUtilization: 0.4 };
    // 3 at 0.2 → 2 at 0.3: fine. 3 at 0.24 → 2 at 0.36: fine. 3 at 0.24 with target 0.3 → keep.
    expect(reactiveDecision(ep({ utilization: 0.2 }), guarded, 0)).toBe("down");
    expect(
      reactiveDecision(ep({ utilization: 0.24 }), { ...guarded, targetUtilization: 0.3 }, 0),
    ).toBeUndefined();
    expect(reactiveDecision(ep({ utilization: 0.24 }), DEFAULT_REACTIVE, 0)).toBe("down");
  });

  it("scales up above 0.5 and down below 0.25, with hysteresis in between", () => {
    expect(reactiveDecision(ep({ utilization: 0.6 }), DEFAULT_REACTIVE, 0)).toBe("up");
    expect(reactiveDecision(ep({ utilization: 0.4 }), DEFAULT_REACTIVE, 0)).toBeUndefined();
    expect(reactiveDecision(ep({ utilization: 0.1 }), DEFAULT_REACTIVE, 0)).toBe("down");
  });

  it("respects the cool-down, the minimum size and capacity already on its way", () => {
    expect(
      reactiveDecision(ep({ utilization: 0.9, cooldownUntilMs: 10 }), DEFAULT_REACTIVE, 5),
    ).toBeUndefined();
    expect(reactiveDecision(ep({ utilization: 0.1, serving: 2 }), DEFAULT_REACTIVE, 0)).toBeUndefined();
    expect(reactiveDecision(ep({ serving: 1, utilization: 0 }), DEFAULT_REACTIVE, 0)).toBe("up");
    expect(reactiveDecision(ep({ utilization: 0.9, pending: 1 }), DEFAULT_REACTIVE, 0)).toBeUndefined();
  });

  it("releases NIW work as the paper intends: two below 50 %, one below 60 %, none above", () => {
    expect(niwReleaseCount(0.3, DEFAULT_NIW_RELEASE)).toBe(2);
    expect(niwReleaseCount(0.55, DEFAULT_NIW_RELEASE)).toBe(1);
    expect(niwReleaseCount(0.7, DEFAULT_NIW_RELEASE)).toBe(0);
  });

  it("queues NIW jobs earliest deadline first, FIFO among equal deadlines", () => {
    const q = new NiwQueue();
    const job = (jobId: string, deadlineMs: number) =>
      ({
        jobId,
        requestId: jobId,
        model: "m",
        originRegion: "r",
        inputTokens: 1,
        maxOutputTokens: 1,
        arrivalMs: 0,
        deadlineMs,
        enqueuedAtMs: 0,
      }) as const;
    q.push(job("late", 300));
    q.push(job("early", 100));
    q.push(job("mid-1", 200));
    q.push(job("mid-2", 200));
    expect([q.pop(), q.pop(), q.pop(), q.pop(), q.pop()].map((j) => j?.jobId)).toEqual([
      "early",
      "mid-1",
      "mid-2",
      "late",
      undefined,
    ]);
  });
});
