import { MODELS } from "@sageserve/engine";
import { DEFAULT_NIW_DEADLINE_MS, errorMessage, TIERS, type Tier } from "@sageserve/protocol";
import { type Mapping, mapRequest } from "./transform.js";
import { type SimRequest, TraceError } from "./types.js";

/**
 * The rows of a trace file, validated one line at a time:
 *  - SageServe JSONL (one object per line) or CSV with a header: `arrival` (seconds since trace
 *    start), `model`, `region`, `tier` (iw-fast | iw-normal | niw), `inputTokens`, `outputTokens`,
 *    optional `deadline` (seconds since trace start; NIW);
 *  - the Azure LLM inference trace 2023 CSV (`TIMESTAMP,ContextTokens,GeneratedTokens`): model
 *    llama2-70b, region westus, tier iw-fast unless mapped (`--map-model` …).
 * A malformed line is a TraceError naming the file, the line and the file's own column.
 */
export type TraceFormat = "jsonl" | "csv" | "azure";

export interface TraceRow {
  req: SimRequest;
  line: number;
}

export const TRACE_COLUMNS = ["arrival", "model", "region", "tier", "inputTokens", "outputTokens"] as const;
export const AZURE_COLUMNS = {
  arrival: "TIMESTAMP",
  inputTokens: "ContextTokens",
  outputTokens: "GeneratedTokens",
};
const AZURE_DEFAULTS = { model: "llama2-70b", region: "westus", tier: "iw-fast" };
const MAX_TOKENS = 10_000_000;
const KNOWN_LAYOUTS =
  "a SageServe trace has the columns arrival,model,region,tier,inputTokens,outputTokens[,deadline]; " +
  "an Azure 2023 trace TIMESTAMP,ContextTokens,GeneratedTokens; a rate file window_start_s,rate_rps[,…]";

/** One field of a row; `col` is its name in the file, for messages. */
type Get = (field: string) => unknown;

function fail(src: string, line: number, col: string, message: string): never {
  throw new TraceError(src, line, col, message);
}

function num(
  src: string,
  line: number,
  col: string,
  v: unknown,
  opts: { int?: boolean; min?: number; max?: number },
): number {
  if (v === undefined || v === "") fail(src, line, col, "missing");
  const n = typeof v === "number" ? v : Number(v);
  if (!Number.isFinite(n)) fail(src, line, col, `not a number: ${JSON.stringify(v)}`);
  if (opts.int && !Number.isInteger(n)) fail(src, line, col, `not an integer: ${n}`);
  if (opts.min !== undefined && n < opts.min) fail(src, line, col, `must be ≥ ${opts.min}, got ${n}`);
  if (opts.max !== undefined && n > opts.max) fail(src, line, col, `must be ≤ ${opts.max}, got ${n}`);
  return n;
}

function str(src: string, line: number, col: string, v: unknown): string {
  if (typeof v !== "string" || v.trim() === "") fail(src, line, col, "missing");
  return v.trim();
}

// Names already checked: a week of traffic repeats a handful of them millions of times.
const validRegions = new Set<string>();

/** One request from one row; `col` names a field as the file calls it. */
function check(src: string, line: number, get: Get, col: (field: string) => string): SimRequest {
  const model = str(src, line, col("model"), get("model"));
  if (!Object.hasOwn(MODELS, model))
    fail(src, line, col("model"), `unknown model '${model}' (known: ${Object.keys(MODELS).join(", ")})`);
  const region = str(src, line, col("region"), get("region"));
  if (!validRegions.has(region)) {
    if (!/^[A-Za-z0-9_-]+$/.test(region)) fail(src, line, col("region"), `not a valid region id '${region}'`);
    if (validRegions.size < 1000) validRegions.add(region);
  }
  const tier = str(src, line, col("tier"), get("tier")) as Tier;
  if (tier !== "iw-fast" && tier !== "iw-normal" && tier !== "niw")
    fail(src, line, col("tier"), `must be one of ${TIERS.join(", ")}, got '${tier}'`);
  const arrival = num(src, line, col("arrival"), get("arrival"), { min: 0 });
  const rawDeadline = get("deadline");
  const deadline =
    rawDeadline === undefined || rawDeadline === ""
      ? undefined
      : num(src, line, col("deadline"), rawDeadline, { min: 0 });
  if (deadline !== undefined && deadline < arrival) fail(src, line, col("deadline"), "before arrival");
  const tokens = { int: true, min: 1, max: MAX_TOKENS };
  const req: SimRequest = {
    id: 0,
    arrivalMs: Math.round(arrival * 1000),
    model,
    region,
    tier,
    inputTokens: num(src, line, col("inputTokens"), get("inputTokens"), tokens),
    outputTokens: num(src, line, col("outputTokens"), get("outputTokens"), tokens),
  };
  if (deadline !== undefined) req.deadlineMs = Math.round(deadline * 1000);
  else if (tier === "niw") req.deadlineMs = req.arrivalMs + DEFAULT_NIW_DEADLINE_MS;
  return req;
}

