import { describe, expect, it } from "vitest";
import {
  chooseInstance,
  chooseRegion,
  DEFAULT_ROUTER_CONFIG,
  endpointUtilization,
  fitsKv,
  type InstanceView,
  queuedTokens,
} from "./policy.js";

const view = (id: string, over: Partial<InstanceView> = {}): InstanceView => ({
  instanceId: id,
  nodeId: `n-${id}`,
  region: "westus",
  model: "m",
  pool: undefined,
  state: "serving",
  kvUtilization: 0.2,
  kvCapacityTokens: 100_000,
  outstandingTokens: 1_000,
  reportedAtMs: 1_000,
  running: 0,
  waiting: 0,
  routedTokens: 0,
  routedRequests: 0,
  ...over,
});
const cfg = DEFAULT_ROUTER_CONFIG;

describe("router policy", () => {
  it("counts sequence slots as well as KV: an instance whose slots are full is full however empty its KV", () => {
    // A small model: 3 % of its KV in use, but 256 running + 100 queued on a 256-sequence engine.
    const full = view("a", { kvUtilization: 0.03, running: 256, waiting: 100, maxRunning: 256 });
    expect(endpointUtilization([full], 2_000, cfg)).toBeCloseTo(356 / 256);
    // Requests routed since the report count as queued.
    const half = view("b", { kvUtilization: 0.03, running: 100, maxRunning: 256, routedRequests: 28 });
    expect(endpointUtilization([half], 2_000, cfg)).toBeCloseTo(0.5);
    // Without a reported limit, KV alone decides (engines that do not say).
    expect(endpointUtilization([view("c", { running: 900 })], 2_000, cfg)).toBeCloseTo(0.2);
    expect(chooseRegion("westus", (r) => (r === "westus" ? 356 / 256 : 0.1), ["westus", "eastus"], cfg)).toBe(
      "eastus",
    );
  });

  it("joins the shortest queue by outstanding tokens, counting what it routed since the report", () => {
    const a = view("a", { outstandingTokens: 5_000 });
    const b = view("b", { outstandingTokens: 2_000, routedTokens: 4_000 });
    const c = view("c", { outstandingTokens: 3_000 });
    expect(chooseInstance([a, b, c], 2_000, cfg)?.instanceId).toBe("c");
  });

  it("prefers the instance with the fewest queued tokens over the one with the fewest outstanding", () => {
    // "busy" holds 150 k tokens of KV for running decodes but has nothing queued; "queued" holds only
    // 20 k but has 40 k tokens waiting for admission. A new request's first token waits behind the
    // queue, not behind the decodes: it goes to "busy" (outstanding tokens alone picked "queued").
    const busy = view("busy", { kvUtilization: 0.75, kvCapacityTokens: 200_000, outstandingTokens: 150_000 });
    const queued = view("queued", {
      kvUtilization: 0.1,
      kvCapacityTokens: 200_000,
      outstandingTokens: 60_000,
    });
    expect(queuedTokens(busy)).toBe(0);
    expect(queuedTokens(queued)).toBe(40_000);
    expect(chooseInstance([queued, busy], 2_000, cfg)?.instanceId).toBe("busy");
    // Work routed since the report counts as queued until the next report says otherwise.
    busy.routedTokens = 50_000;
    expect(chooseInstance([queued, busy], 2_000, cfg)?.instanceId).toBe("queued");
  });

  it("prefers an instance where the request fits in free KV: elsewhere it would wait for decodes to finish", () => {
    // "full" has an empty queue but only 5 k tokens of KV free; "room" has 2 k tokens queued and 60 k free.
    const full = view("full", { kvUtilization: 0.95, kvCapacityTokens: 100_000, outstandingTokens: 95_000 });
    const room = view("room", { kvUtilization: 0.4, kvCapacityTokens: 100_000, outstandingTokens: 42_000 });
    expect(fitsKv(full, 8_000)).toBe(false);
    expect(fitsKv(room, 8_000)).toBe(true);
    expect(chooseInstance([full, room], 2_000, cfg, 8_000)?.instanceId).toBe("room");
    // A small request fits both: the shorter queue wins.
    expect(chooseInstance([full, room], 2_000, cfg, 1_000)?.instanceId).toBe("full");
    // Fits nowhere: the shorter queue still decides.
    expect(chooseInstance([full, room], 2_000, cfg, 90_000)?.instanceId).toBe("full");
  });

  it("never routes to an instance that is not serving or whose report is stale", () => {
    const booting = view("a", { state: "booting", outstandingTokens: 0 });
    const stale = view("b", { outstandingTokens: 0, reportedAtMs: 0 });
    const ok = view("c", { outstandingTokens: 9_000 });
    expect(chooseInstance([booting, stale, ok], cfg.staleAfterMs + 1, cfg)?.instanceId).toBe("c");
    expect(chooseInstance([booting], 2_000, cfg)).toBeUndefined();
  });

  it("measures endpoint utilisation weighted by KV capacity, and 1 when nothing serves", () => {
    const u = endpointUtilization(
      [view("a", { kvUtilization: 0.5, kvCapacityTokens: 300_000 }), view("b", { kvUtilization: 0.1 })],
      2_000,
      cfg,
    );
    expect(u).toBeCloseTo((0.5 * 300_000 + 0.1 * 100_000) / 400_000, 6);
    expect(endpointUtilization([], 2_000, cfg)).toBe(1);
  });

  it("stays home below the spill threshold, spills to the first allowed region below it, else the least loaded", () => {
    const util: Record<string, number> = { west: 0.5, east: 0.2, central: 0.1 };
    const regions = ["west", "east", "central"];
    expect(chooseRegion("west", (r) => util[r]!, regions, cfg)).toBe("west");
    util.west = 0.9;
    expect(
      chooseRegion("west", (r) => util[r]!, regions, { ...cfg, spillTargets: { west: ["east", "central"] } }),
    ).toBe("east");
    util.east = 0.95;
    util.central = 0.8;
    expect(chooseRegion("west", (r) => util[r]!, regions, cfg)).toBe("central");
  });
});
