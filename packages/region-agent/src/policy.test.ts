import { describe, expect, it } from "vitest";
import { NiwQueue } from "./niw-queue.js";
import {
  batchRunsAgain,
  DEFAULT_NIW_RELEASE,
  DEFAULT_REACTIVE,
  niwReleaseCount,
  niwReleaseKind,
  niwRunLost,
  reactiveDecision,
  SloWindow,
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
  it("scales an endpoint with minInstances 0 to zero only after it has been idle, and back only when wanted", () => {
    const zero = { ...DEFAULT_REACTIVE, minInstances: 0, zeroAfterIdleMs: 600_000 };
    // At zero: nothing happens until a router holds requests for it; then up, even inside a cool-down.
    expect(reactiveDecision(ep({ serving: 0, utilization: 1 }), zero, 0)).toBeUndefined();
    expect(
      reactiveDecision(ep({ serving: 0, utilization: 1, wanted: true, cooldownUntilMs: 10 }), zero, 0),
    ).toBe("up");
    expect(scaleUpCount(ep({ serving: 0, utilization: 1, wanted: true }), zero)).toBe(1);
    // The last instance: idle long enough → down; busy recently or something arriving → stays.
    expect(reactiveDecision(ep({ serving: 1, utilization: 0, idleMs: 600_000 }), zero, 0)).toBe("down");
    expect(reactiveDecision(ep({ serving: 1, utilization: 0, idleMs: 599_999 }), zero, 0)).toBeUndefined();
    expect(
      reactiveDecision(ep({ serving: 1, utilization: 0, idleMs: 600_000, pending: 1 }), zero, 0),
    ).toBeUndefined();
    // …but a busy last instance still scales up.
    expect(reactiveDecision(ep({ serving: 1, utilization: 0.9 }), zero, 0)).toBe("up");
    // The default floor of 2 never goes below it, idle or not.
    expect(
      reactiveDecision(ep({ serving: 2, utilization: 0, idleMs: 3_600_000 }), DEFAULT_REACTIVE, 0),
    ).toBeUndefined();
  });

  it("with the SLO guard, scales up on TTFT misses at low utilisation and holds scale-down while they last", () => {
    const guard = { ...DEFAULT_REACTIVE, sloScaleUpAbove: 0.02 };
    // 5 % of recent IW-fast requests missed although KV looks idle: add capacity.
    expect(reactiveDecision(ep({ utilization: 0.3, sloMissRate: 0.05 }), guard, 0)).toBe("up");
    // Not without the guard (the paper's policy), and not while capacity is on its way.
    expect(
      reactiveDecision(ep({ utilization: 0.3, sloMissRate: 0.05 }), DEFAULT_REACTIVE, 0),
    ).toBeUndefined();
    expect(
      reactiveDecision(ep({ utilization: 0.3, sloMissRate: 0.05, pending: 1 }), guard, 0),
    ).toBeUndefined();
    // Low utilisation would scale down, but 1 % misses (above a quarter of 2 %) hold it; 0.2 % does not.
    expect(reactiveDecision(ep({ utilization: 0.1, sloMissRate: 0.01 }), guard, 0)).toBeUndefined();
    expect(reactiveDecision(ep({ utilization: 0.1, sloMissRate: 0.002 }), guard, 0)).toBe("down");
  });

  it("counts TTFT misses over a sliding window, and says nothing on too few samples", () => {
    const w = new SloWindow(60_000, 6, 20);
    for (let i = 0; i < 10; i++) w.add(1_000 + i, i < 5);
    expect(w.missRate(2_000)).toBe(0); // 10 samples < 20: no evidence
    for (let i = 0; i < 30; i++) w.add(15_000 + i, false);
    expect(w.missRate(20_000)).toBeCloseTo(5 / 40);
    // A minute later the first bucket has left the window: 0 misses in the 30 that remain.
    expect(w.missRate(62_000)).toBe(0);
    // And two minutes later nothing is left: no evidence again.
    for (let i = 0; i < 5; i++) w.add(130_000, true);
    expect(w.missRate(130_000)).toBe(0);
  });

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
    // The backlog by deadline, cumulative: (2 tokens per job) due within 100 ms, 200 ms and 10 minutes of t = 0.
    expect(q.backlog(0, [100 / 60_000, 200 / 60_000, 10])).toEqual([
      { withinMinutes: 100 / 60_000, jobs: 1, tokens: 2 },
      { withinMinutes: 200 / 60_000, jobs: 3, tokens: 6 },
      { withinMinutes: 10, jobs: 4, tokens: 8 },
    ]);
    expect([q.pop(), q.pop(), q.pop(), q.pop(), q.pop()].map((j) => j?.jobId)).toEqual([
      "early",
      "mid-1",
      "mid-2",
      "late",
      undefined,
    ]);
  });

  it("keeps order and backlog exact against a plain sort over random pushes and pops (deadline bins)", () => {
    let seed = 7;
    const rand = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const q = new NiwQueue();
    // The reference: every queued job with its arrival order, sorted by (deadline, arrival) when asked.
    let ref: { deadlineMs: number; seq: number; jobId: string; tokens: number }[] = [];
    let seq = 0;
    let now = 0;
    const bounds = [0.5, 1, 30, 60, 240, 1440];
    for (let step = 0; step < 4_000; step++) {
      now += rand() * 20_000;
      const r = rand();
      if (r < 0.6) {
        // Deadlines from overdue to a day ahead; some on exact minute edges, some repeated, some fractional.
        const kind = rand();
        const deadlineMs =
          kind < 0.2
            ? Math.round(now / 60_000 + rand() * 30) * 60_000
            : kind < 0.3 && ref.length
              ? ref[Math.floor(rand() * ref.length)]!.deadlineMs
              : now - 120_000 + rand() * 86_400_000 + (kind < 0.5 ? 0.25 : 0);
        const jobId = `j${seq}`;
        const inputTokens = 1 + Math.floor(rand() * 100);
        q.push({
          jobId,
          requestId: jobId,
          model: "m",
          originRegion: "r",
          inputTokens,
          maxOutputTokens: 7,
          arrivalMs: now,
          deadlineMs,
          enqueuedAtMs: now,
        });
        ref.push({ deadlineMs, seq: seq++, jobId, tokens: inputTokens + 7 });
      } else if (r < 0.95) {
        ref.sort((a, b) => a.deadlineMs - b.deadlineMs || a.seq - b.seq);
        expect(q.peek()?.jobId).toBe(ref[0]?.jobId);
        expect(q.pop()?.jobId).toBe(ref.shift()?.jobId);
      } else {
        const want = bounds.map((withinMinutes) => {
          const due = ref.filter((j) => (j.deadlineMs - now) / 60_000 <= withinMinutes);
          return { withinMinutes, jobs: due.length, tokens: due.reduce((a, j) => a + j.tokens, 0) };
        });
        expect(q.backlog(now, bounds)).toEqual(want);
      }
      expect(q.size).toBe(ref.length);
    }
    ref = ref.sort((a, b) => a.deadlineMs - b.deadlineMs || a.seq - b.seq);
    for (const j of ref) expect(q.pop()?.jobId).toBe(j.jobId);
    expect(q.pop()).toBeUndefined();
    expect(q.size).toBe(0);
  });
});

