import { chartHead } from "@sageserve/charts";

/**
 * The live dashboard: one self-contained page (uPlot inlined) that polls `/api/state` and redraws.
 * `document.body.dataset.points` holds the number of points drawn (tests wait on it).
 */
export function renderDashboardHtml(pollMs: number): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>SageServe — live</title>
${chartHead()}
${PAGE_STYLE}</head><body>
${PAGE_BODY}<script>
${RENDER_SCRIPT}${pollScript(pollMs)}</script></body></html>
`;
}

// The page's parts below are plain text the browser runs (CSS, markup, and a script in browser
// JavaScript): kept as strings, apart from the one function that assembles them.

const PAGE_STYLE = `<style>
body{font-family:system-ui,sans-serif;margin:16px 24px;color:#222;background:#fff}
h1{margin:0 0 4px}h2{margin:20px 0 6px;font-size:17px}.muted{color:#666;font-size:13px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}.card{border:1px solid #ddd;border-radius:6px;padding:8px 12px;min-width:150px}
.card b{display:block;font-size:20px}.card small{display:block;color:#666}.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:8px}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}td.num{text-align:right}
</style>`;

/** The page's layout: the elements `render` fills in. */
const PAGE_BODY = `<h1>SageServe — live cluster</h1>
<div class="muted" id="meta">connecting…</div>
<div class="cards" id="cards"></div>
<div class="grid">
  <div id="c-instances"></div><div id="c-load"></div>
  <div id="c-niw"></div><div id="c-slo"></div>
  <div id="c-ttft"></div><div id="c-gpuh"></div>
</div>
<h2>SLO and latency per tier (latency over the last requests)</h2><div id="latency"></div>
<p class="muted" id="feasibility"></p>
<h2>Regions</h2><div id="regions"></div>
<h2>Current plan and its forecast</h2><div id="plan"></div>
`;

/** Browser script: draws one `/api/state` response (cards, charts, tables). */
const RENDER_SCRIPT = `const TIERS = ["iw-fast", "iw-normal", "niw"];
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => "&#" + c.charCodeAt(0) + ";");
const fmt = (x, d = 1) => x == null ? "–" : Number(x).toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });
const pct = (x) => x == null ? "–" : fmt(100 * x, 2) + " %";
function table(head, rows) {
  return "<table><thead><tr>" + head.map((h) => "<th>" + esc(h) + "</th>").join("") + "</tr></thead><tbody>" +
    rows.map((r) => "<tr>" + r.map((c) => typeof c === "number" ? '<td class="num">' + fmt(c, Number.isInteger(c) ? 0 : 2) + "</td>" : "<td>" + esc(c) + "</td>").join("") + "</tr>").join("") +
    "</tbody></table>";
}
function render(s) {
  const pts = s.points, x = pts.map((p) => p.t);
  document.getElementById("meta").textContent = "updated " + new Date(s.atMs).toLocaleTimeString() +
    " · up " + fmt((s.atMs - s.startedAtMs) / 60000) + " min · " + pts.length + " points";
  const done = TIERS.reduce((a, t) => a + s.tiers[t].completed + s.tiers[t].failed, 0);
  const serving = pts.length ? Object.values(pts[pts.length - 1].instances).reduce((a, n) => a + n, 0) : 0;
  const niw = s.regions.reduce((a, r) => a + r.endpoints.reduce((b, e) => b + e.niwQueueDepth, 0), 0);
  document.getElementById("cards").innerHTML = [
    ["requests finished", fmt(done, 0)], ["serving instances", fmt(serving, 0)], ["GPU-hours so far", fmt(s.gpuHours, 2)],
    ["NIW queued", fmt(niw, 0)],
    ...TIERS.map((t) => ["SLO " + t, pct(s.tiers[t].attainment), "last 5 min: " + pct(s.tiers[t].attainmentRecent) + (s.tiers[t].infeasible ? " · feasible only: " + pct(s.tiers[t].attainmentFeasible) : "")]),
  ].map(([k, v, sub]) => '<div class="card">' + esc(k) + "<b>" + esc(v) + "</b>" + (sub ? "<small>" + esc(sub) + "</small>" : "") + "</div>").join("");
  const keys = [...new Set(pts.flatMap((p) => Object.keys(p.instances)))].sort();
  sageChart(document.getElementById("c-instances"), { title: "serving instances per model | region | GPU", time: true, x, maxWidth: 700,
    series: keys.map((k) => ({ label: k, values: pts.map((p) => p.instances[k] || 0) })) });
  sageChart(document.getElementById("c-load"), { title: "load vs capacity (KV-cache tokens)", time: true, x, maxWidth: 700,
    series: [{ label: "KV used", values: pts.map((p) => p.kvUsedTokens) }, { label: "KV capacity", values: pts.map((p) => p.kvCapacityTokens), dash: true }] });
  const regions = [...new Set(pts.flatMap((p) => Object.keys(p.niwQueue)))].sort();
  sageChart(document.getElementById("c-niw"), { title: "NIW queue depth per region", time: true, x, maxWidth: 700,
    series: regions.map((r) => ({ label: r, values: pts.map((p) => p.niwQueue[r] || 0) })) });
  const pctOf = (v) => v == null ? null : 100 * v;
  // Solid: the last 5 minutes, so a burst long past does not pin the line; dashed: since the start.
  sageChart(document.getElementById("c-slo"), { title: "SLO attainment (%) per tier: last 5 min / since start (dashed)", time: true, x, maxWidth: 700, yRange: [0, 100],
    series: TIERS.flatMap((t) => [{ label: t + " 5 min", values: pts.map((p) => pctOf(p.attainmentRecent ? p.attainmentRecent[t] : null)) },
      { label: t + " all", values: pts.map((p) => pctOf(p.attainment[t])), dash: true }]) });
  sageChart(document.getElementById("c-ttft"), { title: "TTFT p50 / p99 (ms) per tier", time: true, x, maxWidth: 700,
    series: TIERS.flatMap((t) => [{ label: t + " p50", values: pts.map((p) => p.ttftP50[t]) }, { label: t + " p99", values: pts.map((p) => p.ttftP99[t]), dash: true }]) });
  sageChart(document.getElementById("c-gpuh"), { title: "GPU-hours so far", time: true, x, maxWidth: 700,
    series: [{ label: "GPU-hours", values: pts.map((p) => p.gpuHours) }] });
  document.getElementById("latency").innerHTML = table(["tier", "completed", "failed", "cancelled", "rejected", "SLO (all)", "SLO (last 5 min)", "infeasible", "SLO (feasible)", "TTFT p50 ms", "TTFT p99 ms", "TBT p50 ms", "TBT p99 ms"],
    TIERS.map((t) => { const v = s.tiers[t]; return [t, v.completed, v.failed, v.cancelled || 0, v.rejected || 0, pct(v.attainment), pct(v.attainmentRecent), v.infeasible + " (" + pct(v.infeasibleShare) + ")", pct(v.attainmentFeasible), v.ttftMs ? v.ttftMs.p50 : "–", v.ttftMs ? v.ttftMs.p99 : "–", v.tbtMs ? v.tbtMs.p50 : "–", v.tbtMs ? v.tbtMs.p99 : "–"]; }));
  const beyond = Object.entries(s.beyondProfile || {});
  document.getElementById("feasibility").textContent = !s.feasibilityJudged
    ? "SLO feasibility not judged (no performance model given): every request counts as feasible."
    : "Infeasible: the prompt alone, on an idle instance of the GPU type that served it, prefills slower than the tier's TTFT target. " +
      "Prompts beyond the measured profile: " + (beyond.length ? beyond.map(([m, n]) => m + " " + n).join(", ") : "none") + ".";
  document.getElementById("regions").innerHTML = table(["region", "model", "instances by state", "KV util", "NIW queued", "demand needs"],
    s.regions.flatMap((r) => r.endpoints.map((e) => [r.region, e.model,
      Object.entries(e.instances).map(([k, n]) => k + " " + n).join(", ") || "none", pct(e.memoryUtilization), e.niwQueueDepth, e.demandNeed ?? "–"])));
  const p = s.plan;
  document.getElementById("plan").innerHTML = !p ? "<p class='muted'>no plan yet</p>" :
    "<p class='muted'>" + esc(p.planId) + " · " + esc(p.strategy) + " · window " + new Date(p.windowStartMs).toLocaleTimeString() + "–" +
    new Date(p.windowEndMs).toLocaleTimeString() + " · solver " + esc(p.solver.status) + " in " + fmt(p.solver.solveMs, 0) + " ms</p>" +
    table(["model", "region", "GPU", "instances", "change"], p.targets.map((t) => [t.model, t.region, t.gpuType, t.instances, t.delta ?? 0])) +
    table(["model", "region", "tier", "forecast tokens/s"], p.forecast.map((f) => [f.model, f.region, f.tier || "all", f.tokensPerSecond])) +
    (p.notes.length ? "<ul>" + p.notes.slice(0, 10).map((n) => "<li>" + esc(n) + "</li>").join("") + "</ul>" : "");
  document.body.dataset.points = String(pts.length);
  document.body.dataset.finished = String(done);
}
`;

/** Browser script: fetch the state every `pollMs` (at least 250 ms) and render it. */
function pollScript(pollMs: number): string {
  return `async function poll() {
  try {
    const r = await fetch("/api/state", { cache: "no-store" });
    if (r.ok) render(await r.json());
  } catch (e) {
    document.getElementById("meta").textContent = "disconnected: " + e;
  }
  setTimeout(poll, ${Math.max(250, pollMs)});
}
poll();
`;
}
