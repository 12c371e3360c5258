/**
 * Fitting the measured latency profiles (../shared/data/sageserve-perf) into
 * compact curves: prefill time against the batch's total prompt tokens, and
 * decode-iteration time against batch size, from the medians of repeated runs.
 */
import { tripleKey } from "@sageserve/protocol";

export interface PerfRow {
  model: string;
  hardware: string;
  promptSize: number;
  batchSize: number;
  tokenSize: number;
  promptTime: number;
  tokenTime: number;
  e2eTime: number;
  tensorParallel: number;
}

/** A piecewise-linear curve through (x, y) points, x strictly increasing. */
export interface Curve {
  x: number[];
  y: number[];
}

export interface FittedProfile {
  /** Profile model id as in the data (A, B, C, D, llama2-70b, …). */
  profile: string;
  hardware: string;
  tensorParallel: number;
  /** ms to prefill one prompt of this many tokens (batch 1). */
  prefillMs: Curve;
  /** Prefill time of a batch of b prompts relative to one prompt (measured at 512 tokens). */
  prefillBatchFactor: Curve;
  /** ms per decode iteration at this batch size. */
  decodeIterMs: Curve;
  /** How the source file's units were read (the files differ; see the data README). */
  units: { time: "ms" | "s"; tokenTime: "per-iteration" | "total" };
  /** Number of measurement rows behind the profile. */
  rows: number;
}

export class PerfDataError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`perf data line ${line}: ${message}`);
    this.name = "PerfDataError";
  }
}

const COLUMNS = [
  "model",
  "hardware",
  "prompt_size",
  "batch_size",
  "token_size",
  "prompt_time",
  "token_time",
  "e2e_time",
  "tensor_parallel",
];

