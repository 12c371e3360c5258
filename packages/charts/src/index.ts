import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

/**
 * The chart code shared by the live dashboard and the simulator's report.html: uPlot (inlined, so
 * pages work offline) and one browser-side helper, `sageChart(el, spec)`, that draws a line chart
 * or updates it in place when called again with the same series.
 */
const require = createRequire(import.meta.url);
const cache = new Map<string, string>();

function asset(path: string): string {
  let s = cache.get(path);
  if (s === undefined) {
    s = readFileSync(require.resolve(path), "utf8");
    cache.set(path, s);
  }
  return s;
}

export const uplotCss = (): string => asset("uplot/dist/uPlot.min.css");
export const uplotJs = (): string => asset("uplot/dist/uPlot.iife.min.js");

/** Line colours, in series order. Tests look for these in screenshots. */
export const PALETTE = [
  "#2563eb",
  "#dc2626",
  "#16a34a",
  "#9333ea",
  "#ea580c",
  "#0891b2",
  "#4d7c0f",
  "#be185d",
  "#64748b",
  "#ca8a04",
  "#1e3a8a",
  "#7f1d1d",
];

/**
 * Browser script. spec = { title, x: number[], xLabel?, yLabel?, time?: boolean (x in epoch
 * seconds), height?, yRange?: [min, max], series: [{ label, values: number[], dash?: boolean }] }.
 */
export const CHART_JS = `
const SAGE_PALETTE = ${JSON.stringify(PALETTE)};
const sageCharts = new Map();
function sageChart(el, spec) {
  const labels = spec.series.map((s) => s.label).join("\\u0000");
  const data = [spec.x, ...spec.series.map((s) => s.values.slice(0, spec.x.length))];
  const prev = sageCharts.get(el);
  if (prev && prev.labels === labels) { prev.plot.setData(data); return prev.plot; }
  if (prev) prev.plot.destroy();
  const width = Math.max(320, Math.min(spec.maxWidth || 1100, (el.clientWidth || window.innerWidth) - 8));
  const opts = {
    // A static legend (labels and line styles): the live one showed "--" for every value until hovered.
    title: spec.title, width, height: spec.height || 260, legend: { live: false },
    scales: { x: { time: !!spec.time }, ...(spec.yRange ? { y: { range: spec.yRange } } : {}) },
    axes: [{ label: spec.xLabel || "" }, { size: 70, label: spec.yLabel || "" }],
    series: [{ label: spec.xLabel || "x" }, ...spec.series.map((s, i) => ({
      label: s.label, stroke: SAGE_PALETTE[i % SAGE_PALETTE.length], width: 1.5, ...(s.dash ? { dash: [6, 4] } : {}),
    }))],
  };
  const plot = new uPlot(opts, data, el);
  sageCharts.set(el, { plot, labels });
  return plot;
}
`;

/** `<style>` and `<script>` tags that a page includes once, before its own scripts. */
export function chartHead(): string {
  return `<style>${uplotCss()}</style><script>${uplotJs()}</script><script>${CHART_JS}</script>`;
}
