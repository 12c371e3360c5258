import { statSync } from "node:fs";
import { basename } from "node:path";
import { readHead } from "./lines.js";
import { TraceError } from "./types.js";

/** What a workload file is, told from its content (never its extension). */
export type InputKind = "jsonl" | "csv" | "azure" | "rates" | "spec";

const HEAD_BYTES = 64 * 1024;
const EXPECTED =
  "expected a trace (JSONL, or CSV with a header: SageServe or Azure 2023), a rate file " +
  "(CSV with window_start_s,rate_rps) or a scenario or rate spec (one JSON object); see docs/simulator.md";

/**
 * A line-per-object file whose first line is a whole JSON object is a JSONL trace, whatever its name
 * (`.json` included); a single JSON value spread over the file is a scenario or a rate spec.
 */
export function detectInput(path: string): InputKind {
  const name = basename(path);
  const head = readHead(path, HEAD_BYTES);
  const text = head.replace(/^\uFEFF/, "").trimStart();
  if (text === "") throw new TraceError(name, 0, "file", `is empty: ${EXPECTED}`);
  if (text.startsWith("[")) {
    throw new TraceError(
      name,
      0,
      "file",
      "is a JSON array: a trace is JSONL (one JSON object per line), a scenario or rate spec one JSON object",
    );
  }
  const nl = text.indexOf("\n");
  const firstLine = (nl < 0 ? text : text.slice(0, nl)).trim();
  if (text.startsWith("{")) {
    if (firstLine === "{") return "spec"; // a JSON document over several lines
    let first: unknown;
    try {
      first = JSON.parse(firstLine);
    } catch {
      // A broken JSONL line (the trace parser names it) if the next line starts an object too;
      // otherwise a JSON document whose first line holds more than "{" (the spec parser says what).
      const next = text.slice(firstLine.length).trimStart();
      return next === "" || next.startsWith("{") ? "jsonl" : "spec";
    }
    const wholeFile = fileSize(path) <= HEAD_BYTES && text.slice(firstLine.length).trim() === "";
    if (wholeFile && !(typeof first === "object" && first !== null && "arrival" in first)) return "spec";
    return "jsonl";
  }
  const header = firstLine.split(",").map((h) => h.trim().toLowerCase());
  if (header[0] === "timestamp") return "azure";
  if (header.includes("window_start_s") || header.includes("rate_rps")) return "rates";
  return "csv";
}

function fileSize(path: string): number {
  try {
    return path.endsWith(".gz") ? 0 : statSync(path).size;
  } catch {
    return 0;
  }
}
