import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { TIERS, type Tier } from "@sageserve/protocol";
import { MODELS } from "../catalog.js";
import { type SimRequest, TraceError, type Workload } from "./types.js";

/**
 * Trace files:
 *  - SageServe format, JSONL (one object per line) or CSV with a header:
 *    `arrival` (seconds since trace start), `model`, `region`, `tier` (iw-fast | iw-normal | niw),
 *    `inputTokens`, `outputTokens`, optional `deadline` (seconds since trace start; NIW).
 *  - Azure LLM inference trace 2023 CSV (`TIMESTAMP,ContextTokens,GeneratedTokens`): every request
 *    gets the given model, region and tier.
 * Every malformed line is a TraceError naming the file, line and field.
 */
export interface AzureTraceOptions {
  model?: string;
  region?: string;
  tier?: Tier;
}

const MAX_TOKENS = 10_000_000;

export function loadTraceFile(path: string, azure: AzureTraceOptions = {}): Workload {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new TraceError(path, 0, "file", `cannot read: ${(e as Error).message}`);
  }
  const name = basename(path);
  const first = text.slice(0, 200).trimStart();
  const requests = first.startsWith("{")
    ? parseJsonl(name, text)
    : /^TIMESTAMP\s*,/i.test(first)
      ? parseAzure(name, text, azure)
      : parseCsv(name, text);
  return fromRequests(name, requests);
}

export function fromRequests(name: string, requests: SimRequest[]): Workload {
  const sorted = [...requests].sort((a, b) => a.arrivalMs - b.arrivalMs);
  sorted.forEach((r, i) => {
    r.id = i;
  });
  const models = [...new Set(sorted.map((r) => r.model))].sort();
  const regions = [...new Set(sorted.map((r) => r.region))].sort();
  let i = 0;
  return {
    name,
    durationMs: sorted.length ? sorted.at(-1)!.arrivalMs + 1 : 0,
    models,
    regions,
    next() {
      const out = sorted.slice(i, i + 10_000);
      i += out.length;
      return out;
    },
  };
}

function check(src: string, line: number, raw: Record<string, unknown>): SimRequest {
  const num = (
    field: string,
    opts: { int?: boolean; min?: number; max?: number; optional?: boolean } = {},
  ) => {
    const v = raw[field];
    if (v === undefined || v === "") {
      if (opts.optional) return undefined;
      throw new TraceError(src, line, field, "missing");
    }
    const n = typeof v === "number" ? v : Number(v);
    if (!Number.isFinite(n)) throw new TraceError(src, line, field, `not a number: ${JSON.stringify(v)}`);
    if (opts.int && !Number.isInteger(n)) throw new TraceError(src, line, field, `not an integer: ${n}`);
    if (opts.min !== undefined && n < opts.min)
      throw new TraceError(src, line, field, `must be ≥ ${opts.min}, got ${n}`);
    if (opts.max !== undefined && n > opts.max)
      throw new TraceError(src, line, field, `must be ≤ ${opts.max}, got ${n}`);
    return n;
  };
  const str = (field: string): string => {
    const v = raw[field];
    if (typeof v !== "string" || v.trim() === "") throw new TraceError(src, line, field, "missing");
    return v.trim();
  };
  const model = str("model");
  if (!(model in MODELS))
    throw new TraceError(
      src,
      line,
      "model",
      `unknown model '${model}' (known: ${Object.keys(MODELS).join(", ")})`,
    );
  const region = str("region");
  if (!/^[A-Za-z0-9_-]+$/.test(region))
    throw new TraceError(src, line, "region", `not a valid region id '${region}'`);
  const tier = str("tier") as Tier;
  if (!TIERS.includes(tier))
    throw new TraceError(src, line, "tier", `must be one of ${TIERS.join(", ")}, got '${tier}'`);
  const arrival = num("arrival", { min: 0 })!;
  const deadline = num("deadline", { min: 0, optional: true });
  if (deadline !== undefined && deadline < arrival)
    throw new TraceError(src, line, "deadline", "before arrival");
  const req: SimRequest = {
    id: 0,
    arrivalMs: Math.round(arrival * 1000),
    model,
    region,
    tier,
    inputTokens: num("inputTokens", { int: true, min: 1, max: MAX_TOKENS })!,
    outputTokens: num("outputTokens", { int: true, min: 1, max: MAX_TOKENS })!,
  };
  if (deadline !== undefined) req.deadlineMs = Math.round(deadline * 1000);
  else if (tier === "niw") req.deadlineMs = req.arrivalMs + 24 * 3600_000;
  return req;
}

function parseJsonl(src: string, text: string): SimRequest[] {
  const out: SimRequest[] = [];
  text.split(/\r?\n/).forEach((l, i) => {
    if (!l.trim()) return;
    let raw: unknown;
    try {
      raw = JSON.parse(l);
    } catch (e) {
      throw new TraceError(src, i + 1, "line", `invalid JSON: ${(e as Error).message}`);
    }
    if (typeof raw !== "object" || raw === null || Array.isArray(raw))
      throw new TraceError(src, i + 1, "line", "not an object");
    out.push(check(src, i + 1, raw as Record<string, unknown>));
  });
  return out;
}

function parseCsv(src: string, text: string): SimRequest[] {
  const lines = text.split(/\r?\n/);
  const header = (lines[0] ?? "").split(",").map((h) => h.trim());
  for (const col of ["arrival", "model", "region", "tier", "inputTokens", "outputTokens"]) {
    if (!header.includes(col)) throw new TraceError(src, 1, col, "column missing from the header");
  }
  const out: SimRequest[] = [];
  for (let i = 1; i < lines.length; i++) {
    const l = lines[i]!;
    if (!l.trim()) continue;
    const f = l.split(",");
    if (f.length !== header.length)
      throw new TraceError(src, i + 1, "line", `expected ${header.length} fields, got ${f.length}`);
    out.push(check(src, i + 1, Object.fromEntries(header.map((h, j) => [h, f[j]!.trim()]))));
  }
  return out;
}

function parseAzure(src: string, text: string, opts: AzureTraceOptions): SimRequest[] {
  const lines = text.split(/\r?\n/);
  const rows: { t: number; input: string; output: string; line: number }[] = [];
  for (let i = 1; i < lines.length; i++) {
    const l = lines[i]!;
    if (!l.trim()) continue;
    const [ts, c, g] = l.split(",");
    const t = Date.parse(`${(ts ?? "").trim().replace(" ", "T").slice(0, 23)}Z`);
    if (!Number.isFinite(t)) throw new TraceError(src, i + 1, "TIMESTAMP", `not a timestamp: '${ts}'`);
    rows.push({ t, input: c ?? "", output: g ?? "", line: i + 1 });
  }
  const t0 = Math.min(...rows.map((r) => r.t));
  return rows.map((r) =>
    check(src, r.line, {
      arrival: (r.t - t0) / 1000,
      model: opts.model ?? "llama2-70b",
      region: opts.region ?? "westus",
      tier: opts.tier ?? "iw-fast",
      inputTokens: r.input,
      outputTokens: r.output,
    }),
  );
}
