import { basename } from "node:path";
import { MODELS } from "@sageserve/engine";
import { errorMessage, TIERS, type Tier } from "@sageserve/protocol";
import type { TokenQuantiles } from "./arrivals.js";
import { readLines } from "./lines.js";
import { TraceError } from "./types.js";

/**
 * Rate files: per time bin, the request rate of each stream (a model, a region, a client — whichever
 * columns the file has), with its burstiness; and length files: per stream and window, the
 * distribution of prompt and output lengths. ServeGen's published per-client data (concatenated per
 * model with `client_id`) is one instance of the layout:
 *   rates CSV    window_start_s, rate_rps [, cv] [, model] [, region] [, client_id] [, tier] …
 *   lengths JSONL {"window_start_s", ["client_id", "model", "region",] "input_tokens": {"<n>": p, …},
 *                  "output_tokens": {…}}
 * Other columns (ServeGen's fitted `arrival_dist`, `dist_param1/2`) are ignored.
 */
export interface RateStreamKey {
  model?: string;
  region?: string;
  client?: string;
  tier?: Tier;
}

export interface RateSeries extends RateStreamKey {
  /** Requests per second in each bin from the table's start; NaN where the file has no row. */
  rates: Float64Array;
  /** Inter-arrival CV per bin (NaN: not given). */
  cv: Float64Array;
  /** Requests in the whole file (Σ rate × bin length), to weigh this stream's length data. */
  requests: number;
}

export interface RateTable {
  file: string;
  binSeconds: number;
  /** Earliest window start in the file (s): time 0 of a run. */
  startSeconds: number;
  bins: number;
  series: RateSeries[];
}

const KEY_COLUMNS = { model: "model", region: "region", client: "client_id", tier: "tier" } as const;
export const streamKey = (k: RateStreamKey, fields: readonly (keyof RateStreamKey)[]): string =>
  fields.map((f) => k[f] ?? "").join("|");

export function readRateTable(path: string, opts: { binSeconds?: number } = {}): RateTable {
  const src = basename(path);
  const all = [...readRateRows(path, src).values()];
  const startSeconds = Math.min(...all.map((s) => Math.min(...s.start)));
  const binSeconds = opts.binSeconds ?? smallestGap(all.map((s) => s.start));
  if (!binSeconds)
    throw new TraceError(src, 0, "window_start_s", "one window per stream: give the bin length (binSeconds)");
  const bins =
    Math.round((Math.max(...all.map((s) => Math.max(...s.start))) - startSeconds) / binSeconds) + 1;
  const series = all.map((s) => rateSeries(src, s, startSeconds, binSeconds, bins));
  return { file: src, binSeconds, startSeconds, bins, series };
}

/** One stream's rows of a rate file, in file order. */
interface StreamRows {
  key: RateStreamKey;
  start: number[];
  rate: number[];
  cv: number[];
  line: number[];
}

/** Column name → index, from a rate file's header line. */
type Header = Record<string, number>;

/** The rows of a rate CSV grouped by stream (model, region, client, tier), each cell validated. */
function readRateRows(path: string, src: string): Map<string, StreamRows> {
  let at: Header | undefined;
  let width = 0;
  const rows = new Map<string, StreamRows>();
  let line = 0;
  for (const text of readLines(path)) {
    line++;
    if (!at) {
      const header = text
        .replace(/^\uFEFF/, "")
        .split(",")
        .map((h) => h.trim());
      width = header.length;
      at = Object.fromEntries(header.map((h, i) => [h, i]));
      for (const c of ["window_start_s", "rate_rps"])
        if (at[c] === undefined) throw new TraceError(src, line, c, "column missing from the header");
      continue;
    }
    if (!text.trim()) continue;
    const f = text.split(",");
    if (f.length !== width)
      throw new TraceError(src, line, "line", `expected ${width} fields, got ${f.length}`);
    const key = rowStreamKey(src, line, at, f);
    const id = streamKey(key, ["model", "region", "client", "tier"]);
    let s = rows.get(id);
    if (!s) {
      s = { key, start: [], rate: [], cv: [], line: [] };
      rows.set(id, s);
    }
    s.start.push(numberCell(src, line, at, f, "window_start_s"));
    s.rate.push(numberCell(src, line, at, f, "rate_rps"));
    s.cv.push(numberCell(src, line, at, f, "cv", true));
    s.line.push(line);
  }
  if (!at) throw new TraceError(src, 0, "file", "is empty");
  if (rows.size === 0) throw new TraceError(src, 0, "file", "has a header but no rows");
  return rows;
}

