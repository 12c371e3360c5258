import { basename } from "node:path";
import { KeyedHeap } from "@sageserve/runtime";
import { sortByArrival } from "./arrivals.js";
import { detectInput } from "./detect.js";
import { readLines } from "./lines.js";
import { type TraceFormat, type TraceRow, traceRows } from "./trace-rows.js";
import type { Mapping } from "./transform.js";
import { type SimRequest, TraceError, type Workload } from "./types.js";

export { AZURE_COLUMNS, TRACE_COLUMNS, type TraceFormat, traceRows } from "./trace-rows.js";

export interface TraceOptions {
  map?: Mapping;
  /** A line may arrive up to this long before the latest earlier line; sorted back (default 0). */
  sortWindowMs?: number;
  /** Most tokens (prompt + output) an instance of `model` can hold. */
  kvLimitTokens?: (model: string) => number;
}

const BATCH = 10_000;

/** What a first pass over a trace learns: everything the run needs up front, in constant memory. */
export interface TraceScan {
  requests: number;
  models: string[];
  regions: string[];
  /** Earliest arrival as read (Azure: epoch ms) and latest, relative to it. */
  t0Ms: number;
  lastMs: number;
  warnings: string[];
}

/**
 * A trace file, streamed: a first pass validates every line, checks arrival order and learns the
 * models, regions and span; the replay then reads the file again a batch at a time. Memory stays
 * constant (plus the sort window's lines), so a week of production traffic replays like a minute.
 */
export function openTrace(path: string, format: TraceFormat, opts: TraceOptions = {}): Workload {
  const name = basename(path);
  const scan = scanTrace(path, format, opts);
  let rows: Iterator<SimRequest> | undefined;
  let nextId = 0;
  return {
    name,
    durationMs: scan.lastMs + 1,
    models: scan.models,
    regions: scan.regions,
    warnings: scan.warnings,
    next(): SimRequest[] {
      rows ??= inOrder(
        traceRows(name, format, readLines(path), {
          t0Ms: scan.t0Ms,
          ...(opts.map ? { map: opts.map } : {}),
        }),
        opts.sortWindowMs ?? 0,
      );
      const out: SimRequest[] = [];
      for (let r = rows.next(); !r.done; r = rows.next()) {
        r.value.id = nextId++;
        if (out.push(r.value) === BATCH) break;
      }
      return out;
    },
  };
}

/** A trace file by path, its format told from its content. */
export function loadTraceFile(path: string, opts: TraceOptions = {}): Workload {
  const kind = detectInput(path);
  if (kind === "rates" || kind === "spec")
    throw new TraceError(
      basename(path),
      0,
      "file",
      `is ${kind === "rates" ? "a rate file" : "a scenario or rate spec"}, not a trace`,
    );
  return openTrace(path, kind, opts);
}

export function scanTrace(path: string, format: TraceFormat, opts: TraceOptions = {}): TraceScan {
  const name = basename(path);
  const windowMs = opts.sortWindowMs ?? 0;
  const models = new Set<string>();
  const regions = new Set<string>();
  const limits = new Map<string, number>();
  const oversized = new Map<string, { n: number; line: number; tokens: number; limit: number }>();
  let requests = 0;
  let minMs = Number.POSITIVE_INFINITY;
  let maxMs = Number.NEGATIVE_INFINITY;
  let maxLine = 0;
  const rows = traceRows(name, format, readLines(path), opts.map ? { map: opts.map } : {});
  for (const { req, line } of rows) {
    requests++;
    const at = req.arrivalMs;
    if (at < maxMs - windowMs) throw outOfOrder(name, format, line, at, maxMs, maxLine, windowMs);
    if (at > maxMs) {
      maxMs = at;
      maxLine = line;
    }
    if (at < minMs) minMs = at;
    models.add(req.model);
    regions.add(req.region);
    if (opts.kvLimitTokens) {
      let limit = limits.get(req.model);
      if (limit === undefined) {
        limit = opts.kvLimitTokens(req.model);
        limits.set(req.model, limit);
      }
      const tokens = req.inputTokens + req.outputTokens;
      if (tokens > limit) {
        const o = oversized.get(req.model) ?? { n: 0, line, tokens, limit };
        o.n++;
        oversized.set(req.model, o);
      }
    }
  }
  if (requests === 0) throw new TraceError(name, 0, "file", "has a header but no requests");
  const t0Ms = format === "azure" ? minMs : 0;
  const warnings = [...oversized].map(
    ([model, o]) =>
      `${name}: ${o.n.toLocaleString("en-US")} ${model} request${o.n === 1 ? " needs" : "s need"} more KV cache than any ` +
      `${model} instance holds (${o.limit.toLocaleString("en-US")} tokens, prompt + output; first at line ` +
      `${o.line}: ${o.tokens.toLocaleString("en-US")}): they can never run and will be counted as failed`,
  );
  return {
    requests,
    models: [...models].sort(),
    regions: [...regions].sort(),
    t0Ms,
    lastMs: maxMs - t0Ms,
    warnings,
  };
}

function outOfOrder(
  src: string,
  format: TraceFormat,
  line: number,
  atMs: number,
  maxMs: number,
  maxLine: number,
  windowMs: number,
): TraceError {
  const s = (ms: number) => `${Math.round(ms) / 1000} s`;
  return new TraceError(
    src,
    line,
    format === "azure" ? "TIMESTAMP" : "arrival",
    `out of order: ${s(maxMs - atMs)} before line ${maxLine}` +
      (windowMs > 0 ? `, more than the sort window (${s(windowMs)})` : "") +
      `. Sort the file by arrival, or let lines arrive up to --sort-window <seconds> late ` +
      `(here at least ${(maxMs - atMs) / 1000})`,
  );
}

/** File order, except that lines up to `windowMs` late are put back in place (stable at equal times). */
function* inOrder(rows: Iterable<TraceRow>, windowMs: number): Generator<SimRequest> {
  if (windowMs <= 0) {
    for (const r of rows) yield r.req;
    return;
  }
  const heap = new KeyedHeap<SimRequest>();
  let latest = Number.NEGATIVE_INFINITY;
  for (const { req, line } of rows) {
    heap.push(req, req.arrivalMs, line);
    if (req.arrivalMs > latest) latest = req.arrivalMs;
    // Safe to release: the first pass checked that no later line arrives before latest − window.
    while (heap.size > 0 && heap.peek()!.arrivalMs <= latest - windowMs) yield heap.pop()!;
  }
  while (heap.size > 0) yield heap.pop()!;
}

/** An in-memory workload (tests, generated traces): sorted by arrival, numbered from 0. */
export function fromRequests(name: string, requests: SimRequest[]): Workload {
  const sorted = sortByArrival([...requests]);
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
      const out = sorted.slice(i, i + BATCH);
      i += out.length;
      return out;
    },
  };
}