export function parsePerfCsv(text: string): PerfRow[] {
  const lines = text.split(/\r?\n/).filter((l) => l.trim().length > 0);
  const header = (lines[0] ?? "").split(",").map((h) => h.trim());
  const idx = COLUMNS.map((c) => header.indexOf(c));
  const missing = COLUMNS.filter((_, i) => idx[i]! < 0);
  if (missing.length) throw new PerfDataError(1, `missing column(s) ${missing.join(", ")}`);
  return lines.slice(1).map((line, i) => {
    const f = line.split(",");
    const num = (col: number, name: string): number => {
      const v = Number(f[idx[col]!]);
      if (!Number.isFinite(v)) throw new PerfDataError(i + 2, `${name} is not a number: '${f[idx[col]!]}'`);
      return v;
    };
    return {
      model: f[idx[0]!]!.trim(),
      hardware: f[idx[1]!]!.trim(),
      promptSize: num(2, "prompt_size"),
      batchSize: num(3, "batch_size"),
      tokenSize: num(4, "token_size"),
      promptTime: num(5, "prompt_time"),
      tokenTime: num(6, "token_time"),
      e2eTime: num(7, "e2e_time"),
      tensorParallel: num(8, "tensor_parallel"),
    };
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Keep the points that continue a non-decreasing run: drops the few measurement artefacts (e.g. a batch-64 prefill faster than batch 32). */
function monotone(points: [number, number][]): Curve {
  points.sort((a, b) => a[0] - b[0]);
  const x: number[] = [];
  const y: number[] = [];
  for (const [px, py] of points) {
    if (x.length && px === x[x.length - 1]) {
      y[y.length - 1] = Math.max(y[y.length - 1]!, py);
      continue;
    }
    if (y.length && py < y[y.length - 1]! * 0.9) continue;
    x.push(px);
    y.push(Math.max(py, y.length ? y[y.length - 1]! : 0));
  }
  return { x, y };
}

/** Fit one profile per (model, hardware, TP) group. `keep` filters rows (tests hold some back). */
export function fitProfiles(rows: PerfRow[], keep: (r: PerfRow) => boolean = () => true): FittedProfile[] {
  const groups = new Map<string, PerfRow[]>();
  for (const r of rows) {
    if (!keep(r)) continue;
    const k = tripleKey(r.model, r.hardware, String(r.tensorParallel));
    const g = groups.get(k);
    if (g) g.push(r);
    else groups.set(k, [r]);
  }
  const out: FittedProfile[] = [];
  for (const [k, g] of groups) {
    const [profile, hardware, tp] = k.split("|") as [string, string, string];
    // Units: a 70B-class prefill of 128+ tokens never takes under 5 ms, so small medians mean seconds.
    const time = median(g.map((r) => r.e2eTime)) < 100 ? "s" : "ms";
    const scale = time === "s" ? 1000 : 1;
    // Token time: per iteration if it stays flat as token_size grows, else the total over token_size tokens.
    const b1 = g.filter((r) => r.batchSize === 1 && r.promptSize === 512);
    const small = b1.filter((r) => r.tokenSize === Math.min(...b1.map((x) => x.tokenSize)));
    const large = b1.filter((r) => r.tokenSize === Math.max(...b1.map((x) => x.tokenSize)));
    const ratio =
      small.length && large.length
        ? median(large.map((r) => r.tokenTime)) / median(small.map((r) => r.tokenTime))
        : 1;
    const tokenTime = ratio > 4 ? "total" : "per-iteration";
    const iterMs = (r: PerfRow): number =>
      (tokenTime === "total" ? r.tokenTime / r.tokenSize : r.tokenTime) * scale;

    const byKey = (f: (r: PerfRow) => string): Map<string, PerfRow[]> => {
      const m = new Map<string, PerfRow[]>();
      for (const r of g) m.set(f(r), [...(m.get(f(r)) ?? []), r]);
      return m;
    };
    // A batch of prompts does not cost the same as one prompt of the same total length (for the small
    // models 4 × 512 tokens prefill 3× faster than one 2,048-token prompt), so length and batch are
    // separate curves.
    const prefillPts: [number, number][] = [];
    const batchPts: [number, number][] = [];
    const groups = byKey((r) => `${r.promptSize}x${r.batchSize}`);
    const one512 = groups.get("512x1");
    const base512 = one512 ? median(one512.map((r) => r.promptTime * scale)) : Number.NaN;
    for (const rs of groups.values()) {
      const r0 = rs[0]!;
      const ms = median(rs.map((r) => r.promptTime * scale));
      if (r0.batchSize === 1) prefillPts.push([r0.promptSize, ms]);
      if (r0.promptSize === 512 && Number.isFinite(base512)) batchPts.push([r0.batchSize, ms / base512]);
    }
    const decodePts: [number, number][] = [];
    const baseTokens = Math.min(...g.map((r) => r.tokenSize));
    for (const rs of byKey((r) => `${r.batchSize}`).values()) {
      const sel = rs.filter((r) => r.tokenSize === baseTokens && r.promptSize === 512);
      const use = sel.length ? sel : rs;
      decodePts.push([use[0]!.batchSize, median(use.map(iterMs))]);
    }
    out.push({
      profile,
      hardware,
      tensorParallel: Number(tp),
      prefillMs: monotone(prefillPts),
      prefillBatchFactor: monotone(batchPts),
      decodeIterMs: monotone(decodePts),
      units: { time, tokenTime },
      rows: g.length,
    });
  }
  return out.sort((a, b) =>
    `${a.profile}${a.hardware}${a.tensorParallel}`.localeCompare(
      `${b.profile}${b.hardware}${b.tensorParallel}`,
    ),
  );
}

/**
 * Piecewise-linear interpolation. Below the first point the first value holds
 * (fixed overheads dominate small inputs); beyond the last point the last
 * segment's slope continues.
 */
export function interpolate(c: Curve, x: number): number {
  const n = c.x.length;
  if (n === 0) return Number.NaN;
  if (n === 1 || x <= c.x[0]!) return c.y[0]!;
  let hi = n - 1;
  if (x < c.x[n - 1]!) {
    let lo = 0;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (c.x[mid]! <= x) lo = mid;
      else hi = mid;
    }
  }
  const x0 = c.x[hi - 1]!;
  const y0 = c.y[hi - 1]!;
  return y0 + ((c.y[hi]! - y0) * (x - x0)) / (c.x[hi]! - x0);
}
