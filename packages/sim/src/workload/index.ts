import { existsSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { describeIssues, errorMessage, SageError } from "@sageserve/protocol";
import { sortByArrival } from "./arrivals.js";
import { detectInput } from "./detect.js";
import { readText } from "./lines.js";
import { directRateSpec, generateFromRates, RateSpecSchema } from "./rates.js";
import { generateScenario, SCENARIOS, ScenarioSpecSchema } from "./scenario.js";
import { openTrace } from "./trace.js";
import {
  compressWorkload,
  hasMapping,
  mapWorkload,
  replicateWorkload,
  type WorkloadOptions,
  windowWorkload,
} from "./transform.js";
import type { Workload } from "./types.js";

/**
 * A built-in scenario by name, or a file by path — a trace (JSONL, CSV, Azure CSV), a rate file
 * (CSV), a scenario or a rate spec (JSON), told apart by content — with the transforms of `opts`.
 */
export function resolveWorkload(nameOrPath: string, opts: WorkloadOptions): Workload {
  if (opts.scale !== undefined && !(opts.scale > 0))
    throw new SageError("CONFIG", `--scale must be above 0, got ${opts.scale}`);
  const builtin = SCENARIOS[nameOrPath];
  const kind = builtin ? "scenario" : existsSync(nameOrPath) ? detectInput(nameOrPath) : undefined;
  if (!kind)
    throw new SageError(
      "CONFIG",
      `unknown scenario '${nameOrPath}': not a built-in (${Object.keys(SCENARIOS).join(", ")}) and no such file`,
    );
  const trace = kind === "jsonl" || kind === "csv" || kind === "azure";
  if (!trace) {
    // Generated workloads take the scale as a rate and have no line order to repair.
    if (opts.scaleMode === "compress")
      throw new SageError(
        "CONFIG",
        `--scale-mode compress applies to trace files; ${nameOrPath} is generated, and --scale multiplies its rate`,
      );
    if (opts.sortWindowMs)
      throw new SageError(
        "CONFIG",
        `--sort-window applies to trace files; ${nameOrPath} is generated in order`,
      );
  }
  let w: Workload;
  if (builtin) w = generateScenario({ ...builtin, scale: opts.scale ?? 1 }, opts.seed);
  else if (kind === "spec") w = fromSpecFile(nameOrPath, opts);
  else if (kind === "rates")
    w = generateFromRates({ ...directRateSpec(nameOrPath), scale: opts.scale ?? 1 }, opts.seed);
  else
    w = openTrace(nameOrPath, kind as "jsonl" | "csv" | "azure", {
      ...(opts.map ? { map: opts.map } : {}),
      ...(opts.sortWindowMs ? { sortWindowMs: opts.sortWindowMs } : {}),
      ...(opts.kvLimitTokens ? { kvLimitTokens: opts.kvLimitTokens } : {}),
    });
  if (!trace && hasMapping(opts.map)) w = mapWorkload(w, opts.map);
  if (opts.startMs !== undefined || opts.durationMs !== undefined)
    w = windowWorkload(w, opts.startMs ?? 0, opts.durationMs);
  if (trace && opts.scale !== undefined && opts.scale !== 1)
    w =
      opts.scaleMode === "compress"
        ? compressWorkload(w, opts.scale)
        : replicateWorkload(w, opts.scale, opts.seed);
  return w;
}

/** A scenario or a rate spec (`"kind": "rates"`), validated field by field; paths relative to the file. */
function fromSpecFile(path: string, opts: WorkloadOptions): Workload {
  let raw: unknown;
  try {
    raw = JSON.parse(readText(path));
  } catch (e) {
    if (e instanceof SageError) throw e;
    throw new SageError("CONFIG", `scenario file ${path}: invalid JSON: ${errorMessage(e)}`);
  }
  const dir = dirname(resolve(path));
  const at = (p: string) => (isAbsolute(p) ? p : resolve(dir, p));
  if (typeof raw === "object" && raw !== null && (raw as { kind?: unknown }).kind === "rates") {
    const parsed = RateSpecSchema.safeParse(raw);
    if (!parsed.success)
      throw new SageError("CONFIG", `rate spec ${path}: ${describeIssues(parsed.error.issues)}`);
    return generateFromRates(
      { ...parsed.data, scale: parsed.data.scale * (opts.scale ?? 1) },
      opts.seed,
      dir,
    );
  }
  const parsed = ScenarioSpecSchema.safeParse(raw);
  if (!parsed.success)
    throw new SageError("CONFIG", `scenario file ${path}: ${describeIssues(parsed.error.issues)}`);
  const models = parsed.data.models.map((m) =>
    ["m-large", "m-mid", "m-small"].includes(m.shape) ? m : { ...m, shape: at(m.shape) },
  );
  return generateScenario(
    { ...parsed.data, models, scale: (parsed.data.scale ?? 1) * (opts.scale ?? 1) },
    opts.seed,
  );
}

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
      const sorted = sortByArrival(out);
      for (const r of sorted) r.id = nextId++;
      return sorted;
    },
  };
}
