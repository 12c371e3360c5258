/**
 * The package diagram in docs/architecture.md against the code (issue 19): each package's `@sageserve/*`
 * imports, read from its non-test sources, must equal the doc's table, be declared in its package.json,
 * go through the package's public surface (no deep paths), and keep the directions the architecture
 * promises — actors never import each other, the kernel never imports NATS, the emulator never imports
 * the simulator, the simulator never imports the dashboard.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { packageNames, repoRoot, sourceFiles } from "../scripts/source-tree.js";

const root = repoRoot;
const packages = packageNames();

const SPEC = /(?:from|import)\s*\(?\s*"(@sageserve\/[^"]+)"/g;

/** package → the @sageserve packages its sources import, and any deep specifiers. */
function importGraph(): { graph: Map<string, Set<string>>; deep: string[] } {
  const graph = new Map<string, Set<string>>();
  const deep: string[] = [];
  for (const pkg of packages) {
    const deps = new Set<string>();
    for (const file of sourceFiles(join(root, "packages", pkg, "src"))) {
      for (const m of readFileSync(file, "utf8").matchAll(SPEC)) {
        const spec = m[1] ?? "";
        const parts = spec.split("/");
        if (parts.length > 2) deep.push(`${file.slice(root.length)}: ${spec}`);
        const name = parts[1] ?? "";
        if (name !== pkg) deps.add(name);
      }
    }
    graph.set(pkg, deps);
  }
  return { graph, deep };
}

/** The table between the package-graph markers of docs/architecture.md. */
function docTable(): Map<string, Set<string>> {
  const doc = readFileSync(join(root, "docs/architecture.md"), "utf8");
  const body = doc.split("<!-- package-graph:begin -->")[1]?.split("<!-- package-graph:end -->")[0] ?? "";
  const table = new Map<string, Set<string>>();
  for (const line of body.split("\n")) {
    const cells = line.split("|").map((c) => c.trim());
    const [, pkg, imports] = cells;
    if (!pkg || pkg === "package" || pkg.startsWith("---")) continue;
    table.set(pkg, new Set(imports === "—" ? [] : (imports ?? "").split(",").map((s) => s.trim())));
  }
  return table;
}

const sorted = (m: Map<string, Set<string>>) =>
  Object.fromEntries([...m].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, [...v].sort()]));

describe("package graph", () => {
  const { graph, deep } = importGraph();

  it("matches the table in docs/architecture.md, package for package", () => {
    expect(packages.length).toBeGreaterThan(10);
    expect(sorted(docTable())).toEqual(sorted(graph));
  });

  it("imports only through public surfaces, and declares every import in package.json", () => {
    expect(deep).toEqual([]);
    const undeclared: string[] = [];
    for (const [pkg, deps] of graph) {
      const json = JSON.parse(readFileSync(join(root, "packages", pkg, "package.json"), "utf8")) as {
        dependencies?: Record<string, string>;
      };
      for (const d of deps) if (!json.dependencies?.[`@sageserve/${d}`]) undeclared.push(`${pkg} → ${d}`);
    }
    expect(undeclared).toEqual([]);
  });

  it("points the way the architecture says: no actor imports another, the kernel knows no NATS", () => {
    const actors = ["router", "region-agent", "planner", "node-agent", "gateway", "dashboard"];
    for (const a of actors)
      for (const b of actors) if (a !== b) expect(graph.get(a)?.has(b), `${a} → ${b}`).toBe(false);
    expect(graph.get("runtime")).toEqual(new Set(["protocol"]));
    expect(graph.get("engine-emulator")?.has("sim")).toBe(false);
    expect(graph.get("sim")?.has("dashboard")).toBe(false);
    expect(graph.get("engine")).toEqual(new Set(["protocol"]));
    // Only the CLI wires the live NATS adapter in.
    expect([...graph].filter(([, d]) => d.has("nats")).map(([p]) => p)).toEqual(["cli"]);
    const runtimeJson = readFileSync(join(root, "packages/runtime/package.json"), "utf8");
    expect(runtimeJson).not.toMatch(/"nats"|"nkeys\.js"/);
  });
});
