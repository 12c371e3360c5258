/**
 * Cancellation latency: from a client's abort to the engine no longer running the request (its
 * `num_requests_running` back to 0, KV freed), through gateway → router → node agent → engine emulator
 * on a real nats-server, for streamed requests, requests not streamed, and requests the router still
 * holds (no instance of their model yet: until the router has dropped them). Also the tokens the
 * engine generated after the abort.
 */
import { fmt, machine, percentile, writeSection } from "./report.js";
import { startRequestPath } from "./request-path.js";

const quick = process.argv.includes("--quick");
const N = quick ? 20 : 100;
// Real-time speed: a 3,000-token answer would run for tens of seconds if nothing stopped it. llama3.1-8b
// is offered but served nowhere: the router holds its requests.
const path = await startRequestPath({ speedup: 1, models: ["llama3.2-3b", "llama3.1-8b"], nodeId: "c1" });
const { emu, router, gateway } = path;

const until = async (cond: () => boolean): Promise<void> => {
  const end = performance.now() + 30_000;
  while (!cond()) {
    if (performance.now() > end) throw new Error("timed out");
    await new Promise((r) => setImmediate(r));
  }
};
const post = (model: string, stream: boolean, signal: AbortSignal) =>
  fetch(`${gateway.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model,
      messages: [{ role: "user", content: "a long story" }],
      max_tokens: 3000,
      stream,
    }),
    signal,
  });

/** Abort once the engine runs the request (streamed: after 20 chunks); ms until it no longer does. */
const measure = async (stream: boolean): Promise<{ ms: number; tokensAfter: number }> => {
  const abort = new AbortController();
  const r = post("llama3.2-3b", stream, abort.signal).catch(() => undefined);
  if (stream) {
    const res = await r;
    const reader = res!.body!.getReader();
    let events = 0;
    while (events < 20) {
      const { value } = await reader.read();
      events += (new TextDecoder().decode(value).match(/\n\n/g) ?? []).length;
    }
  } else await until(() => emu.engine.stats().running === 1);
  const tokens = emu.engine.generationTokensTotal;
  const t0 = performance.now();
  abort.abort();
  await until(() => emu.engine.stats().running === 0);
  const ms = performance.now() - t0;
  await r;
  return { ms, tokensAfter: emu.engine.generationTokensTotal - tokens };
};
const held = async (): Promise<number> => {
  const abort = new AbortController();
  const r = post("llama3.1-8b", false, abort.signal).catch(() => undefined);
  await until(() => router.pendingCount === 1);
  const t0 = performance.now();
  abort.abort();
  await until(() => router.pendingCount === 0);
  const ms = performance.now() - t0;
  await r;
  return ms;
};

const runs = async <T>(f: () => Promise<T>): Promise<T[]> => {
  const out: T[] = [];
  for (let i = 0; i < N; i++) out.push(await f());
  return out;
};
const streamed = await runs(() => measure(true));
const whole = await runs(() => measure(false));
const heldMs = (await runs(held)).sort((a, b) => a - b);

await path.stop();

const row = (name: string, xs: { ms: number; tokensAfter: number }[]) => {
  const ms = xs.map((x) => x.ms).sort((a, b) => a - b);
  const after = xs.map((x) => x.tokensAfter).sort((a, b) => a - b);
  return `| ${name} | ${fmt(percentile(ms, 50), 2)} | ${fmt(percentile(ms, 99), 2)} | ${percentile(after, 50)} / ${after.at(-1)} |`;
};
const md = `## Cancellation latency (\`bench/cancel.ts\`)

Machine: ${machine()}${quick ? " — **quick profile**" : ""}. ${N} aborts of each kind through gateway → router → node agent →
engine emulator on a real nats-server; requests of 3,000 tokens at the measured speed (they would run for tens of seconds). Time
from the client's abort until the engine no longer runs the request (\`num_requests_running\` back to 0, its KV freed) — for a
request the router holds (no instance of its model), until the router has dropped it. Node heartbeats are 5 s apart.

| request | p50 ms | p99 ms | tokens generated after the abort (p50 / max) |
| --- | ---: | ---: | ---: |
${row("streamed, aborted after 20 chunks", streamed)}
${row("not streamed, aborted while running", whole)}
| held by the router (no instance yet) | ${fmt(percentile(heldMs, 50), 2)} | ${fmt(percentile(heldMs, 99), 2)} | — |
`;
writeSection("cancel", md);
console.log(md);
