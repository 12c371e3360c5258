/**
 * The long load test: 10 minutes of open-loop traffic through gateway → router → node agents → engine emulator
 * processes over a real nats-server (bench/load-core.ts), zero lost requests required; throughput, latency
 * percentiles and memory over time go to docs/benchmarks.md. `--quick`: 60 s.
 */
import { runLoad } from "./load-core.js";
import { fmt, machine, writeSection } from "./report.js";

const quick = process.argv.includes("--quick");
const durationS = quick ? 60 : 600;
const rate = 40;
const r = await runLoad({ durationS, rate, seed: 1, sampleEveryS: quick ? 10 : 30, progressEveryS: 30 });
const sent = r.sent["iw-fast"] + r.sent["iw-normal"] + r.sent.niw;
const done = r.completed["iw-fast"] + r.completed["iw-normal"] + r.completed.niw;
const errors = Object.entries(r.errors)
  .map(([k, n]) => `${k}: ${n}`)
  .join(", ");
const q = (x: { p50: number; p95: number; p99: number; max: number }) =>
  `${fmt(x.p50, 0)} / ${fmt(x.p95, 0)} / ${fmt(x.p99, 0)} / ${fmt(x.max, 0)}`;
const md = `## Sustained load through the live path (\`bench/load.ts\`)

Machine: ${machine()}${quick ? " — **quick profile**" : ""}. ${durationS / 60} minutes of open-loop Poisson arrivals at
${rate} requests/s (seeded) through HTTP → gateway → router → node agents → engine emulator processes (2 models × 2
instances, 20× the measured H100 speed so the 2 cores are not spent on emulated GPUs), all over a real nats-server on
loopback, with a region agent feeding batch jobs into spare capacity. Mix: 50 % streamed IW-fast chat, 30 % IW-normal
completions, 20 % NIW batch jobs (202 + job id, polled until completed); prompts of 20–320 words, 8–63 output tokens.
Client, gateway, router, region agent and node agents share one Node process (the memory below); nats-server and the
emulators are separate processes. The CI profile (\`test/load.test.ts\`) runs 30 s at 25 requests/s.

| sent | completed | typed errors | **lost** | throughput | output tokens/s | wall time |
| ---: | ---: | --- | ---: | ---: | ---: | ---: |
| ${sent.toLocaleString("en-US")} | ${done.toLocaleString("en-US")} | ${errors || "none"} | **${r.lost}** | ${fmt(r.throughputRps, 1)} req/s | ${fmt(r.outputTokensPerS, 0)} | ${fmt(r.wallS, 0)} s |

| latency, ms | p50 / p95 / p99 / max |
| --- | --- |
| IW-fast TTFT | ${q(r.ttftMs)} |
| IW-fast end to end | ${q(r.e2eMs["iw-fast"])} |
| IW-normal end to end | ${q(r.e2eMs["iw-normal"])} |
| NIW job submitted → completed seen (250 ms polling) | ${q(r.e2eMs.niw)} |

Memory of the control-plane process over time:

| t (s) | RSS MB | heap MB | requests in flight |
| ---: | ---: | ---: | ---: |
${r.memory.map((m) => `| ${m.tS} | ${m.rssMb} | ${m.heapMb} | ${m.inFlight} |`).join("\n")}
${r.lost ? `\nLost: ${r.lostExamples.join("; ")}\n` : ""}`;
writeSection("load", md);
console.log(md);
if (r.lost > 0) process.exitCode = 1;
