import { chartHead } from "@sageserve/charts";
import { TIERS } from "@sageserve/protocol";
import { overBound } from "./bound.js";
import type { SimReport } from "./report.js";

/**
 * A self-contained HTML report (no network): uPlot and the chart helper shared with the live
 * dashboard are inlined, the data is embedded as JSON. One report or several (a policy comparison).
 */

const esc = (s: string): string => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
const fmt = (x: number, d = 1): string =>
  x.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });

/** The capacity bound and the run's GPU-hours over it, e.g. "7,391.4 (+7.9 %)"; "–" without one. */
function boundCell(r: SimReport): string {
  const over = overBound(r);
  if (!r.capacityBound || over === undefined) return "–";
  return `${fmt(r.capacityBound.total)} (${over >= 0 ? "+" : "−"}${fmt(100 * Math.abs(over))} %)`;
}

function summaryTable(reports: SimReport[]): string {
  const maxHours = Math.max(...reports.map((r) => r.gpuHours.total), 1);
  const rows = reports
    .map(
      (r) => `<tr><td>${esc(r.policy)}</td>
<td class="num">${fmt(r.gpuHours.total)}<div class="bar" style="width:${(100 * r.gpuHours.total) / maxHours}%"></div></td>
<td class="num">${boundCell(r)}</td>
<td class="num">${fmt(r.gpuHours.scalingOverhead)}</td><td class="num">$${fmt(r.costUsd, 0)}</td>
${TIERS.map((t) => `<td class="num">${fmt(100 * r.slo[t].attainment, 2)} %</td>`).join("")}
<td class="num">${fmt(r.latencyMs["iw-fast"].ttft.p99 / 1000, 2)} s</td>
<td class="num">${r.requests.dropped}</td><td class="num">${r.niw.deadlineMisses}</td></tr>`,
    )
    .join("\n");
  return `<table><thead><tr><th>policy</th><th>GPU-hours</th><th title="the workload's capacity bound: what an oracle holding exactly the capacity model's count each minute pays">capacity bound (this run over it)</th><th>scaling overhead GPU-h</th><th>cost</th>
${TIERS.map((t) => `<th>SLO ${t}</th>`).join("")}<th>IW-fast TTFT p99</th><th>dropped</th><th>NIW deadline misses</th></tr></thead>
<tbody>${rows}</tbody></table>`;
}

function latencyTable(r: SimReport): string {
  const cell = (p: { p50: number; p95: number; p99: number }) =>
    `${fmt(p.p50 / 1000, 2)} / ${fmt(p.p95 / 1000, 2)} / ${fmt(p.p99 / 1000, 2)}`;
  return `<table><thead><tr><th>${esc(r.policy)}: tier</th><th>completed</th><th>TTFT s p50/p95/p99</th><th>TBT s p50/p95/p99</th><th>E2E s p50/p95/p99</th></tr></thead><tbody>
${TIERS.map((t) => `<tr><td>${t}</td><td class="num">${r.slo[t].completed}</td><td>${cell(r.latencyMs[t].ttft)}</td><td>${cell(r.latencyMs[t].tbt)}</td><td>${cell(r.latencyMs[t].e2e)}</td></tr>`).join("\n")}
</tbody></table>`;
}

/**
 * SLO feasibility: attainment over all requests and over those whose prompt the serving GPU type could
 * prefill within the target on an idle instance, and prompts beyond the measured profiles.
 */