/** Column `c` of the row `f` ("" when the file has no such column). */
function cell(at: Header, f: string[], c: string): string {
  return at[c] === undefined ? "" : f[at[c]!]!.trim();
}

/** Column `c` of the row as a number ≥ 0; an `optional` empty cell is NaN. */
function numberCell(src: string, line: number, at: Header, f: string[], c: string, optional = false): number {
  const v = cell(at, f, c);
  if (v === "" && optional) return Number.NaN;
  const n = Number(v);
  if (v === "" || !Number.isFinite(n) || n < 0)
    throw new TraceError(src, line, c, `expected a number ≥ 0, got '${v}'`);
  return n;
}

/** The stream a row belongs to: its key columns, checked (known model and tier, a valid region id). */
function rowStreamKey(src: string, line: number, at: Header, f: string[]): RateStreamKey {
  const key: RateStreamKey = {};
  for (const [k, c] of Object.entries(KEY_COLUMNS) as [keyof RateStreamKey, string][]) {
    const v = cell(at, f, c);
    if (v !== "") key[k] = v as Tier;
  }
  if (key.model !== undefined && !(key.model in MODELS))
    throw new TraceError(
      src,
      line,
      "model",
      `unknown model '${key.model}' (known: ${Object.keys(MODELS).join(", ")})`,
    );
  if (key.tier !== undefined && !TIERS.includes(key.tier))
    throw new TraceError(src, line, "tier", `must be one of ${TIERS.join(", ")}, got '${key.tier}'`);
  if (key.region !== undefined && !/^[A-Za-z0-9_-]+$/.test(key.region))
    throw new TraceError(src, line, "region", `not a valid region id '${key.region}'`);
  return key;
}

/** One stream's rates and CVs on the table's bin grid (NaN where it has no row). */
function rateSeries(
  src: string,
  s: StreamRows,
  startSeconds: number,
  binSeconds: number,
  bins: number,
): RateSeries {
  const rates = new Float64Array(bins).fill(Number.NaN);
  const cv = new Float64Array(bins).fill(Number.NaN);
  let requests = 0;
  s.start.forEach((start, i) => {
    const pos = (start - startSeconds) / binSeconds;
    const b = Math.round(pos);
    if (Math.abs(pos - b) > 1e-6)
      throw new TraceError(
        src,
        s.line[i]!,
        "window_start_s",
        `${start} is not on the ${binSeconds} s bin grid`,
      );
    if (!Number.isNaN(rates[b]!))
      throw new TraceError(
        src,
        s.line[i]!,
        "window_start_s",
        `a second row for window ${start} of this stream`,
      );
    rates[b] = s.rate[i]!;
    cv[b] = s.cv[i]!;
    requests += s.rate[i]! * binSeconds;
  });
  return { ...s.key, rates, cv, requests };
}

function smallestGap(starts: number[][]): number | undefined {
  let gap = Number.POSITIVE_INFINITY;
  for (const s of starts) {
    const sorted = [...s].sort((a, b) => a - b);
    for (let i = 1; i < sorted.length; i++) {
      const d = sorted[i]! - sorted[i - 1]!;
      if (d > 0 && d < gap) gap = d;
    }
  }
  return Number.isFinite(gap) ? gap : undefined;
}

/** One stream's length distributions over time: the latest window that started applies. */
export interface LengthSeries {
  startSeconds: number[];
  quantiles: TokenQuantiles[];
}

export interface LengthTable {
  file: string;
  /** Which key columns the file has: streams are matched on these. */
  fields: (keyof RateStreamKey)[];
  byKey: Map<string, LengthSeries>;
  /** Every stream pooled per window, each weighted by `weight(key)`: for streams without data. */
  pooled: LengthSeries;
}

const QUANTILES = 201;

