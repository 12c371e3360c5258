import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, describe, expect, it } from "vitest";
import { runSimulation } from "../run/simulate.js";
import { resolveWorkload } from "./index.js";
import { readLines } from "./lines.js";
import { fromRequests, loadTraceFile, traceRows } from "./trace.js";
import { drain, TraceError } from "./types.js";

const dir = mkdtempSync(join(tmpdir(), "sage-stream-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string): string => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
const errorOf = (f: () => unknown): Error => {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error("did not throw");
};
const MODELS = ["llama2-70b", "llama3.1-8b"];
const REGIONS = ["eastus", "westus"];
const TIERS = ["iw-fast", "iw-normal", "niw"];
const jsonLine = (i: number, arrival = i / 10): string =>
  `{"arrival":${arrival},"model":"${MODELS[i & 1]}","region":"${REGIONS[(i >> 1) & 1]}","tier":"${TIERS[i % 3]}","inputTokens":${100 + ((i * 37) % 3000)},"outputTokens":${1 + ((i * 13) % 400)}}`;

describe("streamed trace files", () => {
  it("streams a 2-million-line JSONL trace in constant memory: the live heap grows by less than 16 MB", () => {
    const lines = 2_000_000;
    const path = join(dir, "big.jsonl");
    const fd = openSync(path, "w");
    const chunk: string[] = [];
    for (let i = 0; i < lines; i++) {
      chunk.push(jsonLine(i, i / 1000));
      if (chunk.length === 50_000 || i === lines - 1) {
        writeSync(fd, `${chunk.join("\n")}\n`);
        chunk.length = 0;
      }
    }
    closeSync(fd);
    // Live heap = heap after a full collection: what the reader keeps, not garbage awaiting the GC.
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    gc();
    const base = process.memoryUsage().heapUsed;
    const w = loadTraceFile(path);
    expect(w.durationMs).toBe(lines); // last arrival (lines − 1) ms, + 1
    let n = 0;
    let last = -1;
    let batches = 0;
    let maxLive = 0;
    for (let b = w.next(); b.length; b = w.next()) {
      expect(b[0]!.id).toBe(n);
      expect(b[0]!.arrivalMs).toBeGreaterThanOrEqual(last);
      n += b.length;
      last = b.at(-1)!.arrivalMs;
      if (++batches % 25 === 0) {
        gc();
        maxLive = Math.max(maxLive, process.memoryUsage().heapUsed - base);
      }
    }
    expect(n).toBe(lines);
    // Holding the requests would take ≥ 100 bytes each (200 MB), the file's text 250 MB more.
    expect(maxLive).toBeLessThan(16 * 2 ** 20);
  }, 120_000);

  it("replays the requests, ids and batches that sorting the whole file in memory gave", () => {
    const path = file("mid.jsonl", `${Array.from({ length: 25_000 }, (_, i) => jsonLine(i)).join("\n")}\n`);
    const inMemory = fromRequests(
      "mid.jsonl",
      [...traceRows("mid.jsonl", "jsonl", readLines(path))].map((r) => r.req),
    );
    const streamed = loadTraceFile(path);
    expect([streamed.durationMs, streamed.models, streamed.regions]).toEqual([
      inMemory.durationMs,
      inMemory.models,
      inMemory.regions,
    ]);
    for (
      let a = inMemory.next(), b = streamed.next();
      a.length || b.length;
      a = inMemory.next(), b = streamed.next()
    )
      expect(b).toEqual(a);
  });

  it("names the first out-of-order line and how late it is; --sort-window puts lines back in order", () => {
    const text = [jsonLine(0, 0), jsonLine(1, 5), jsonLine(2, 3), jsonLine(3, 6), jsonLine(4, 5)].join("\n");
    const path = file("unsorted.jsonl", text);
    const e = errorOf(() => loadTraceFile(path));
    expect(e).toBeInstanceOf(TraceError);
    expect(e).toMatchObject({ line: 3, field: "arrival" });
    expect(e.message).toContain("unsorted.jsonl:3: arrival: out of order: 2 s before line 2");
    expect(e.message).toContain("--sort-window");
    const sorted = drain(loadTraceFile(path, { sortWindowMs: 2_000 }));
    expect(sorted.map((r) => [r.id, r.arrivalMs])).toEqual([
      [0, 0],
      [1, 3000],
      [2, 5000],
      [3, 5000],
      [4, 6000],
    ]);
    // Equal arrivals keep file order: line 2 (i = 1) before line 5 (i = 4).
    expect(sorted[2]!.model).toBe(MODELS[1]);
    expect(errorOf(() => loadTraceFile(path, { sortWindowMs: 1_000 })).message).toMatch(
      /unsorted\.jsonl:3: arrival: out of order: 2 s before line 2, more than the sort window \(1 s\)/,
    );
  });

  it("reads a JSONL trace saved as .json as a trace, not as a scenario", () => {
    const path = file("trace.json", `${jsonLine(0)}\n${jsonLine(1)}\n`);
    const w = resolveWorkload(path, { seed: 1 });
    expect(drain(w)).toHaveLength(2);
    // One request on one line is a trace too; a one-line object without `arrival` is a spec.
    expect(drain(resolveWorkload(file("one.json", jsonLine(0)), { seed: 1 }))).toHaveLength(1);
    expect(() => resolveWorkload(file("spec.json", '{"name": "x"}'), { seed: 1 })).toThrowError(
      /scenario file .*spec\.json: .*durationHours/,
    );
  });

  it("says an empty file is empty, a header without rows has no requests, a JSON array is not JSONL", () => {
    const empty = errorOf(() => resolveWorkload(file("empty.csv", ""), { seed: 1 }));
    expect(empty).toBeInstanceOf(TraceError);
    expect(empty.message).toMatch(/^empty\.csv: file: is empty: expected a trace/);
    expect(errorOf(() => resolveWorkload(file("blank.jsonl", "\n  \n"), { seed: 1 })).message).toMatch(
      /blank\.jsonl: file: is empty/,
    );
    expect(
      errorOf(() =>
        resolveWorkload(file("header.csv", "arrival,model,region,tier,inputTokens,outputTokens\n"), {
          seed: 1,
        }),
      ).message,
    ).toBe("header.csv: file: has a header but no requests");
    expect(errorOf(() => resolveWorkload(file("arr.json", `[${jsonLine(0)}]`), { seed: 1 })).message).toMatch(
      /arr\.json: file: is a JSON array: a trace is JSONL/,
    );
    expect(
      errorOf(() => resolveWorkload(file("other.csv", "time,prompt\n1,2\n"), { seed: 1 })).message,
    ).toMatch(/other\.csv:1: arrival: column missing from the header 'time,prompt' \(a SageServe trace has/);
  });

  it.each([
    ["2023-11-16 18:17:03.9799600,abc,10", "ContextTokens", "not a number"],
    ["2023-11-16 18:17:03.9799600,100,1.5", "GeneratedTokens", "not an integer"],
    ["2023-11-16 18:17:03.9799600,100,0", "GeneratedTokens", "must be ≥ 1"],
    ["yesterday,100,10", "TIMESTAMP", "not a timestamp"],
  ])("names the Azure trace's own column in an error: %s → %s", (row, col, msg) => {
    const path = file(`azure-${col}.csv`, `TIMESTAMP,ContextTokens,GeneratedTokens\n${row}\n`);
    const e = errorOf(() => loadTraceFile(path));
    expect(e).toMatchObject({ line: 2, field: col });
    expect(e.message).toContain(`azure-${col}.csv:2: ${col}: ${msg}`);
  });

  it("names a missing Azure column by its Azure name", () => {
    const path = file("azure-nocol.csv", "TIMESTAMP,ContextTokens\n2023-11-16 18:17:03.97,100\n");
    expect(errorOf(() => loadTraceFile(path)).message).toMatch(
      /azure-nocol\.csv:1: GeneratedTokens: column missing/,
    );
  });

  it("warns at load time of requests that can never fit an instance's KV cache, and the run fails them", async () => {
    const big =
      '{"arrival":2,"model":"llama2-70b","region":"westus","tier":"iw-normal","inputTokens":250000,"outputTokens":100}';
    const path = file("huge.jsonl", [jsonLine(0, 0), big, jsonLine(2, 3), jsonLine(4, 4)].join("\n"));
    const w = resolveWorkload(path, { seed: 1, kvLimitTokens: () => 200_000 });
    expect(w.warnings).toEqual([
      "huge.jsonl: 1 llama2-70b request needs more KV cache than any llama2-70b instance holds (200,000 tokens, " +
        "prompt + output; first at line 2: 250,100): they can never run and will be counted as failed",
    ]);
    const seen: string[] = [];
    const r = await runSimulation({
      scenario: path,
      policy: "unified-reactive",
      seed: 1,
      onWarning: (m) => seen.push(m),
    });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatch(/first at line 2: 250,100\).*counted as failed/);
    expect(r.warnings).toEqual(seen);
    expect(r.report.requests).toMatchObject({ generated: 4, failed: 1 });
  }, 60_000);

  it("fails a run with the line named when a trace goes wrong after the first batches (not a silent stop)", async () => {
    // 40 minutes of arrivals, then a line out of order at minute 35: the simulator has long started.
    const lines = Array.from({ length: 2_400 }, (_, i) => jsonLine(i, i));
    lines.splice(2_100, 0, jsonLine(9_999, 100));
    const path = file("late-error.jsonl", lines.join("\n"));
    const e = await runSimulation({ scenario: path, policy: "unified-reactive", seed: 1 }).then(
      () => new Error("the run succeeded"),
      (x: Error) => x,
    );
    expect(e).toBeInstanceOf(TraceError);
    expect(e.message).toContain("late-error.jsonl:2101: arrival: out of order");
  }, 60_000);

  it("gives the same report whether the trace is JSONL, CSV, or JSONL out of order within --sort-window", async () => {
    const n = 2_000;
    const reqs = Array.from(
      { length: n },
      (_, i) => JSON.parse(jsonLine(i, i * 0.3)) as Record<string, unknown>,
    );
    const jsonl = file("e2e.jsonl", reqs.map((r) => JSON.stringify(r)).join("\n"));
    const cols = ["arrival", "model", "region", "tier", "inputTokens", "outputTokens"];
    const csv = file(
      "e2e.csv",
      [cols.join(","), ...reqs.map((r) => cols.map((c) => r[c]).join(","))].join("\n"),
    );
    // Swap neighbours: each line at most 0.3 s out of place.
    const swapped = reqs.map((_, i) => reqs[i % 2 ? i - 1 : Math.min(n - 1, i + 1)]!);
    const shuffled = file("e2e-shuffled.jsonl", swapped.map((r) => JSON.stringify(r)).join("\n"));
    const report = async (scenario: string, sortWindowMs?: number) => {
      const r = await runSimulation({
        scenario,
        policy: "unified-reactive",
        seed: 5,
        ...(sortWindowMs ? { transforms: { sortWindowMs } } : {}),
      });
      return JSON.stringify({ ...r.report, scenario: "-" });
    };
    const a = await report(jsonl);
    expect(JSON.parse(a).requests).toMatchObject({ generated: n, completed: n });
    expect(await report(csv)).toBe(a);
    expect(await report(shuffled, 300)).toBe(a);
  }, 60_000);
});
