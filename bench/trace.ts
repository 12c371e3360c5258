/**
 * Trace reading: the streamed reader (first pass: validate, order, span; then the replay a batch at a
 * time) against loading the whole file and sorting it in memory, as the simulator did before. Lines
 * per second and heap, on a generated week of JSONL traffic.
 *   tsx bench/trace.ts [--lines N] [--quick]     (N default 5,000,000; the baseline loads ≤ 2,000,000)
 * Run with `node --max-old-space-size=1024` to show the heap stays under 1 GB at any N.
 */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getHeapStatistics, setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { fromRequests, loadTraceFile, type SimRequest, traceRows } from "@sageserve/sim";
import { fmt, machine, writeSection } from "./report.js";

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const lines = Number(arg("--lines") ?? (process.argv.includes("--quick") ? 500_000 : 5_000_000));
const baselineLines = Math.min(lines, 2_000_000);
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
const MB = 2 ** 20;

const dir = mkdtempSync(join(tmpdir(), "sage-bench-trace-"));
const MODELS = ["llama2-70b", "bloom-176b", "llama3.1-8b", "llama3.2-3b"];
const REGIONS = ["eastus", "centralus", "westus"];
const TIERS = ["iw-fast", "iw-fast", "iw-normal", "niw"];
const write = (path: string, n: number): void => {
  const stepS = (7 * 86_400) / n; // a week
  const fd = openSync(path, "w");
  const chunk: string[] = [];
  for (let i = 0; i < n; i++) {
    chunk.push(
      `{"arrival":${Math.round(i * stepS * 1000) / 1000},"model":"${MODELS[i % 4]}","region":"${REGIONS[i % 3]}",` +
        `"tier":"${TIERS[(i >> 2) % 4]}","inputTokens":${64 + ((i * 7919) % 6000)},"outputTokens":${1 + ((i * 104_729) % 700)}}`,
    );
    if (chunk.length === 100_000 || i === n - 1) {
      writeSync(fd, `${chunk.join("\n")}\n`);
      chunk.length = 0;
    }
  }
  closeSync(fd);
};

const big = join(dir, "week.jsonl");
write(big, lines);
const small = join(dir, "baseline.jsonl");
if (baselineLines < lines) write(small, baselineLines);
const baselineFile = baselineLines < lines ? small : big;

// Baseline: the whole file in memory, split, parsed, sorted (the loader before streaming).
gc();
let heap0 = process.memoryUsage().heapUsed;
let t = performance.now();
const text = readFileSync(baselineFile, "utf8");
const all: SimRequest[] = [];
for (const r of traceRows("baseline", "jsonl", text.split(/\r?\n/))) all.push(r.req);
const loaded = fromRequests("baseline", all);
const baselineS = (performance.now() - t) / 1000;
const baselineHeap = process.memoryUsage().heapUsed - heap0;
let n = 0;
for (let b = loaded.next(); b.length; b = loaded.next()) n += b.length;
if (n !== baselineLines) throw new Error(`baseline read ${n} of ${baselineLines}`);
all.length = 0;

// Streamed: the first pass, then the replay's batches.
gc();
heap0 = process.memoryUsage().heapUsed;
let peakRaw = 0;
let peakLive = 0;
let peakRss = 0;
t = performance.now();
const w = loadTraceFile(big);
const scanS = (performance.now() - t) / 1000;
t = performance.now();
n = 0;
let batches = 0;
for (let b = w.next(); b.length; b = w.next()) {
  n += b.length;
  const m = process.memoryUsage();
  peakRaw = Math.max(peakRaw, m.heapUsed);
  peakRss = Math.max(peakRss, m.rss);
  if (++batches % 100 === 0) {
    gc();
    peakLive = Math.max(peakLive, process.memoryUsage().heapUsed - heap0);
  }
}
const replayS = (performance.now() - t) / 1000;
if (n !== lines) throw new Error(`streamed ${n} of ${lines}`);
const sizeMb = statSync(big).size / MB;
rmSync(dir, { recursive: true, force: true });

const streamRate = lines / (scanS + replayS);
const baseRate = baselineLines / baselineS;
const md = `
## Trace reading: streamed vs whole file in memory (\`bench/trace.ts\`)

Machine: ${machine()}. A generated week of JSONL (${fmt(lines)} lines, ${fmt(sizeMb, 0)} MB; 4 models × 3 regions × 3 tiers),
read as \`sageserve sim --scenario file\` does: the streamed reader validates every line and checks the order in a first
pass, then the replay reads it again a batch of 10,000 at a time; the baseline reads the whole file into memory, splits,
parses and sorts it (the loader before streaming, on ${fmt(baselineLines)} lines). Live heap = after a forced GC.
V8 heap limit ${fmt(getHeapStatistics().heap_size_limit / MB, 0)} MB.

| reader | lines | lines/s | heap |
| --- | ---: | ---: | --- |
| whole file in memory (baseline) | ${fmt(baselineLines)} | ${fmt(baseRate)} | ${fmt(baselineHeap / MB, 0)} MB held after loading |
| streamed: first pass (validate, order, span) | ${fmt(lines)} | ${fmt(lines / scanS)} | — |
| streamed: replay batches | ${fmt(lines)} | ${fmt(lines / replayS)} | live + ${fmt(peakLive / MB)} MB, peak used ${fmt(peakRaw / MB, 0)} MB, peak RSS ${fmt(peakRss / MB, 0)} MB |
| streamed: both passes | ${fmt(lines)} | ${fmt(streamRate)} (${(streamRate / baseRate).toFixed(2)}× the baseline) | constant |

Loading the whole file would hold about ${fmt(((baselineHeap / baselineLines) * lines) / 1024 ** 3)} GB at ${fmt(lines)} lines; streaming holds what
one batch and the sort window hold. Streaming reads the file twice, so it takes about twice as long per line.
`;
console.log(md);
writeSection("trace", md);
