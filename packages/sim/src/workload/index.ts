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

/**
 * A workload with a load spike: during [startMs, startMs + durationMs) the requests of `region` arrive
 * `factor` times as often (each is joined by factor − 1 copies within a few seconds of it).
 * Sensitivity studies: a 3× spike for 30 minutes in one region.
 */
export function withBurst(
  inner: Workload,
  burst: { region: string; startMs: number; durationMs: number; factor: number },
): Workload {
  let nextId = 0;
  let spread = 0;
  return {
    name: `${inner.name}+burst`,
    durationMs: inner.durationMs,
    models: inner.models,
    regions: inner.regions,
    next() {
      const batch = inner.next();
      const out: typeof batch = [];
      // Copies stay inside the batch's time span, so arrival order holds across batches.
      const last = batch.at(-1)?.arrivalMs ?? 0;
      for (const r of batch) {
        out.push(r);
        const inWindow = r.arrivalMs >= burst.startMs && r.arrivalMs < burst.startMs + burst.durationMs;
        if (r.region !== burst.region || !inWindow) continue;
        for (let k = 1; k < burst.factor; k++) {
          // Deterministic spread (no RNG stream of its own): 0–9.9 s after the original.
          spread = (spread + 3_737) % 10_000;
          const shift = Math.min(spread, last - r.arrivalMs);
          out.push({
            ...r,
            arrivalMs: r.arrivalMs + shift,
            ...(r.deadlineMs === undefined ? {} : { deadlineMs: r.deadlineMs + shift }),
          });
        }
      }
      out.sort((a, b) => a.arrivalMs - b.arrivalMs);
      for (const r of out) r.id = nextId++;
      return out;
    },
  };
}