export function readLengthTable(path: string, weight: (key: RateStreamKey) => number): LengthTable {
  const src = basename(path);
  let fields: (keyof RateStreamKey)[] | undefined;
  const byKey = new Map<string, { start: number; q: TokenQuantiles }[]>();
  const pooled = new Map<number, { input: Map<number, number>; output: Map<number, number> }>();
  let line = 0;
  for (const text of readLines(path)) {
    line++;
    if (!text.trim()) continue;
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(text);
    } catch (e) {
      throw new TraceError(src, line, "line", `invalid JSON: ${errorMessage(e)}`);
    }
    if (typeof o !== "object" || o === null || Array.isArray(o))
      throw new TraceError(src, line, "line", "not an object");
    fields ??= (Object.keys(KEY_COLUMNS) as (keyof RateStreamKey)[]).filter((k) => KEY_COLUMNS[k] in o);
    const key: RateStreamKey = {};
    for (const k of fields) if (o[KEY_COLUMNS[k]] !== undefined) key[k] = String(o[KEY_COLUMNS[k]]) as Tier;
    const start = Number(o.window_start_s);
    if (!Number.isFinite(start) || start < 0)
      throw new TraceError(
        src,
        line,
        "window_start_s",
        `expected a number ≥ 0, got ${JSON.stringify(o.window_start_s)}`,
      );
    const input = pmf(src, line, "input_tokens", o.input_tokens);
    const output = pmf(src, line, "output_tokens", o.output_tokens);
    const id = streamKey(key, fields);
    const list = byKey.get(id) ?? [];
    list.push({ start, q: { inputTokens: quantiles(input), outputTokens: quantiles(output) } });
    byKey.set(id, list);
    const w = weight(key);
    const p = pooled.get(start) ?? { input: new Map(), output: new Map() };
    for (const [v, pr] of input) p.input.set(v, (p.input.get(v) ?? 0) + w * pr);
    for (const [v, pr] of output) p.output.set(v, (p.output.get(v) ?? 0) + w * pr);
    pooled.set(start, p);
  }
  if (!fields) throw new TraceError(src, 0, "file", "is empty");
  const series = (list: { start: number; q: TokenQuantiles }[]): LengthSeries => {
    list.sort((a, b) => a.start - b.start);
    return { startSeconds: list.map((x) => x.start), quantiles: list.map((x) => x.q) };
  };
  return {
    file: src,
    fields,
    byKey: new Map([...byKey].map(([k, v]) => [k, series(v)])),
    pooled: series(
      [...pooled]
        .filter(([, p]) => [...p.input.values()].some((w) => w > 0))
        .map(([start, p]) => ({
          start,
          q: { inputTokens: quantiles([...p.input]), outputTokens: quantiles([...p.output]) },
        })),
    ),
  };
}

/** `{"<tokens>": probability, …}` as [tokens, probability] pairs. */
function pmf(src: string, line: number, field: string, v: unknown): [number, number][] {
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw new TraceError(src, line, field, 'expected {"<tokens>": probability, …}');
  const out: [number, number][] = [];
  for (const [k, p] of Object.entries(v)) {
    const n = Number(k);
    if (!Number.isInteger(n) || n < 0 || typeof p !== "number" || !(p >= 0))
      throw new TraceError(src, line, field, `bad entry "${k}": ${JSON.stringify(p)}`);
    if (p > 0) out.push([Math.max(1, n), p]);
  }
  if (out.length === 0) throw new TraceError(src, line, field, "no value has a probability above 0");
  return out;
}

/** The 201 evenly spaced quantiles of a discrete distribution (nearest rank), as the built-in data. */
export function quantiles(dist: [number, number][]): number[] {
  const sorted = [...dist].sort((a, b) => a[0] - b[0]);
  const total = sorted.reduce((a, [, p]) => a + p, 0);
  const out: number[] = [];
  let i = 0;
  let cum = sorted[0]![1];
  for (let k = 0; k < QUANTILES; k++) {
    const target = (k / (QUANTILES - 1)) * total * (1 - 1e-12);
    while (cum < target && i < sorted.length - 1) cum += sorted[++i]![1];
    out.push(sorted[i]![0]);
  }
  return out;
}

/** The series' quantiles at `seconds` since the file's start (the first window before it starts). */
export function lengthsAt(s: LengthSeries, seconds: number): TokenQuantiles {
  let lo = 0;
  let hi = s.startSeconds.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (s.startSeconds[mid]! <= seconds) lo = mid;
    else hi = mid - 1;
  }
  return s.quantiles[lo]!;
}