describe("NIW release of the queue's head", () => {
  const cfg = { ...DEFAULT_NIW_RELEASE, escalateBeforeDeadlineMs: 1_000 };
  // [due in ms, cost tokens, budget, allowance tokens, utilisation] → kind
  const cases: [number, number, number, number | undefined, number, string][] = [
    [1_000, 10, 0, undefined, 1, "urgent"], // within the escalation bound: whatever else
    [1_001, 10, 1, undefined, 0.95, "budget"], // a utilisation-based release left
    [1_001, 10, 0, 10, 0.5, "paced"], // the plan's allowance covers it, below 0.9
    [1_001, 10, 0, 9, 0.5, "hold"], // allowance short
    [1_001, 10, 0, 10, 0.9, "hold"], // too busy for paced work
    [1_001, 10, 0, undefined, 0, "hold"], // no plan rate, no budget
  ];
  it.each(cases)(
    "due %i, cost %i, budget %i, allowance %s, utilisation %s → %s",
    (due, cost, b, a, u, kind) => {
      expect(niwReleaseKind(due, cost, b, a, u, cfg)).toBe(kind);
    },
  );

  it("runs a failed Batch API request again until its last attempt", () => {
    expect(batchRunsAgain("failed", "k", 0, 3)).toBe(true);
    expect(batchRunsAgain("failed", "k", 1, 3)).toBe(true);
    expect(batchRunsAgain("failed", "k", 2, 3)).toBe(false); // the last run: its failure is stored
    expect(batchRunsAgain("failed", undefined, 0, 3)).toBe(false); // not a Batch API request
    expect(batchRunsAgain("ok", "k", 0, 3)).toBe(false);
  });

  it("counts a released job lost once it ran past the stale bound and its instance is gone", () => {
    const fresh = { atMs: 90, state: "serving" };
    expect(niwRunLost(0, undefined, 100, 100)).toBe(false); // too recent to judge
    expect(niwRunLost(0, undefined, 101, 100)).toBe(true); // instance unknown
    expect(niwRunLost(0, fresh, 101, 100)).toBe(false); // still reporting
    expect(niwRunLost(0, { atMs: 0, state: "serving" }, 101, 100)).toBe(true); // silent past the bound
    expect(niwRunLost(0, { ...fresh, state: "failed" }, 101, 100)).toBe(true);
    expect(niwRunLost(0, { ...fresh, state: "stopped" }, 101, 100)).toBe(true);
  });
});