function feasibilityTables(reports: SimReport[]): string {
  const slo = reports.flatMap((r) =>
    TIERS.map((t) => {
      const s = r.slo[t];
      return `<tr><td>${esc(r.policy)}</td><td>${t}</td><td>${esc(s.target)}</td><td class="num">${fmt(100 * s.attainment, 2)} %</td>
<td class="num">${s.infeasible.toLocaleString("en-US")} (${fmt(100 * s.infeasibleShare, 2)} %)</td><td class="num">${fmt(100 * s.attainmentFeasible, 2)} %</td></tr>`;
    }),
  );
  const byModel = reports.flatMap((r) =>
    Object.entries(r.sloByModel ?? {}).map(
      ([m, row]) =>
        `<tr><td>${esc(r.policy)}</td><td>${esc(m)}</td>${TIERS.map((t) => `<td class="num">${fmt(100 * row[t].attainment, 2)} % / ${fmt(100 * row[t].attainmentFeasible, 2)} %</td>`).join("")}</tr>`,
    ),
  );
  const beyond = reports.flatMap((r) =>
    Object.entries(r.beyondProfile.byModel).map(
      ([m, n]) =>
        `<tr><td>${esc(r.policy)}</td><td>${esc(m)}</td><td class="num">${(r.beyondProfile.measuredPromptTokens[m] ?? 0).toLocaleString("en-US")}</td><td class="num">${n.toLocaleString("en-US")}</td></tr>`,
    ),
  );
  return `<p>A request is <em>infeasible</em> when its prompt alone, on an idle instance of the GPU type that served it,
takes longer to prefill than its tier's TTFT target (the performance model's idle prefill time): no scheduling could have met it.</p>
<table><thead><tr><th>policy</th><th>tier</th><th>target</th><th>SLO over all requests</th><th>infeasible (share)</th><th>SLO over feasible requests</th></tr></thead>
<tbody>${slo.join("\n")}</tbody></table>
<p>SLO by model (over all requests / over the feasible ones): where the misses are.</p>
<table><thead><tr><th>policy</th><th>model</th>${TIERS.map((t) => `<th>${t}</th>`).join("")}</tr></thead>
<tbody>${byModel.join("\n")}</tbody></table>
<p>Prompts longer than the measured profile of the model and GPU type that served them (their timing is extrapolated):</p>
<table><thead><tr><th>policy</th><th>model</th><th>measured up to (tokens)</th><th>requests beyond</th></tr></thead>
<tbody>${beyond.join("\n")}</tbody></table>`;
}

export function renderReportHtml(reports: SimReport[], title?: string): string {
  const heading =
    title ??
    (reports.length === 1
      ? `${reports[0]!.scenario} — ${reports[0]!.policy}`
      : `${reports[0]?.scenario}: policy comparison`);
  const data = reports.map((r) => ({
    policy: r.policy,
    bins: r.timeseries.bins,
    binMinutes: r.timeseries.binMinutes,
  }));
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>SageServe simulation: ${esc(heading)}</title>
${chartHead()}
<style>
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:12px 0}td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}
td.num{text-align:right}.bar{height:4px;background:#3b82f6;margin-top:2px}h2{margin-top:32px}.chart{margin:12px 0}</style>
</head><body>
<h1>SageServe simulation: ${esc(heading)}</h1>
<p>Seed ${reports[0]?.seed}, ${fmt(reports[0]?.simulatedHours ?? 0)} simulated hours, ${reports[0]?.requests.generated.toLocaleString("en-US")} requests.</p>
<h2>GPU-hours and SLOs by policy</h2>${summaryTable(reports)}
<h2>SLO feasibility</h2>${feasibilityTables(reports)}
<h2>Instances over time (paid VMs)</h2><div id="instances"></div>
<h2>Load vs capacity</h2><p>Requests finished per 15 minutes against paid VMs, all models and regions.</p><div id="load"></div>
<h2>Latency percentiles</h2>${reports.map(latencyTable).join("\n")}
<script>
const runs = ${JSON.stringify(data)};
function chart(el, title, x, series, labels) {
  sageChart(el, { title, x, xLabel: "hours", height: 300, series: labels.map((label, i) => ({ label, values: series[i] })) });
}
for (const run of runs) {
  const keys = [...new Set(run.bins.flatMap((b) => Object.keys(b.instances)))].sort();
  const x = run.bins.map((b) => b.tMinutes / 60);
  const div = document.createElement("div"); div.className = "chart"; document.getElementById("instances").appendChild(div);
  chart(div, run.policy + ": paid VMs per model|region", x, keys.map((k) => run.bins.map((b) => b.instances[k] ?? 0)), keys);
}
{
  const x = runs[0] ? runs[0].bins.map((b) => b.tMinutes / 60) : [];
  const series = [], labels = [];
  for (const run of runs) {
    series.push(run.bins.map((b, i) => i === 0 ? 0 : b.finished - run.bins[i - 1].finished)); labels.push(run.policy + " finished/bin");
    series.push(run.bins.map((b) => Object.values(b.instances).reduce((a, n) => a + n, 0) * 100)); labels.push(run.policy + " VMs ×100");
  }
  chart(document.getElementById("load"), "load vs capacity", x, series.map((s) => s.slice(0, x.length)), labels);
}
</script></body></html>
`;
}
