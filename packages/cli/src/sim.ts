import { closeSync, openSync, writeSync } from "node:fs";
import { describeIssues, isSageError, SageError } from "@sageserve/protocol";
import {
  checkPolicy,
  loadSimConfig,
  POLICIES,
  runSimulation,
  type SimReport,
  type SimResult,
  type SlowRequest,
  TraceError,
  writeComparison,
  writeReports,
} from "@sageserve/sim";
import cliProgress from "cli-progress";
import { ZodError } from "zod";

export interface SimCliOptions {
  scenario: string;
  seed: number;
  scale?: number;
  out: string;
  json?: boolean;
  validate?: boolean;
  progress?: boolean;
  config?: string;
  /** JSONL file: one record per request that missed its TTFT target (sim only). */
  traceSlow?: string;
}

async function runOne(policy: string, o: SimCliOptions, label: string): Promise<SimResult> {
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
  bar?.start(100, 0, { hours: 0, generated: 0 });
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
      ...(o.scale ? { scale: o.scale } : {}),
      validate: o.validate ?? true,
      ...(trace ? { traceSlow: (r: SlowRequest) => trace.write(r) } : {}),
      onProgress: (p) =>
        bar?.update(Math.min(100, Math.round((100 * p.simulatedMs) / Math.max(1, p.durationMs))), {
          hours: (p.simulatedMs / 3_600_000).toFixed(1),
          generated: p.generated,
        }),
    });
  } finally {
    bar?.stop();
    trace?.close();
  }
}

/** JSON lines to a file, written in blocks (a 10× day can trace hundreds of thousands of requests). */
function lineWriter(path: string): { write(x: unknown): void; close(): void; count: number } {
  let fd: number;
  try {
    fd = openSync(path, "w");
  } catch (e) {
    throw new SageError("CONFIG", `--trace-slow: cannot write ${path}: ${(e as Error).message}`);
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
    r.gpuHours.scalingOverhead.toFixed(1),
    `$${r.costUsd.toFixed(0)}`,
    ...(["iw-fast", "iw-normal", "niw"] as const).map((t) => `${(100 * r.slo[t].attainment).toFixed(2)}%`),
    `${(100 * r.slo["iw-fast"].attainmentFeasible).toFixed(2)}%`,
    String(r.slo["iw-fast"].infeasible + r.slo["iw-normal"].infeasible),
    (r.latencyMs["iw-fast"].ttft.p99 / 1000).toFixed(2),
    String(r.requests.dropped),
  ];
}

function table(reports: SimReport[]): string {
  const head = [
    "policy",
    "GPU-h",
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
  if (e instanceof TraceError) return `invalid trace: ${e.message}`;
  if (isSageError(e)) return `${e.code}: ${e.message}`;
  if (e instanceof ZodError) return `invalid scenario: ${describeIssues(e.issues)}`;
  throw e;
}

export async function simCommand(policy: string, o: SimCliOptions): Promise<number> {
  try {
    checkPolicy(policy);
    const res = await runOne(policy, o, policy);
    for (const w of res.report.warnings ?? []) console.error(`warning: ${w}`);
    const files = writeReports(o.out, res.report, res.run);
    if (o.json)
      console.log(
        JSON.stringify({ ...files, run: res.run, gpuHours: res.report.gpuHours.total, slo: res.report.slo }),
      );
    else {
      console.log(table([res.report]));
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
    for (const p of policies) results.push(await runOne(p, o, p));
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