const same = (f: string): string => f;

/**
 * The validated requests of a trace in file order, mapped. Azure arrivals count from `t0Ms` (epoch
 * ms; 0 gives epoch times, for the first pass that finds the earliest).
 */
export function* traceRows(
  src: string,
  format: TraceFormat,
  lines: Iterable<string>,
  opts: { t0Ms?: number; map?: Mapping } = {},
): Generator<TraceRow> {
  const map = opts.map;
  const out = (req: SimRequest, line: number): TraceRow => ({ req: map ? mapRequest(req, map) : req, line });
  let line = 0;
  if (format === "jsonl") {
    for (const text of lines) {
      line++;
      if (!text.trim()) continue;
      let raw: unknown;
      try {
        raw = JSON.parse(line === 1 ? text.replace(/^\uFEFF/, "") : text);
      } catch (e) {
        fail(src, line, "line", `invalid JSON: ${errorMessage(e)}`);
      }
      if (typeof raw !== "object" || raw === null || Array.isArray(raw))
        fail(src, line, "line", "not an object");
      const o = raw as Record<string, unknown>;
      yield out(
        check(src, line, (f) => o[f], same),
        line,
      );
    }
    return;
  }
  let header: string[] | undefined;
  let at: Record<string, number> = {};
  for (const text of lines) {
    line++;
    if (!header) {
      header = text
        .replace(/^\uFEFF/, "")
        .split(",")
        .map((h) => h.trim());
      at = Object.fromEntries(header.map((h, i) => [format === "azure" ? h.toLowerCase() : h, i]));
      const need = format === "azure" ? Object.values(AZURE_COLUMNS) : TRACE_COLUMNS;
      for (const c of need) {
        if (at[format === "azure" ? c.toLowerCase() : c] === undefined)
          fail(src, line, c, `column missing from the header '${text.slice(0, 120)}' (${KNOWN_LAYOUTS})`);
      }
      continue;
    }
    if (!text.trim()) continue;
    const f = text.split(",");
    if (f.length !== header.length)
      fail(src, line, "line", `expected ${header.length} fields (${header.join(",")}), got ${f.length}`);
    if (format === "csv") {
      yield out(
        check(src, line, (k) => (at[k] === undefined ? undefined : f[at[k]!]!.trim()), same),
        line,
      );
      continue;
    }
    const ts = f[at.timestamp!]!.trim();
    const t = Date.parse(`${ts.replace(" ", "T").slice(0, 23)}Z`);
    if (!Number.isFinite(t)) fail(src, line, AZURE_COLUMNS.arrival, `not a timestamp: '${ts}'`);
    const row: Record<string, unknown> = {
      ...AZURE_DEFAULTS,
      arrival: (t - (opts.t0Ms ?? 0)) / 1000,
      inputTokens: f[at.contexttokens!]!.trim(),
      outputTokens: f[at.generatedtokens!]!.trim(),
    };
    yield out(
      check(
        src,
        line,
        (k) => row[k],
        (k) => AZURE_COLUMNS[k as keyof typeof AZURE_COLUMNS] ?? k,
      ),
      line,
    );
  }
  if (!header) fail(src, 0, "file", "is empty");
}
