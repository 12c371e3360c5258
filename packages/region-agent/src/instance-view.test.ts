import { KeyCache, LoadReport, type Payload } from "@sageserve/protocol";
import { VirtualClock } from "@sageserve/runtime";
import { describe, expect, it } from "vitest";
import { InstanceView } from "./instance-view.js";

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
