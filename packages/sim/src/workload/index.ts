import { existsSync, readFileSync } from "node:fs";
import { describeIssues, SageError } from "@sageserve/protocol";
import { generateScenario, SCENARIOS, ScenarioSpecSchema } from "./scenario.js";
import { loadTraceFile } from "./trace.js";
import type { Workload } from "./types.js";

export * from "./scenario.js";
export * from "./stats.js";
export * from "./trace.js";
export * from "./types.js";

/** A built-in scenario by name, or a trace file by path; `scale` multiplies a scenario's rate. */
export function resolveWorkload(nameOrPath: string, opts: { seed: number; scale?: number }): Workload {
  const spec = SCENARIOS[nameOrPath];
  if (spec) return generateScenario({ ...spec, scale: opts.scale ?? 1 }, opts.seed);
  if (existsSync(nameOrPath) && nameOrPath.endsWith(".json")) {
    // A scenario definition (the same fields as the built-ins), validated field by field.
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(nameOrPath, "utf8"));
    } catch (e) {
      throw new SageError("CONFIG", `scenario file ${nameOrPath}: invalid JSON: ${(e as Error).message}`);
    }
    const parsed = ScenarioSpecSchema.safeParse(raw);
    if (!parsed.success) {
      throw new SageError("CONFIG", `scenario file ${nameOrPath}: ${describeIssues(parsed.error.issues)}`);
    }
    return generateScenario(
      { ...parsed.data, scale: (parsed.data.scale ?? 1) * (opts.scale ?? 1) },
      opts.seed,
    );
  }
  if (existsSync(nameOrPath)) return loadTraceFile(nameOrPath);
  throw new SageError(
    "CONFIG",
    `unknown scenario '${nameOrPath}': not a built-in (${Object.keys(SCENARIOS).join(", ")}) and no such file`,
  );
}

export { ScenarioSpecSchema };
