import type { ClusterSummary, TierSummary } from "@sageserve/dashboard";
import { describe, expect, it } from "vitest";
import { type ClusterStatus, formatStatus } from "./ops.js";

const tier = (over: Partial<TierSummary> = {}): TierSummary => ({
  completed: 0,
  failed: 0,
  cancelled: 0,
  rejected: 0,
  sloMet: 0,
  attainment: null,
  attainmentRecent: null,
  infeasible: 0,
  infeasibleShare: null,
  attainmentFeasible: null,
  ttftMs: null,
  tbtMs: null,
  ...over,
});

const status = (observer: ClusterSummary): ClusterStatus => ({
  nats: "nats://x",
  atMs: 0,
  regions: [],
  plan: null,
  observer,
  nodes: [],
  services: [],
});

const summary = (over: Partial<ClusterSummary> = {}): ClusterSummary => ({
  atMs: 0,
  startedAtMs: 0,
  gpuHours: 1,
  tiers: {
    // 10 finished, 6 met; 2 infeasible → 75 % over the 8 feasible.
    "iw-fast": tier({
      completed: 10,
      sloMet: 6,
      attainment: 0.6,
      infeasible: 2,
      infeasibleShare: 0.2,
      attainmentFeasible: 0.75,
      ttftMs: { p50: 300, p99: 2_000 },
    }),
    "iw-normal": tier({ completed: 3, sloMet: 3, attainment: 1, attainmentFeasible: 1, infeasibleShare: 0 }),
    niw: tier(),
  },
  feasibilityJudged: true,
  beyondProfile: { "llama3.1-8b": 4 },
  instances: {},
  ...over,
});

describe("sageserve status", () => {
  it("lists the live nodes by id (what drain takes) and the requests not judged for the SLO", () => {
    const s = status(
      summary({
        tiers: {
          "iw-fast": tier({ completed: 4, sloMet: 4, attainment: 1, cancelled: 2, rejected: 1 }),
          "iw-normal": tier(),
          niw: tier(),
        },
      }),
    );
    s.nodes = [
      { nodeId: "westus-local-2", region: "westus", state: "serving", model: "llama3.2-3b", atMs: 0 },
      { nodeId: "eastus-local-1", region: "eastus", state: "spot", model: "llama3.1-8b", atMs: 0 },
    ];
    const text = formatStatus(s);
    expect(text).toMatch(/nodes alive: 2 .*drain/);
    expect(text).toMatch(/\n {2}eastus-local-1\s+eastus\s+llama3\.1-8b\s+spot\n {2}westus-local-2\s+westus/);
    expect(text).toMatch(/iw-fast\s+100\.00 %.*not judged: 2 cancelled by the client, 1 rejected as invalid/);
  });

  it("shows infeasible requests and attainment over the feasible ones per tier, and prompts beyond the profile", () => {
    const text = formatStatus(status(summary()));
    expect(text).toMatch(
      /iw-fast\s+60\.00 %\s+10 done, 0 failed, TTFT p50\/p99 300\/2000 ms; 2 infeasible \(20\.00 %\), 75\.00 % over feasible/,
    );
    expect(text).toMatch(/iw-normal\s+100\.00 %\s+3 done, 0 failed, no requests yet\n/);
    expect(text).toContain("prompts beyond the measured profile: llama3.1-8b 4");
  });

  it("says when the dashboard does not judge feasibility, and reads an older dashboard's summary without the fields", () => {
    expect(formatStatus(status(summary({ feasibilityJudged: false })))).toContain(
      "SLO feasibility: not judged",
    );
    const old = summary() as Partial<ClusterSummary>;
    delete old.feasibilityJudged;
    delete old.beyondProfile;
    const text = formatStatus(status(old as ClusterSummary));
    expect(text).not.toContain("feasibility");
    expect(text).not.toContain("beyond");
  });
});
