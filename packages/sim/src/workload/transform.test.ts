import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { resolveWorkload } from "./index.js";
import { parseMapping, type WorkloadOptions } from "./transform.js";
import { drain, type SimRequest } from "./types.js";

const dir = mkdtempSync(join(tmpdir(), "sage-transform-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const inOrder = (reqs: SimRequest[]): boolean =>
  reqs.every((r, i) => i === 0 || r.arrivalMs >= reqs[i - 1]!.arrivalMs);
const numbered = (reqs: SimRequest[]): boolean => reqs.every((r, i) => r.id === i);

/** One request a second for an hour, every third one NIW with a deadline 2 h after it. */
const trace = join(dir, "hour.jsonl");
writeFileSync(
  trace,
  Array.from({ length: 3600 }, (_, i) =>
    JSON.stringify({
      arrival: i,
      model: i % 2 ? "llama3.1-8b" : "llama2-70b",
      region: i % 4 < 2 ? "eastus" : "westus",
      tier: i % 3 === 2 ? "niw" : "iw-fast",
      inputTokens: 200,
      outputTokens: 20,
      ...(i % 3 === 2 ? { deadline: i + 7200 } : {}),
    }),
  ).join("\n"),
);
const load = (opts: Partial<WorkloadOptions> = {}, path = trace) => {
  const w = resolveWorkload(path, { seed: 9, ...opts });
  return { w, reqs: drain(w) };
};

describe("--scale on a trace", () => {
  it("replicates each request `scale` times on the same time axis, copies between it and the next, each with its own id", () => {
    const { w, reqs } = load({ scale: 3 });
    expect(reqs).toHaveLength(3 * 3600);
    expect(w.durationMs).toBe(3_599_001);
    expect(inOrder(reqs) && numbered(reqs)).toBe(true);
    // Copies of request k (arrival k s) stay in [k, k + 1) s and keep their relative deadline.
    for (const r of reqs) {
      expect(r.arrivalMs % 1000 === 0 || r.arrivalMs < 3_599_000).toBe(true);
      if (r.tier === "niw") expect(r.deadlineMs! - r.arrivalMs).toBe(7_200_000);
    }
    const perSecond = new Map<number, number>();
    for (const r of reqs)
      perSecond.set(Math.floor(r.arrivalMs / 1000), (perSecond.get(Math.floor(r.arrivalMs / 1000)) ?? 0) + 1);
    expect(Math.max(...perSecond.values())).toBe(3);
  });

  it("draws the fraction: 2.5 gives ~2.5×, 0.25 keeps ~a quarter, both seeded", () => {
    expect(load({ scale: 2.5 }).reqs.length / 3600).toBeCloseTo(2.5, 1);
    const quarter = load({ scale: 0.25 }).reqs;
    expect(quarter.length / 3600).toBeGreaterThan(0.22);
    expect(quarter.length / 3600).toBeLessThan(0.28);
    expect(load({ scale: 0.25 }).reqs).toEqual(quarter);
    expect(load({ scale: 0.25, seed: 10 }).reqs).not.toEqual(quarter);
  });

  it("compresses time with --scale-mode compress: the same requests in 1/scale of the time, relative deadlines kept", () => {
    const { w, reqs } = load({ scale: 4, scaleMode: "compress" });
    expect(reqs).toHaveLength(3600);
    expect(w.durationMs).toBe(Math.ceil(3_599_001 / 4));
    expect(reqs[100]!.arrivalMs).toBe(25_000);
    const niw = reqs.find((r) => r.tier === "niw")!;
    expect(niw.deadlineMs! - niw.arrivalMs).toBe(7_200_000);
  });

  it("changes the report's request count (it was silently ignored)", () => {
    expect(load({ scale: 2 }).reqs.length).toBe(2 * load().reqs.length);
  });
});

describe("windows", () => {
  it("cuts [--start, --start + --duration) of a trace, moved to start at 0, deadlines with it", () => {
    const { w, reqs } = load({ startMs: 600_000, durationMs: 300_000 });
    expect(w.durationMs).toBe(300_000);
    expect(reqs).toHaveLength(300);
    expect(reqs[0]).toMatchObject({ id: 0, arrivalMs: 0 });
    expect(reqs.at(-1)!.arrivalMs).toBe(299_000);
    const niw = reqs.find((r) => r.tier === "niw")!;
    expect(niw.deadlineMs! - niw.arrivalMs).toBe(7_200_000);
  });

  it("applies the window on the file's own times, before the scale", () => {
    const { w, reqs } = load({ startMs: 600_000, durationMs: 300_000, scale: 2, scaleMode: "compress" });
    expect(reqs).toHaveLength(300);
    expect(w.durationMs).toBe(150_000);
  });

  it("cuts the same requests out of a scenario as the full run has in that window", () => {
    const full = drain(resolveWorkload("smoke", { seed: 9 })).filter(
      (r) => r.arrivalMs >= 120_000 && r.arrivalMs < 300_000,
    );
    const { w, reqs } = load({ startMs: 120_000, durationMs: 180_000 }, "smoke");
    expect(w.durationMs).toBe(180_000);
    expect(reqs.map((r) => [r.arrivalMs + 120_000, r.model, r.inputTokens])).toEqual(
      full.map((r) => [r.arrivalMs, r.model, r.inputTokens]),
    );
  });

  it("stops at the end of the workload, and refuses a start past it", () => {
    expect(load({ startMs: 3_000_000, durationMs: 3_600_000 }).w.durationMs).toBe(599_001);
    expect(() => load({ startMs: 4_000_000 })).toThrowError(
      /--start 4000 s is past the end of hour\.jsonl \(3599\.001 s\)/,
    );
  });
});

describe("renaming models, regions and tiers", () => {
  it("maps a trace's models, regions and tiers; a request made NIW gets the default deadline", () => {
    const map = {
      model: parseMapping("model", "llama2-70b=bloom-176b"),
      region: parseMapping("region", "*=centralus"),
      tier: parseMapping("tier", "iw-fast=niw"),
    };
    const { w, reqs } = load({ map });
    expect(w.models).toEqual(["bloom-176b", "llama3.1-8b"]);
    expect(w.regions).toEqual(["centralus"]);
    expect(new Set(reqs.map((r) => r.tier))).toEqual(new Set(["niw"]));
    expect(reqs[0]).toMatchObject({ model: "bloom-176b", region: "centralus", deadlineMs: 24 * 3600_000 });
    // A request that was NIW keeps its own deadline.
    expect(reqs[2]!.deadlineMs).toBe(2_000 + 7_200_000);
  });

  it("maps a scenario's streams too, and a tier made interactive loses its deadline", () => {
    const map = {
      region: parseMapping("region", "westus=eastus"),
      tier: parseMapping("tier", "niw=iw-normal"),
    };
    const { w, reqs } = load({ map }, "smoke");
    expect(w.regions).toEqual(["eastus"]);
    expect(reqs.every((r) => r.region === "eastus" && r.tier !== "niw" && r.deadlineMs === undefined)).toBe(
      true,
    );
  });

  it.each([
    ["model", "llama2-70b=gpt-9", /--map-model: unknown model 'gpt-9'/],
    ["model", "llama2-70b", /--map-model: expected from=to, got 'llama2-70b'/],
    ["region", "eastus=east us", /--map-region: not a valid region id 'east us'/],
    ["tier", "iw-fast=urgent", /--map-tier: tier must be one of iw-fast, iw-normal, niw, got 'urgent'/],
    ["tier", "fast=niw", /--map-tier: tier must be one of .* got 'fast'/],
  ] as const)("rejects --map-%s %s", (kind, text, msg) => {
    expect(() => parseMapping(kind, text)).toThrowError(msg);
  });
});

describe("transforms that do not apply", () => {
  it("refuses compress and --sort-window on generated workloads, and a scale of 0", () => {
    expect(() => resolveWorkload("smoke", { seed: 1, scale: 2, scaleMode: "compress" })).toThrowError(
      /--scale-mode compress applies to trace files; smoke is generated, and --scale multiplies its rate/,
    );
    expect(() => resolveWorkload("smoke", { seed: 1, sortWindowMs: 5_000 })).toThrowError(
      /--sort-window applies to trace files/,
    );
    expect(() => resolveWorkload(trace, { seed: 1, scale: 0 })).toThrowError(
      /--scale must be above 0, got 0/,
    );
  });
});
