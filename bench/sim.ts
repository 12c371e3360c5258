/**
 * Simulator throughput: simulated requests per wall-second, end to end as users run it — the
 * `sageserve sim` command in its own process (router, three region agents and the simulated fleet as
 * actors on the in-memory bus and virtual clock) — on paper-week, on the paper-scale week and on
 * the first 4.5 h of `day` (the requests the paper's own simulator was timed on). Same-run baselines:
 * with per-message validation, and with V8's default young generation. Also checks that one seed gives
 * the same report.json bytes in every configuration. Writes its section of docs/benchmarks.md.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fmt, machine, writeSection } from "./report.js";

const quick = process.argv.includes("--quick");
const cli = new URL("../packages/cli/bin/sageserve.js", import.meta.url).pathname;

interface Case {
  label: string;
  args: string[];
  env?: Record<string, string>;
  /** Rows whose report.json must be byte-identical share a group. */
  group?: string;
}

const week = quick ? ["-s", "paper-week", "--scale", "0.05"] : ["-s", "paper-week"];
const cases: Case[] = [
  { label: "paper-week, default (trusted messages)", args: week, group: "week" },
  { label: "paper-week, `--validate`", args: [...week, "--validate"], group: "week" },
  {
    label: "paper-week, V8's default young generation",
    args: week,
    env: { SAGESERVE_NO_REEXEC: "1" },
    group: "week",
  },
  {
    label: "day, first 4.5 h (the paper simulator's anchor)",
    args: ["-s", "day", "--duration", quick ? "1h" : "4.5h"],
  },
  // At a fifth of the scenario's rate (180 req/s, 109 M requests): the `paper-scale` of before 2026-12-06,
  // the row's history; the whole 900 req/s week is ~5× as long (docs/results.md has its runs).
  {
    label: "paper-scale × 0.2, week",
    args: ["-s", "paper-scale", "--scale", "0.2", ...(quick ? ["--duration", "1h"] : [])],
  },
];

interface Row {
  c: Case;
  requests: number;
  wallS: number;
  totalS: number;
  rps: number;
  events: number;
  peakHeapMb: number;
  sha: string;
}

const rows: Row[] = [];
for (const c of cases) {
  const out = mkdtempSync(join(tmpdir(), "sage-bench-sim-"));
  const t0 = performance.now();
  const r = spawnSync(
    process.execPath,
    [cli, "sim", ...c.args, "-p", "unified-reactive", "--seed", "1", "--json", "--no-progress", "-o", out],
    { env: { ...process.env, ...c.env }, encoding: "utf8", maxBuffer: 1 << 26 },
  );
  const totalS = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`sageserve sim ${c.args.join(" ")} failed: ${r.stderr}`);
  const j = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as {
    run: { wallTimeMs: number; simulatedRequestsPerWallSecond: number; events: number; peakHeapMb: number };
  };
  const report = readFileSync(join(out, "report.json"));
  const requests = (JSON.parse(report.toString("utf8")) as { requests: { generated: number } }).requests
    .generated;
  rows.push({
    c,
    requests,
    wallS: j.run.wallTimeMs / 1000,
    totalS,
    rps: j.run.simulatedRequestsPerWallSecond,
    events: j.run.events,
    peakHeapMb: j.run.peakHeapMb,
    sha: createHash("sha256").update(report).digest("hex").slice(0, 12),
  });
  rmSync(out, { recursive: true, force: true });
  console.log(`${c.label}: ${rows.at(-1)!.rps.toLocaleString("en-US")} req/s, ${fmt(totalS)} s`);
}

const base = rows[0]!;
const sameBytes = rows.filter((r) => r.c.group === "week").every((r) => r.sha === base.sha);
const table = rows
  .map(
    (r) =>
      `| ${r.c.label} | ${r.requests.toLocaleString("en-US")} | ${fmt(r.wallS)} | ${fmt(r.totalS)} | **${r.rps.toLocaleString("en-US")}** | ${(r.rps / base.rps).toFixed(2)}× | ${(r.events / r.requests).toFixed(1)} | ${r.peakHeapMb} | \`${r.sha}\` |`,
  )
  .join("\n");
