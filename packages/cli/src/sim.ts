import { closeSync, openSync, writeSync } from "node:fs";
import { describeIssues, errorMessage, isSageError, SageError } from "@sageserve/protocol";
import {
  checkPolicy,
  loadSimConfig,
  type Mapping,
  overBound,
  POLICIES,
  parseMapping,
  runSimulation,
  SCALE_MODES,
  type ScaleMode,
  type SimReport,
  type SimResult,
  type SlowRequest,
  TraceError,
  type WorkloadTransforms,
  writeComparison,
  writeReports,
} from "@sageserve/sim";
import cliProgress from "cli-progress";
import { ZodError } from "zod";

export interface SimCliOptions {
  scenario: string;
  seed: number;
  scale?: number;
  scaleMode?: string;
  /** Seconds. */
  start?: number;
  duration?: number;
  sortWindow?: number;
  mapModel?: string;
  mapRegion?: string;
  mapTier?: string;
  out: string;
  json?: boolean;
  validate?: boolean;
  progress?: boolean;
  config?: string;
  /** JSONL file: one record per request that missed its TTFT target (sim only). */
  traceSlow?: string;
}

/** The workload transforms of the command line, each checked (a bad one names its option). */
export function transformsOf(o: SimCliOptions): WorkloadTransforms {
  if (o.scaleMode !== undefined && !(SCALE_MODES as readonly string[]).includes(o.scaleMode))
    throw new SageError(
      "CONFIG",
      `--scale-mode must be one of ${SCALE_MODES.join(", ")}, got '${o.scaleMode}'`,
    );
  if (o.scaleMode !== undefined && o.scale === undefined)
    throw new SageError("CONFIG", "--scale-mode needs --scale");
  if (o.duration !== undefined && !(o.duration > 0))
    throw new SageError("CONFIG", `--duration must be above 0, got ${o.duration}`);
  const map: Mapping = {
    ...(o.mapModel ? { model: parseMapping("model", o.mapModel) } : {}),
    ...(o.mapRegion ? { region: parseMapping("region", o.mapRegion) } : {}),
    ...(o.mapTier ? { tier: parseMapping("tier", o.mapTier) } : {}),
  };
  return {
    ...(o.scaleMode ? { scaleMode: o.scaleMode as ScaleMode } : {}),
    ...(o.start !== undefined ? { startMs: Math.round(o.start * 1000) } : {}),
    ...(o.duration !== undefined ? { durationMs: Math.round(o.duration * 1000) } : {}),
    ...(o.sortWindow ? { sortWindowMs: Math.round(o.sortWindow * 1000) } : {}),
    ...(Object.keys(map).length ? { map } : {}),
  };
}

async function runOne(policy: string, o: SimCliOptions, label: string, warn: boolean): Promise<SimResult> {
  const bar =
    o.progress === false || o.json || !process.stderr.isTTY
      ? undefined
      : new cliProgress.SingleBar(
          {
            format: `${label} [{bar}] {percentage}% | {hours} h simulated | {generated} requests`,
            hideCursor: true,
            stream: process.stderr,
          },
          cliProgress.Presets.shades_classic,
        );
  const cfg = o.config ? loadSimConfig(o.config) : {};
  const trace = o.traceSlow ? lineWriter(o.traceSlow) : undefined;
  // Started at the first progress report, so that load-time warnings print before it.
  let barStarted = false;
  try {
    return await runSimulation({
      ...(cfg.gpuTypes ? { gpuTypes: cfg.gpuTypes } : {}),
      ...(cfg.timings ? { timings: cfg.timings } : {}),
      ...(cfg.slo ? { slo: cfg.slo } : {}),
      ...(cfg.regionAgent ? { regionAgent: cfg.regionAgent } : {}),
      ...(cfg.planner ? { planner: cfg.planner } : {}),
      ...(cfg.sloCapacity ? { sloCapacity: true } : {}),
      scenario: o.scenario,
      policy,
      seed: o.seed,
      ...(o.scale !== undefined ? { scale: o.scale } : {}),
      transforms: transformsOf(o),
      ...(warn ? { onWarning: (m: string) => console.error(`warning: ${m}`) } : {}),
      // The simulator's actors are our own typed code: their messages are not re-validated unless asked
      // (tests and `--validate` do; every live boundary always does).
      validate: o.validate ?? false,
      ...(trace ? { traceSlow: (r: SlowRequest) => trace.write(r) } : {}),
      onProgress: (p) => {
        if (bar && !barStarted) {
          bar.start(100, 0, { hours: 0, generated: 0 });
          barStarted = true;
        }
        bar?.update(Math.min(100, Math.round((100 * p.simulatedMs) / Math.max(1, p.durationMs))), {
          hours: (p.simulatedMs / 3_600_000).toFixed(1),
          generated: p.generated,
        });
      },
    });
  } finally {
    if (barStarted) bar?.stop();
    trace?.close();
  }
}

