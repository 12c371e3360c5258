import { readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { sourceFiles } from "../scripts/source-tree.js";

/**
 * "Actors never read wall time, timers or Math.random directly": every actor is written against the
 * clock port (ports.ts), so the same code runs live on the wall clock and in the simulator on virtual
 * time, seeded. This test holds the actor packages to it: a direct read anywhere in their sources fails
 * here, unless it is one of the named exceptions below (each says why it is not a decision input).
 */
const ACTOR_PACKAGES = [
  "router",
  "region-agent",
  "node-agent",
  "gateway",
  "planner",
  "vm-provider",
  "dashboard",
  "sim",
];
const FORBIDDEN =
  /\b(Date\.now\(|new Date\(\)|setTimeout\(|setInterval\(|setImmediate\(|Math\.random\(|performance\.now\()/;
/** file (from the repository root) → why a direct read is fine there. */
const ALLOWED: Record<string, string> = {
  "packages/planner/src/highs.ts":
    "measures the solver's wall time for the plan's report (solveMs), decides nothing",
  "packages/planner/src/lp.ts":
    "measures the solver's wall time for the plan's report (solveMs), decides nothing",
  "packages/planner/src/budget.ts":
    "a live plan's solve-time limit; in simulation the budget is counted in work (iterations, nodes), not time",
  "packages/sim/src/run/simulate.ts":
    "the run's own wall time (simulated requests per wall-second), not simulated time",
  "packages/dashboard/src/page.ts": "browser JavaScript in the page's template (polling), not actor code",
};

const root = new URL("..", import.meta.url).pathname;

describe("clock discipline of actor code", () => {
  it("no actor package reads wall time, timers or Math.random except through the clock port", () => {
    const found: string[] = [];
    let files = 0;
    for (const pkg of ACTOR_PACKAGES)
      for (const file of sourceFiles(join(root, "packages", pkg, "src"))) {
        files++;
        const rel = relative(root, file);
        if (ALLOWED[rel]) continue;
        readFileSync(file, "utf8")
          .split("\n")
          .forEach((line, i) => {
            const code = line.replace(/\/\/.*$/, "").replace(/^\s*\*.*$/, ""); // not in comments
            if (FORBIDDEN.test(code)) found.push(`${rel}:${i + 1}: ${line.trim()}`);
          });
      }
    expect(files).toBeGreaterThan(50);
    expect(found).toEqual([]);
  });

  it("catches what it is meant to catch, and every named exception still needs its exception", () => {
    expect(FORBIDDEN.test("const t = Date.now();")).toBe(true);
    expect(FORBIDDEN.test("setTimeout(() => go(), 5)")).toBe(true);
    expect(FORBIDDEN.test("const u = Math.random();")).toBe(true);
    expect(FORBIDDEN.test("const d = new Date();")).toBe(true);
    expect(FORBIDDEN.test("new Date(atMs).toISOString()")).toBe(false);
    expect(FORBIDDEN.test("this.clock.now()")).toBe(false);
    for (const rel of Object.keys(ALLOWED))
      expect(
        FORBIDDEN.test(readFileSync(join(root, rel), "utf8")),
        `${rel} no longer needs its exception`,
      ).toBe(true);
  });
});