const anchor = rows.find((r) => r.c.label.startsWith("day"))!;
const scale = rows.find((r) => r.c.label.startsWith("paper-scale"))!;
const verdict = (r: Row) =>
  r.rps >= 100_000 ? "met in this run" : `this run is ${(100 * (1 - r.rps / 100_000)).toFixed(1)} % short`;

const md = `## Simulator throughput (\`bench/sim.ts\`)

Machine: ${machine()}${quick ? " — **quick profile** (paper-week × 0.05, one simulated hour of the others)" : ""}. Each row is \`sageserve sim … -p unified-reactive --seed 1\` in its own process, as users run it (the
router, three region agents and the simulated fleet as actors on the in-memory bus and virtual clock).
"sim wall s" is the event loop (which also generates the workload as it goes); "total s" adds start-up,
set-up and writing the report. Peak heap: the most V8 heap in use, sampled every 15 simulated minutes.

| run | requests | sim wall s | total s | simulated req/s | vs first row | events/request | peak heap MB | report.json sha-256 |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |
${table}

Same seed, same bytes: the three paper-week rows' report.json are ${sameBytes ? "**identical**" : "**NOT identical** (a determinism bug)"}.
The target is ≥ 100,000 simulated requests/s on paper-week (the week in ≤ 100 s) — ${verdict(base)} — and on the
paper-scale week at a fifth of its rate (${scale.requests.toLocaleString("en-US")} requests) — ${verdict(scale)}. Runs of the same code on this
machine vary by about ±5 %. Before the engine work of December 2026 (at 3045dfa, same machine, alone) paper-week ran
at 104,973 req/s and the first day of paper-scale at 63,016.

Anchor: the paper's own artifact (a Python fork of the Splitwise simulator), run on this kind of machine on the
first 1–4.5 hours of \`day\` converted to its trace format, simulated **420–670 requests/s** (reactive, 4 models ×
3 regions); SageServe simulates the same requests at **${anchor.rps.toLocaleString("en-US")} requests/s** here,
${Math.round(anchor.rps / 670)}–${Math.round(anchor.rps / 420)}× faster (it was 25–40 k/s, 40–95×, at 0e8e31e).

Where the engine's time went at paper-scale (busy instances, ~80 requests decoding each): a pass over every
decoding request at every scheduling decision to count its KV blocks. A decision now skips that count when a bound
shows it cannot matter (even if every request grew by the most it can since the last count and the step's prefill
took the most any step can, every block comparison would come out the same); the count, when made, reads only the
requests at a block boundary (their next-look iterations in a flat array), and the decode heap keeps its keys in
flat arrays. The router's hand-off message is built field by field (the object spread it replaced was ~3 % of a
run). A test runs the engine with and without the shortcut on random load (roomy, tight, lockstep) and requires
the same steps. Tried and left out: a calendar queue of block boundaries (slower than the flat scan), and building
the workload in a worker thread (no faster on 2 cores: the worker takes the core V8's parallel GC uses).

What a request costs: about eight events — its arrival, three bus deliveries (RouteRequest → router,
InferenceRequest → fleet, RequestDone → collector and region agent; a batch job adds its durable queue
hop), about two engine steps (a prefill-carrying step, a decode finish) and its share of load reports and
stale engine wake-ups. Every event is one object: a bus message is itself the clock's event and the
receivers' message; engine wake-ups and arrivals are event objects too. Messages the simulator's actors
build are trusted (no schema re-validation, no envelope version) unless \`--validate\` is given; every
live boundary validates. \`sageserve sim\` and \`compare\` run in a child node with a 128 MB young
generation (\`--max-semi-space-size=128\`; 64 and 256 measured within noise of it): the simulator's short-lived objects then die young instead of
being promoted (the "default young generation" row is the same run without it).
`;
writeSection("sim", md);
console.log(md);
