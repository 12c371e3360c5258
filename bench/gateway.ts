/**
 * Gateway overhead: the added latency of gateway → router → node agent (over a real nats-server)
 * against calling the engine emulator directly, and sustained streamed requests/s through the full
 * path. The emulator runs 1000× faster than the measured hardware so the control path dominates.
 */
import { fmt, machine, percentile, writeSection } from "./report.js";
import { startRequestPath } from "./request-path.js";

const quick = process.argv.includes("--quick");
const N = quick ? 100 : 500;
const path = await startRequestPath({ speedup: 1000, models: ["llama3.2-3b"], nodeId: "b1" });
const { emu, gateway } = path;

const body = (stream: boolean) =>
  JSON.stringify({ model: "llama3.2-3b", prompt: "hello there", max_tokens: 4, stream });
const once = async (base: string, stream: boolean): Promise<number> => {
  const t0 = performance.now();
  const r = await fetch(`${base}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: body(stream),
  });
  await r.text();
  if (r.status !== 200) throw new Error(`status ${r.status}`);
  return performance.now() - t0;
};
const series = async (base: string, stream: boolean) => {
  for (let i = 0; i < 30; i++) await once(base, stream);
  const xs: number[] = [];
  for (let i = 0; i < N; i++) xs.push(await once(base, stream));
  return xs.sort((a, b) => a - b);
};
const direct = await series(emu.url, true);
const via = await series(gateway.url, true);
const throughput = async (base: string, concurrency: number, seconds: number) => {
  let done = 0;
  const end = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        await once(base, true);
        done++;
      }
    }),
  );
  return done / seconds;
};
const tpDirect = await throughput(emu.url, 32, quick ? 3 : 8);
const tpVia = await throughput(gateway.url, 32, quick ? 3 : 8);

await path.stop();

const row = (name: string, xs: number[]) =>
  `| ${name} | ${fmt(percentile(xs, 50), 2)} | ${fmt(percentile(xs, 99), 2)} |`;
const md = `## Gateway overhead (\`bench/gateway.ts\`)

Machine: ${machine()}${quick ? " — **quick profile**" : ""}. Streamed completions of 4 tokens; the engine emulator runs 1000× faster
than the measured hardware so that the control path dominates. Gateway path: HTTP → gateway → RouteRequest (NATS request)
→ router → InferenceRequest (NATS) → node agent → HTTP to the engine → tokens back as InferenceChunks (NATS) → SSE.
Everything (nats-server, gateway, router, node agent, emulator, client) shares the 2 cores.

| path | p50 ms | p99 ms |
| --- | ---: | ---: |
${row("client → emulator directly", direct)}
${row("client → gateway → router → node agent → emulator", via)}

Added latency at p50: **${fmt(percentile(via, 50) - percentile(direct, 50), 2)} ms** (p99: ${fmt(percentile(via, 99) - percentile(direct, 99), 2)} ms).
Sustained streamed requests/s with 32 concurrent clients: directly **${fmt(tpDirect, 0)}**, through the full path **${fmt(tpVia, 0)}**
(${(tpVia / tpDirect).toFixed(2)}× of direct).
`;
writeSection("gateway", md);
console.log(md);
