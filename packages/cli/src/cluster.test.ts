import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DEFAULT_CLUSTER, loadClusterSpec } from "./cluster.js";

const write = (spec: unknown): string => {
  const file = join(mkdtempSync(join(tmpdir(), "sage-cluster-")), "cluster.json");
  writeFileSync(file, JSON.stringify(spec));
  return file;
};

describe("cluster file: gateway API keys", () => {
  it("keeps a key's rate limit (it used to be dropped, leaving the key unlimited)", () => {
    const file = write({
      ...DEFAULT_CLUSTER,
      gateway: {
        port: 8080,
        apiKeys: { "sk-limited-0001": { name: "team-c", tier: "normal", requestsPerSecond: 1, burst: 2 } },
      },
    });
    expect(loadClusterSpec(file).gateway.apiKeys).toEqual({
      "sk-limited-0001": { name: "team-c", tier: "normal", requestsPerSecond: 1, burst: 2 },
    });
  });

  it("names an unknown field of a key instead of dropping it", () => {
    const file = write({
      ...DEFAULT_CLUSTER,
      gateway: { port: 8080, apiKeys: { "sk-limited-0001": { name: "team-c", requestsPerHour: 60 } } },
    });
    expect(() => loadClusterSpec(file)).toThrow(/requestsPerHour/);
  });
});

describe("cluster file: sections", () => {
  it("takes the built-in sections a file leaves out (actor gateway needs only its own)", () => {
    const spec = loadClusterSpec(write({ gateway: { port: 9000 } }));
    expect(spec.gateway).toEqual({ port: 9000, host: "127.0.0.1", apiKeys: {} });
    expect(spec.regions).toEqual(DEFAULT_CLUSTER.regions);
    expect(spec.planner).toEqual(DEFAULT_CLUSTER.planner);
  });

  it("still names a bad field in a section it gives", () => {
    expect(() => loadClusterSpec(write({ gateway: { port: "x" } }))).toThrow(/gateway\.port/);
    expect(() => loadClusterSpec(write({ gatewy: { port: 1 } }))).toThrow(/gatewy/);
  });
});

describe("cluster file: region agents' plan execution and batch release", () => {
  it("takes the simulator's planExecution and niw settings for the live agents", () => {
    const spec = loadClusterSpec(
      write({
        regionAgent: {
          ...DEFAULT_CLUSTER.regionAgent,
          planExecution: { lullAfterBelow: 0.5, emergencyAbove: 0.95 },
          niw: { releaseBelow: 0.8, releaseTwoBelow: 0.7 },
        },
      }),
    );
    expect(spec.regionAgent.planExecution).toEqual({ lullAfterBelow: 0.5, emergencyAbove: 0.95 });
    expect(spec.regionAgent.niw).toEqual({ releaseBelow: 0.8, releaseTwoBelow: 0.7 });
  });

  it("names a bad or unknown field of them", () => {
    const agent = (x: object) => write({ regionAgent: { ...DEFAULT_CLUSTER.regionAgent, ...x } });
    expect(() => loadClusterSpec(agent({ planExecution: { lullAfterBelow: 1.5 } }))).toThrow(
      /regionAgent\.planExecution\.lullAfterBelow/,
    );
    expect(() => loadClusterSpec(agent({ niw: { releaseBelw: 0.8 } }))).toThrow(/releaseBelw/);
  });
});
