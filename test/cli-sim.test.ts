import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { PALETTE } from "@sageserve/charts";
import { describe, expect, it } from "vitest";
import { countColouredPixels, launchChromium } from "./support/browser.js";

const run = promisify(execFile);
const bin = new URL("../packages/cli/bin/sageserve.js", import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), "sage-cli-sim-"));
const sage = (...args: string[]) => run(process.execPath, [bin, ...args], { timeout: 120_000 });
const fail = (...args: string[]) =>
  sage(...args).then(
    () => ({ code: 0, stderr: "" }),
    (e: { code: number; stderr: string }) => e,
  );

describe("sageserve sim / compare", () => {
  it("writes report.json, run.json and report.html; the same seed gives a byte-identical report.json", async () => {
    const args = [
      "sim",
      "--scenario",
      "day",
      "--scale",
      "0.1",
      "--policy",
      "unified-reactive",
      "--seed",
      "11",
    ];
    const { stdout } = await sage(...args, "--out", join(tmp, "a"));
    await sage(...args, "--out", join(tmp, "b"));
    const a = readFileSync(join(tmp, "a", "report.json"));
    expect(a.equals(readFileSync(join(tmp, "b", "report.json")))).toBe(true);
    const report = JSON.parse(a.toString());
    expect(report).toMatchObject({
      scenario: "day",
      policy: "unified-reactive",
      seed: 11,
      requests: { dropped: 0 },
    });
    expect(report.gpuHours.total).toBeGreaterThan(0);
    expect(
      JSON.parse(readFileSync(join(tmp, "a", "run.json"), "utf8")).simulatedRequestsPerWallSecond,
    ).toBeGreaterThan(0);
    const html = readFileSync(join(tmp, "a", "report.html"), "utf8");
    expect(html).toContain("uPlot");
    expect(html).toContain("unified-reactive");
    expect(stdout).toMatch(/unified-reactive\s+\d+\.\d/);
  });

  it("warns when a planner policy's workload is shorter than its plan interval", async () => {
    const { stderr } = await sage("sim", "--scenario", "smoke", "--policy", "lt-ua", "--out", join(tmp, "w"));
    expect(stderr).toMatch(/warning: the workload lasts 10 min, less than the plan interval \(60 min\)/);
    const report = JSON.parse(readFileSync(join(tmp, "w", "report.json"), "utf8"));
    expect(report.warnings).toHaveLength(1);
    // The plan at start-up still comes (2 minutes in), so lt-ua is not silently unified reactive.
    expect(report.planner.plans).toBeGreaterThanOrEqual(1);
  });

  it("compares policies on the same trace in one table and one report", async () => {
    const { stdout } = await sage(
      "compare",
      "--scenario",
      "smoke",
      "--policies",
      "siloed-reactive,unified-reactive",
      "--out",
      join(tmp, "c"),
    );
    expect(stdout).toMatch(/siloed-reactive.*\n.*unified-reactive/);
    expect(stdout).toMatch(/unified-reactive: -?\d+\.\d % GPU-hours vs siloed-reactive/);
    const cmp = JSON.parse(readFileSync(join(tmp, "c", "compare.json"), "utf8"));
    expect(cmp.policies.map((p: { policy: string }) => p.policy)).toEqual([
      "siloed-reactive",
      "unified-reactive",
    ]);
    expect(readFileSync(join(tmp, "c", "unified-reactive", "report.json"), "utf8")).toContain(
      '"policy": "unified-reactive"',
    );
  });

  it("draws the comparison report's charts in headless Chromium (the chart code it shares with the dashboard)", async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1300, height: 1000 } });
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(String(e)));
      await page.goto(`file://${join(tmp, "c", "report.html")}`);
      // Per policy an instances chart, plus the load chart.
      await page.waitForFunction("document.querySelectorAll('canvas').length >= 3", undefined, {
        timeout: 20_000,
      });
      expect(errors).toEqual([]);
      const png = await page.screenshot({ fullPage: true });
      expect(countColouredPixels(png, PALETTE.slice(0, 4))).toBeGreaterThan(2_000);
    } finally {
      await browser.close();
    }
  }, 60_000);

  it("replays a trace file, and names the bad line and field of a broken one", async () => {
    const good = join(tmp, "ok.jsonl");
    writeFileSync(
      good,
      Array.from({ length: 50 }, (_, i) =>
        JSON.stringify({
          arrival: i,
          model: "llama3.2-3b",
          region: "westus",
          tier: i % 3 ? "iw-fast" : "niw",
          inputTokens: 200,
          outputTokens: 30,
        }),
      ).join("\n"),
    );
    await sage("sim", "--scenario", good, "--policy", "siloed-reactive", "--out", join(tmp, "t"));
    expect(JSON.parse(readFileSync(join(tmp, "t", "report.json"), "utf8")).requests).toMatchObject({
      generated: 50,
      completed: 50,
    });

    const bad = join(tmp, "bad.jsonl");
    writeFileSync(
      bad,
      `${readFileSync(good, "utf8").split("\n")[0]}\n{"arrival": 3, "model": "llama3.2-3b", "region": "westus", "tier": "asap", "inputTokens": 1, "outputTokens": 1}\n`,
    );
    const e = await fail("sim", "--scenario", bad, "--policy", "unified-reactive", "--out", join(tmp, "x"));
    expect(e.code).toBe(2);
    expect(e.stderr).toContain("bad.jsonl:2: tier: must be one of iw-fast, iw-normal, niw, got 'asap'");
  });

  it("applies --scale, windows and renaming to a trace, warns of requests that cannot fit, and names what is wrong with a file", async () => {
    const trace = join(tmp, "scale.jsonl");
    writeFileSync(
      trace,
      Array.from({ length: 120 }, (_, i) =>
        JSON.stringify({
          arrival: i,
          model: "llama3.2-3b",
          region: "westus",
          tier: "iw-fast",
          inputTokens: i === 7 ? 9_000_000 : 200,
          outputTokens: 30,
        }),
      ).join("\n"),
    );
    const report = (dir: string) => JSON.parse(readFileSync(join(tmp, dir, "report.json"), "utf8"));
    const base = ["sim", "--scenario", trace, "--policy", "unified-reactive", "--no-progress"];
    const one = await sage(...base, "--out", join(tmp, "s1"));
    expect(one.stderr).toMatch(
      /warning: scale\.jsonl: 1 llama3\.2-3b request needs more KV cache .* first at line 8/,
    );
    expect(report("s1").requests).toMatchObject({ generated: 120, failed: 1 });
    await sage(...base, "--scale", "2", "--out", join(tmp, "s2"));
    expect(report("s2").requests.generated).toBe(240);
    await sage(
      ...base,
      ...[
        "--scale",
        "2",
        "--scale-mode",
        "compress",
        "--start",
        "1m",
        "--duration",
        "30",
        "--map-region",
        "*=eastus",
      ],
      "--out",
      join(tmp, "s3"),
    );
    const s3 = report("s3");
    expect(s3.requests.generated).toBe(30);
    expect(s3.gpuHours.byRegion).toHaveProperty("eastus");
    expect(s3.gpuHours.byRegion).not.toHaveProperty("westus");

    const empty = join(tmp, "empty.csv");
    writeFileSync(empty, "");
    const e1 = await fail(...base.slice(0, 2), empty, ...base.slice(3), "--out", join(tmp, "s4"));
    expect(e1.code).toBe(2);
    expect(e1.stderr).toContain("empty.csv: file: is empty: expected a trace");
    const azure = join(tmp, "azure.csv");
    writeFileSync(azure, "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9799600,12x,10\n");
    const e2 = await fail(...base.slice(0, 2), azure, ...base.slice(3), "--out", join(tmp, "s5"));
    expect(e2.stderr).toContain("azure.csv:2: ContextTokens: not a number");
    const e3 = await fail(...base, "--scale-mode", "squash", "--scale", "2", "--out", join(tmp, "s6"));
    expect(e3.stderr).toContain("--scale-mode must be one of replicate, compress, got 'squash'");
    const e4 = await fail(
      "sim",
      "--scenario",
      "smoke",
      "--policy",
      "unified-reactive",
      "--sort-window",
      "5",
      "--out",
      join(tmp, "s7"),
    );
    expect(e4.stderr).toContain("--sort-window applies to trace files");
  });

  it("takes a scenario definition and a settings file, and names any bad field in either", async () => {
    const scenario = join(tmp, "mine.json");
    writeFileSync(
      scenario,
      JSON.stringify({
        name: "mine",
        durationHours: 0.25,
        meanRatePerSecond: 3,
        models: [{ id: "llama3.2-3b", share: 1, shape: "m-small", tokens: "conv" }],
        regions: [{ id: "westus", weight: 1, utcOffsetHours: -8 }],
        tierMix: { "iw-fast": 1, "iw-normal": 0, niw: 0 },
      }),
    );
    const config = join(tmp, "cfg.json");
    writeFileSync(
      config,
      JSON.stringify({
        timings: { spinUpMs: 300_000 },
        regionAgent: { reactive: { scaleUpAbove: 0.7, scaleDownBelow: 0.3 } },
      }),
    );
    await sage(
      "sim",
      "--scenario",
      scenario,
      "--config",
      config,
      "--policy",
      "unified-reactive",
      "--out",
      join(tmp, "m"),
    );
    expect(JSON.parse(readFileSync(join(tmp, "m", "report.json"), "utf8"))).toMatchObject({
      scenario: "mine",
      requests: { dropped: 0 },
    });

    writeFileSync(
      config,
      JSON.stringify({
        timings: { spinUpMs: -5 },
        regionAgent: { reactiv: {}, planExecution: { lullAfterBelow: 1.5, holdMeanWindows: 7 } },
      }),
    );
    const e1 = await fail(
      "sim",
      "--scenario",
      scenario,
      "--config",
      config,
      "--policy",
      "unified-reactive",
      "--out",
      join(tmp, "m2"),
    );
    expect(e1.code).toBe(2);
    expect(e1.stderr).toContain("timings.spinUpMs");
    expect(e1.stderr).toContain("reactiv");
    expect(e1.stderr).toContain("regionAgent.planExecution.lullAfterBelow");
    expect(e1.stderr).toContain("regionAgent.planExecution.holdMeanWindows");

    writeFileSync(
      scenario,
      JSON.stringify({
        name: "x",
        durationHours: 1,
        meanRatePerSecond: 1,
        models: [{ id: "gpt-9", share: 1, shape: "m-small", tokens: "conv" }],
        regions: [],
        tierMix: { "iw-fast": 1, "iw-normal": 0, niw: 0 },
      }),
    );
    const e2 = await fail(
      "sim",
      "--scenario",
      scenario,
      "--policy",
      "unified-reactive",
      "--out",
      join(tmp, "m3"),
    );
    expect(e2.code).toBe(2);
    expect(e2.stderr).toContain("models.0.id: unknown model");
    expect(e2.stderr).toContain("regions");
  });

  it("rejects an unknown policy or scenario with a clear message", async () => {
    const p = await fail("sim", "--scenario", "smoke", "--policy", "yolo", "--out", join(tmp, "y"));
    expect(p).toMatchObject({ code: 2 });
    expect(p.stderr).toContain("unknown policy 'yolo'");
    const s = await fail(
      "sim",
      "--scenario",
      "weekend",
      "--policy",
      "unified-reactive",
      "--out",
      join(tmp, "y"),
    );
    expect(s.stderr).toContain("unknown scenario 'weekend'");
  });
});

describe("sageserve plan", () => {
  it("solves the example snapshot and prints targets and cross-region routing", async () => {
    const { stdout } = await sage(
      "plan",
      "--state",
      new URL("../examples/plan-state.json", import.meta.url).pathname,
    );
    expect(stdout).toMatch(/llama2-70b\s+westus\s+a100\s+\d+/);
    expect(stdout).toContain("llama2-70b: eastus → westus");
    expect(stdout).toMatch(/^optimal \(highs/m);
  });

  it("names every bad field of a malformed snapshot", async () => {
    const bad = join(tmp, "bad-state.json");
    writeFileSync(
      bad,
      JSON.stringify({
        capacity: {},
        gpuTypes: [],
        supply: {},
        demand: [{ model: "m", region: "r", iwTokensPerSecond: -1 }],
        extra: 1,
      }),
    );
    const e = await fail("plan", "--state", bad);
    expect(e.code).toBe(2);
    expect(e.stderr).toContain("gpuTypes");
    expect(e.stderr).toContain("demand.0.iwTokensPerSecond");
    expect(e.stderr).toContain("extra");
  });
});
