/**
 * Derives the simulator's compact built-in artifacts from the raw public data in
 * ../shared/data (not shipped with the project):
 *   packages/engine/data/perf-profiles.json   fitted latency curves (sageserve-perf)
 *   packages/sim/data/workload-stats.json  token-length quantiles, burstiness (Azure 2023),
 *                                          weekly rate shapes (ServeGen)
 * Run: npx tsx --conditions=source scripts/derive-artifacts.ts [path/to/shared/data]
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { type FittedProfile, fitProfiles, interpolate, parsePerfCsv } from "@sageserve/engine";

const dataDir = process.argv[2] ?? new URL("../../shared/data", import.meta.url).pathname;
const outDir = new URL("../packages/sim/data/", import.meta.url).pathname;
const engineDir = new URL("../packages/engine/data/", import.meta.url).pathname;
const round = (x: number, d = 3): number => Math.round(x * 10 ** d) / 10 ** d;
/** Latency never falls as the input grows: running maximum. */
const nonDecreasing = (ys: number[]): number[] => ys.map((_, i) => Math.max(...ys.slice(0, i + 1)));

// ---------------------------------------------------------------- performance profiles
const perfRows = parsePerfCsv(readFileSync(join(dataDir, "sageserve-perf/perf_model_4_models.csv"), "utf8"));
const fitted = fitProfiles(perfRows, (r) => r.tensorParallel === 8 && r.hardware !== "h100-80gb-pcap");
const profiles: (FittedProfile & { derivedFrom?: string })[] = fitted.map((p) => ({
  ...p,
  prefillMs: { x: p.prefillMs.x, y: p.prefillMs.y.map((y) => round(y)) },
  prefillBatchFactor: { x: p.prefillBatchFactor.x, y: p.prefillBatchFactor.y.map((y) => round(y)) },
  decodeIterMs: { x: p.decodeIterMs.x, y: p.decodeIterMs.y.map((y) => round(y)) },
}));
// C and D were measured on A100 only. Their H100 curves are derived by applying model A's
// measured H100/A100 ratio point by point (a documented assumption, flagged in the table).
const a100A = fitted.find((p) => p.profile === "A" && p.hardware === "a100-80gb")!;
const h100A = fitted.find((p) => p.profile === "A" && p.hardware === "h100-80gb")!;
for (const id of ["C", "D"]) {
  const base = fitted.find((p) => p.profile === id && p.hardware === "a100-80gb");
  if (!base) continue;
  const ratio = (c1: typeof a100A.prefillMs, c2: typeof a100A.prefillMs, x: number) =>
    interpolate(c2, x) / interpolate(c1, x);
  profiles.push({
    ...base,
    hardware: "h100-80gb",
    prefillMs: {
      x: base.prefillMs.x,
      y: nonDecreasing(
        base.prefillMs.x.map((x, i) =>
          round(base.prefillMs.y[i]! * ratio(a100A.prefillMs, h100A.prefillMs, x)),
        ),
      ),
    },
    decodeIterMs: {
      x: base.decodeIterMs.x,
      y: nonDecreasing(
        base.decodeIterMs.x.map((x, i) =>
          round(base.decodeIterMs.y[i]! * ratio(a100A.decodeIterMs, h100A.decodeIterMs, x)),
        ),
      ),
    },
    derivedFrom: `${id}/a100-80gb × A's h100-80gb/a100-80gb ratio`,
  });
}
writeFileSync(
  join(engineDir, "perf-profiles.json"),
  `${JSON.stringify({ source: "sageserve-perf/perf_model_4_models.csv (TP 8 medians)", profiles }, null, 1)}\n`,
);

// ---------------------------------------------------------------- Azure 2023: lengths and burstiness
function quantiles(xs: number[], n = 200): number[] {
  const s = [...xs].sort((a, b) => a - b);
  return Array.from(
    { length: n + 1 },
    (_, i) => s[Math.min(s.length - 1, Math.round((i / n) * (s.length - 1)))]!,
  );
}
function cv(xs: number[]): number {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  const v = xs.reduce((a, b) => a + (b - m) ** 2, 0) / xs.length;
  return Math.sqrt(v) / m;
}
const azure: Record<string, unknown> = {};
for (const kind of ["code", "conv"]) {
  const lines = readFileSync(join(dataDir, `azure-llm-2023/AzureLLMInferenceTrace_${kind}.csv`), "utf8")
    .trim()
    .split("\n")
    .slice(1);
  const t: number[] = [];
  const inp: number[] = [];
  const out: number[] = [];
  for (const l of lines) {
    const [ts, c, g] = l.split(",");
    t.push(Date.parse(`${ts!.trim().replace(" ", "T").slice(0, 23)}Z`));
    inp.push(Number(c));
    out.push(Number(g));
  }
  t.sort((a, b) => a - b);
  const gaps = t.slice(1).map((x, i) => x - t[i]!);
  // Burstiness inside one-minute windows (the rate shape itself comes from ServeGen).
  const perMinute = new Map<number, number[]>();
  for (let i = 1; i < t.length; i++) {
    const k = Math.floor(t[i]! / 60_000);
    perMinute.set(k, [...(perMinute.get(k) ?? []), gaps[i - 1]!]);
  }
  const windowCvs = [...perMinute.values()]
    .filter((g) => g.length >= 20)
    .map(cv)
    .sort((a, b) => a - b);
  azure[kind] = {
    requests: t.length,
    meanRatePerSecond: round(t.length / ((t.at(-1)! - t[0]!) / 1000)),
    interArrivalCv: round(cv(gaps)),
    medianMinuteCv: round(windowCvs[windowCvs.length >> 1]!),
    inputTokens: quantiles(inp),
    outputTokens: quantiles(out),
  };
}

// ---------------------------------------------------------------- ServeGen: weekly rate shapes
const weekly: Record<string, number[]> = {};
for (const model of ["m-large", "m-mid", "m-small"]) {
  const text = gunzipSync(readFileSync(join(dataDir, `servegen/language-${model}-rates.csv.gz`))).toString(
    "utf8",
  );
  const sum = new Array<number>(1008).fill(0);
  for (const line of text.split("\n").slice(1)) {
    const f = line.split(",");
    const w = Math.floor(Number(f[1]) / 600);
    if (w >= 0 && w < 1008 && f[2]) sum[w]! += Number(f[2]);
  }
  // Windows where every client is 0 are collection gaps (README): fill from the neighbours.
  for (let i = 0; i < sum.length; i++) {
    if (sum[i] === 0) {
      let j = i;
      while (j < sum.length && sum[j] === 0) j++;
      const left = i > 0 ? sum[i - 1]! : (sum[j] ?? 0);
      const right = j < sum.length ? sum[j]! : left;
      for (let k = i; k < j; k++) sum[k] = left + ((right - left) * (k - i + 1)) / (j - i + 1);
      i = j;
    }
  }
  const mean = sum.reduce((a, b) => a + b, 0) / sum.length;
  // Partial collection gaps remain as near-zero windows; floor the shape at 10 % of the mean.
  weekly[model] = sum.map((x) => round(Math.max(0.1, x / mean), 4));
}

writeFileSync(
  join(outDir, "workload-stats.json"),
  `${JSON.stringify({ azure2023: azure, servegenWeekly10min: weekly }, null, 0)}\n`,
);
console.log(`wrote ${engineDir}perf-profiles.json (${profiles.length} profiles) and workload-stats.json`);