/** JSON lines to a file, written in blocks (a 10× day can trace hundreds of thousands of requests). */
function lineWriter(path: string): { write(x: unknown): void; close(): void; count: number } {
  let fd: number;
  try {
    fd = openSync(path, "w");
  } catch (e) {
    throw new SageError("CONFIG", `--trace-slow: cannot write ${path}: ${errorMessage(e)}`);
  }
  let buf: string[] = [];
  const flush = () => {
    if (buf.length) writeSync(fd, `${buf.join("\n")}\n`);
    buf = [];
  };
  const w = {
    count: 0,
    write(x: unknown) {
      buf.push(JSON.stringify(x));
      w.count++;
      if (buf.length >= 4096) flush();
    },
    close() {
      flush();
      closeSync(fd);
    },
  };
  return w;
}

function row(r: SimReport): string[] {
  return [
    r.policy,
    r.gpuHours.total.toFixed(1),
    overBoundCell(r),
    r.gpuHours.scalingOverhead.toFixed(1),
    `$${r.costUsd.toFixed(0)}`,
    ...(["iw-fast", "iw-normal", "niw"] as const).map((t) => `${(100 * r.slo[t].attainment).toFixed(2)}%`),
    `${(100 * r.slo["iw-fast"].attainmentFeasible).toFixed(2)}%`,
    String(r.slo["iw-fast"].infeasible + r.slo["iw-normal"].infeasible),
    (r.latencyMs["iw-fast"].ttft.p99 / 1000).toFixed(2),
    String(r.requests.dropped),
  ];
}

/** GPU-hours over the workload's capacity bound (docs/simulator.md "Capacity bound"), "–" without one. */
function overBoundCell(r: SimReport): string {
  const x = overBound(r);
  return x === undefined ? "–" : `${x >= 0 ? "+" : "−"}${Math.abs(100 * x).toFixed(1)}%`;
}

function table(reports: SimReport[]): string {
  const head = [
    "policy",
    "GPU-h",
    "vs bound",
    "overhead GPU-h",
    "cost",
    "SLO iw-fast",
    "SLO iw-normal",
    "SLO niw",
    "iw-fast feasible",
    "IW infeasible",
    "TTFT p99 s",
    "dropped",
  ];
  const rows = [head, ...reports.map(row)];
  const widths = head.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  "))
    .join("\n");
}

/** Turns every expected failure into one clear line naming what was wrong; exit code 2. */
export function explain(e: unknown): string {
  if (e instanceof TraceError) return `invalid input: ${e.message}`;
  if (isSageError(e)) return `${e.code}: ${e.message}`;
  if (e instanceof ZodError) return `invalid scenario: ${describeIssues(e.issues)}`;
  throw e;
}

export async function simCommand(policy: string, o: SimCliOptions): Promise<number> {
  try {
    checkPolicy(policy);
    const res = await runOne(policy, o, policy, true);
    for (const w of res.report.warnings ?? []) console.error(`warning: ${w}`);
    const files = writeReports(o.out, res.report, res.run);
    if (o.json)
      console.log(
        JSON.stringify({
          ...files,
          run: res.run,
          gpuHours: res.report.gpuHours.total,
          slo: res.report.slo,
          warnings: res.warnings,
        }),
      );
    else {
      console.log(table([res.report]));
      const b = res.report.capacityBound;
      if (b)
        console.log(
          `capacity bound of this workload: ${b.total.toFixed(1)} GPU-h (every model's regions pooled: ${b.pooled.total.toFixed(1)})`,
        );
      console.log(
        `\n${res.generated.toLocaleString("en-US")} requests in ${(res.run.wallTimeMs / 1000).toFixed(1)} s wall (${res.run.simulatedRequestsPerWallSecond.toLocaleString("en-US")} simulated requests/s)`,
      );
      console.log(`wrote ${files.json} and ${files.html}`);
    }
    return 0;
  } catch (e) {
    console.error(explain(e));
    return 2;
  }
}

export async function compareCommand(policies: string[], o: SimCliOptions): Promise<number> {
  try {
    for (const p of policies) checkPolicy(p);
    const results: SimResult[] = [];
    // One workload for every policy: its warnings once.
    for (const p of policies) results.push(await runOne(p, o, p, results.length === 0));
    for (const w of new Set(results.flatMap((r) => r.report.warnings ?? []))) console.error(`warning: ${w}`);
    const files = writeComparison(
      o.out,
      results.map((r) => r.report),
      results.map((r) => r.run),
    );
    if (o.json)
      console.log(
        JSON.stringify({
          ...files,
          policies: results.map((r) => ({ policy: r.report.policy, gpuHours: r.report.gpuHours.total })),
        }),
      );
    else {
      console.log(table(results.map((r) => r.report)));
      const base = results[0]!.report.gpuHours.total;
      for (const r of results.slice(1)) {
        console.log(
          `${r.report.policy}: ${((100 * (r.report.gpuHours.total - base)) / base).toFixed(1)} % GPU-hours vs ${results[0]!.report.policy}`,
        );
      }
      console.log(`wrote ${files.json} and ${files.html}`);
    }
    return 0;
  } catch (e) {
    console.error(explain(e));
    return 2;
  }
}

export const POLICY_NAMES = POLICIES;
