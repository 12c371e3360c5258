import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { renderReportHtml } from "./html.js";
import type { SimReport } from "./report.js";
import type { RunStats } from "./simulate.js";

/**
 * Writes report.json (deterministic: the same seed gives the same bytes), run.json
 * (wall-clock timing, which differs from run to run, so kept out of report.json)
 * and report.html.
 */
export function writeReports(dir: string, report: SimReport, run: RunStats): { json: string; html: string } {
  mkdirSync(dir, { recursive: true });
  const json = join(dir, "report.json");
  const html = join(dir, "report.html");
  writeFileSync(json, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(join(dir, "run.json"), `${JSON.stringify(run, null, 2)}\n`);
  writeFileSync(html, renderReportHtml([report]));
  return { json, html };
}

export function writeComparison(
  dir: string,
  reports: SimReport[],
  runs: RunStats[],
): { json: string; html: string } {
  mkdirSync(dir, { recursive: true });
  reports.forEach((r, i) => {
    writeReports(join(dir, r.policy), r, runs[i]!);
  });
  const json = join(dir, "compare.json");
  const html = join(dir, "report.html");
  writeFileSync(
    json,
    `${JSON.stringify({ scenario: reports[0]?.scenario, seed: reports[0]?.seed, policies: reports.map((r) => ({ policy: r.policy, gpuHours: r.gpuHours.total, costUsd: r.costUsd, slo: r.slo, dropped: r.requests.dropped })) }, null, 2)}\n`,
  );
  writeFileSync(html, renderReportHtml(reports));
  return { json, html };
}
