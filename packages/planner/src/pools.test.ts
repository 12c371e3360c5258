import { CapacityModel, type CapacityTableData } from "@sageserve/protocol";
import { describe, expect, it } from "vitest";
import type { PlanTarget } from "./ilp.js";
import { trimToPools } from "./pools.js";
import { PlanningSnapshotSchema } from "./snapshot.js";

// One instance alone: 2 req/s at the SLO; a pool of N: 5 − 3/√N each. 1,200 tokens per request.
const table: CapacityTableData = {
  m: { h100: [{ meanInputTokens: 1_000, meanOutputTokens: 200, rps: 2, saturationRps: 5, default: true }] },
};
const cm = new CapacityModel(table, 0.5);
const rps = (x: number) => x * 1_200;
const target = (region: string, instances: number, current = 2): PlanTarget => ({
  model: "m",
  region,
  gpu: "h100",
  instances,
  delta: instances - current,
  reclaim: 0,
  swap: 0,
  boot: Math.max(0, instances - current),
});
const snapshot = (demand: { region: string; rps: number }[], supply = 50) =>
  PlanningSnapshotSchema.parse({
    capacity: { m: { h100: 1_200 } },
    gpuTypes: [{ id: "h100", pricePerHour: 98 }],
    supply: { eastus: { h100: supply }, westus: { h100: supply } },
    demand: demand.map((d) => ({ model: "m", region: d.region, iwTokensPerSecond: rps(d.rps) })),
    current: [],
    config: { headroom: 0, niwShare: 0 },
  });

describe("trimToPools: each planned endpoint at the pool that carries what the plan sends it", () => {
  it("lowers a busy region planned at the quiet region's capacity, and raises one the ILP left a pool short", () => {
    const s = snapshot([
      { region: "eastus", rps: 30 },
      { region: "westus", rps: 10 },
    ]);
    const want = (x: number) => cm.instancesFor("m", "h100", rps(x));
    expect(want(30)).toBeLessThan(30); // pooled: far fewer than 30 lone instances at 1 req/s planned
    const out = trimToPools(
      [target("eastus", 20), target("westus", want(10) - 1)],
      [],
      s,
      cm,
      () => undefined,
    );
    expect(out.map((t) => [t.region, t.instances])).toEqual([
      ["eastus", want(30)],
      ["westus", want(10)],
    ]);
    // delta follows the count.
    expect(out[0]!.delta).toBe(want(30) - 2);
  });

  it("counts demand routed to a region there, keeps the minimum instances, and never raises past supply", () => {
    // eastus' demand all goes to westus: westus' pool carries both; eastus keeps its 2-instance minimum.
    const s = snapshot(
      [
        { region: "eastus", rps: 20 },
        { region: "westus", rps: 10 },
      ],
      8,
    );
    const routing = [{ model: "m", from: "eastus", to: "westus", fraction: 1 }];
    const out = trimToPools([target("eastus", 5), target("westus", 6)], routing, s, cm, () => undefined);
    expect(out.find((t) => t.region === "eastus")!.instances).toBe(2);
    // The pool for 30 req/s needs more than 8; supply caps the raise at 8.
    expect(cm.instancesFor("m", "h100", rps(30))).toBeGreaterThan(8);
    expect(out.find((t) => t.region === "westus")!.instances).toBe(8);
  });

  it("leaves a plan alone when pooling is off", () => {
    const s = snapshot([{ region: "eastus", rps: 30 }]);
    const off = new CapacityModel(table, 0.5, { pooling: false });
    const t = [target("eastus", 20)];
    expect(trimToPools(t, [], s, off, () => undefined)).toEqual(t);
  });
});
