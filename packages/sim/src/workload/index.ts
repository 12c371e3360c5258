import { existsSync } from "node:fs";
import { SageError } from "@sageserve/protocol";
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
  if (existsSync(nameOrPath)) return loadTraceFile(nameOrPath);
  throw new SageError(
    "CONFIG",
    `unknown scenario '${nameOrPath}': not a built-in (${Object.keys(SCENARIOS).join(", ")}) and no such file`,
  );
}

export { ScenarioSpecSchema };
