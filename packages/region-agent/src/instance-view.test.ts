import { KeyCache, LoadReport, type Payload } from "@sageserve/protocol";
import { VirtualClock } from "@sageserve/runtime";
import { describe, expect, it } from "vitest";
import { InstanceView, loadWithReleased } from "./instance-view.js";

const clock = new VirtualClock({ seed: 1 });
const report = (instanceId: string, model: string, extra: Partial<Payload<typeof LoadReport>> = {}) => ({
  ...LoadReport.sample(),
  instanceId,
  nodeId: `node-${instanceId}`,
  model,
  state: "serving" as const,
  atMs: clock.now(),
  ...extra,
});
const ids = (v: InstanceView, model: string, pool?: string) =>
  v.endpoint(model, pool).map((i) => i.instanceId);

describe("InstanceView endpoints", () => {
  it("lists an endpoint's fresh instances in first-report order, following swaps, reclaims and pools", async () => {
    const v = new InstanceView(clock, new KeyCache(), 30_000);
    for (const [id, model] of [
      ["a", "x"],
      ["b", "y"],
      ["c", "x"],
      ["d", "y"],
    ] as const)
      v.apply(report(id, model));
    expect(ids(v, "x")).toEqual(["a", "c"]);
    expect(ids(v, "y")).toEqual(["b", "d"]);
    // The agent swaps b to x: b takes its place between a and c.
    v.move(v.get("b")!, "x", undefined);
    expect(ids(v, "x")).toEqual(["a", "b", "c"]);
    expect(ids(v, "y")).toEqual(["d"]);
    // A report says c now serves y (a swap the agent did not command), and d moves to a pool of y.
    v.apply(report("c", "y"));
    v.apply(report("d", "y", { pool: "iw" }));
    expect(ids(v, "x")).toEqual(["a", "b"]);
    expect(ids(v, "y")).toEqual(["c"]);
    expect(ids(v, "y", "iw")).toEqual(["d"]);
    // Stale instances are left out until they report again (in their old place).
    await clock.advance(31_000);
    v.apply(report("b", "x"));
    expect(ids(v, "x")).toEqual(["b"]);
    v.apply(report("a", "x"));
    expect(ids(v, "x")).toEqual(["a", "b"]);
    expect(ids(v, "nobody")).toEqual([]);
  });
});

describe("NIW placement load", () => {
  it("counts the jobs released since the last report as sequence slots where they weigh more than their tokens, and forgets them at the next report", () => {
    const v = new InstanceView(clock, new KeyCache(), 30_000);
    // A small model's large cache: 4 of 16 slots and 10 % of 1 M KV tokens in use.
    v.apply(
      report("a", "x", {
        kvUtilization: 0.1,
        running: 4,
        waiting: 0,
        maxRunning: 16,
        kvCapacityTokens: 1_000_000,
      }),
    );
    const a = v.leastLoaded("x")!;
    expect(loadWithReleased(a)).toBeCloseTo(0.25);
    // Eight jobs of 2,000 tokens: 1.6 % of the cache, but half the slots.
    a.releasedJobs = 8;
    a.releasedTokens = 16_000;
    expect(loadWithReleased(a)).toBeCloseTo(0.75);
    // Without a reported slot limit the tokens decide.
    a.maxRunning = 0;
    expect(loadWithReleased(a)).toBeCloseTo(0.25 + 0.016);
    v.apply(report("a", "x", { kvUtilization: 0.1, running: 12, waiting: 0, maxRunning: 16 }));
    expect(a.releasedJobs).toBe(0);
    expect(loadWithReleased(a)).toBeCloseTo(0.75);
  });
});
