/**
 * A bounded load test through the live path on loopback: HTTP clients → gateway → router → node agents →
 * engine emulator processes, with a region agent feeding batch jobs into spare capacity, all over a real
 * nats-server. Open-loop Poisson arrivals (seeded) at a fixed rate: interactive streamed chat (IW-fast),
 * interactive non-streamed completions (IW-normal) and batch jobs (NIW, 202 + job id, polled until done).
 * Every request is accounted for: completed, answered with a typed error, or lost (no answer / a job that
 * never completes) — the test and the benchmark require zero lost and zero errors. Used by
 * `test/load.test.ts` (short CI profile) and `bench/load.ts` (10 minutes).
 */
import { GatewayActor } from "@sageserve/gateway";
import { NodeAgentActor } from "@sageserve/node-agent";
import { RegionAgentActor } from "@sageserve/region-agent";
import { RouterActor } from "@sageserve/router";
import { createRng, freePort, NatsBus, startNatsServer, WallClock } from "@sageserve/runtime";

export interface LoadOptions {
  /** Seconds of arrivals. */
  durationS: number;
  /** Mean arrivals per second (Poisson). */
  rate: number;
  seed?: number;
  /** Engine emulator processes per model. */
  nodesPerModel?: number;
  /** Emulator speed-up over the measured hardware (keeps the GPUs from being the bottleneck on 2 cores). */
  speedup?: number;
  /** Memory sample interval, seconds. */
  sampleEveryS?: number;
  /** Per-request client timeout: an answer later than this counts as lost. */
  requestTimeoutMs?: number;
  /** Progress line every this many seconds (0: quiet). */
  progressEveryS?: number;
}

export interface MemorySample {
  tS: number;
  rssMb: number;
  heapMb: number;
  inFlight: number;
}

export interface LoadResult {
  durationS: number;
  rate: number;
  sent: Record<Kind, number>;
  completed: Record<Kind, number>;
  /** Typed error answers by HTTP status (e.g. 429, 503). */
  errors: Record<string, number>;
  /** Requests without an answer within the timeout, streams cut before [DONE], jobs never completed. */
  lost: number;
  lostExamples: string[];
  throughputRps: number;
  outputTokensPerS: number;
  ttftMs: Quantiles;
  e2eMs: Record<Kind, Quantiles>;
  memory: MemorySample[];
  wallS: number;
}

export type Kind = "iw-fast" | "iw-normal" | "niw";
export interface Quantiles {
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

const MODELS = ["llama3.2-3b", "llama3.1-8b"] as const;
const BIN = new URL("../packages/cli/bin/sageserve.js", import.meta.url).pathname;
const WORDS = "the quick brown fox jumps over a lazy dog while serving many models fast and slow".split(" ");

function quantiles(xs: number[]): Quantiles {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => (s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))]! : Number.NaN);
  return { p50: q(0.5), p95: q(0.95), p99: q(0.99), max: s.at(-1) ?? Number.NaN };
}

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const seed = o.seed ?? 1;
  const nodesPerModel = o.nodesPerModel ?? 2;
  const timeoutMs = o.requestTimeoutMs ?? 60_000;
  const rng = createRng(seed, "load");
  const clock = new WallClock({ seed });
  const server = await startNatsServer();
  const buses: NatsBus[] = [];
  const ctx = async (name: string) => {
    const bus = await NatsBus.connect({ servers: server.url, name });
    buses.push(bus);
    return { bus, clock };
  };
  const nodes: NodeAgentActor[] = [];
  for (const model of MODELS) {
    for (let i = 0; i < nodesPerModel; i++) {
      const port = await freePort();
      nodes.push(
        new NodeAgentActor(await ctx(`node-${model}-${i}`), {
          nodeId: `${model.replace(/[^a-z0-9]/g, "")}-${i}`,
          region: "westus",
          gpuType: "h100",
          engine: {
            url: `http://127.0.0.1:${port}`,
            kind: "vllm",
            model,
            command: [
              process.execPath,
              BIN,
              "emulator",
              "--model",
              "{model}",
              "--port",
              "{port}",
              "--speedup",
              String(o.speedup ?? 20),
            ],
            kvCapacityTokens: 1_000_000,
            maxRunning: 256,
          },
          loadReportMs: 500,
          heartbeatMs: 1_000,
        }),
      );
    }
  }
  const router = new RouterActor(await ctx("router"), { regions: ["westus"], models: [...MODELS] });
  const agent = new RegionAgentActor(await ctx("region-agent"), {
    region: "westus",
    models: [...MODELS],
    mode: "unified",
    gpuTypes: ["h100"],
    scalingIntervalMs: 500,
  });
  const gateway = new GatewayActor(await ctx("gateway"), {
    region: "westus",
    models: [...MODELS],
    apiKeys: { "load-key": { name: "load" } },
  });
  const actors = [router, ...nodes, agent, gateway];
  for (const a of actors) await a.start();
  for (let i = 0; i < 300 && nodes.some((n) => n.currentState !== "serving"); i++) await clock.sleep(100);
  if (nodes.some((n) => n.currentState !== "serving")) throw new Error("engine emulators did not start");
  await clock.sleep(1_500); // load reports reach the router

  const sent: Record<Kind, number> = { "iw-fast": 0, "iw-normal": 0, niw: 0 };
  const completed: Record<Kind, number> = { "iw-fast": 0, "iw-normal": 0, niw: 0 };
  const errors: Record<string, number> = {};
  const lostExamples: string[] = [];
  let lost = 0;
  let outputTokens = 0;
  let inFlight = 0;
  const ttft: number[] = [];
  const e2e: Record<Kind, number[]> = { "iw-fast": [], "iw-normal": [], niw: [] };
  const loseOne = (what: string) => {
    lost++;
    if (lostExamples.length < 10) lostExamples.push(what);
  };
  const headers = (tier: string) => ({
    "content-type": "application/json",
    authorization: "Bearer load-key",
    "x-sage-tier": tier,
  });
  const prompt = () =>
    Array.from(
      { length: 20 + Math.floor(rng.next() * 300) },
      () => WORDS[Math.floor(rng.next() * WORDS.length)],
    ).join(" ");

  const one = async (kind: Kind, model: string, text: string, maxTokens: number): Promise<void> => {
    const t0 = performance.now();
    const signal = AbortSignal.timeout(timeoutMs);
    inFlight++;
    try {
      if (kind === "iw-fast") {
        const r = await fetch(`${gateway.url}/v1/chat/completions`, {
          method: "POST",
          headers: headers("fast"),
          body: JSON.stringify({
            model,
            messages: [{ role: "user", content: text }],
            max_tokens: maxTokens,
            stream: true,
          }),
          signal,
        });
        if (r.status !== 200) {
          errors[r.status] = (errors[r.status] ?? 0) + 1;
          await r.text();
          return;
        }
        const reader = r.body!.getReader();
        const dec = new TextDecoder();
        let buf = "";
        let first = 0;
        let tokens = 0;
        let finished = false;
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          let i = buf.indexOf("\n\n");
          while (i >= 0) {
            const ev = buf.slice(0, i);
            buf = buf.slice(i + 2);
            i = buf.indexOf("\n\n");
            if (!ev.startsWith("data: ")) continue;
            const data = ev.slice(6);
            if (data === "[DONE]") {
              finished = true;
              continue;
            }
            const chunk = JSON.parse(data) as {
              choices?: { delta?: { content?: string } }[];
              error?: unknown;
            };
            if (chunk.error) continue;
            if (chunk.choices?.[0]?.delta?.content) {
              if (!first) first = performance.now();
              tokens++;
            }
          }
        }
        if (!finished || tokens !== maxTokens)
          return loseOne(`stream ended after ${tokens}/${maxTokens} tokens`);
        ttft.push(first - t0);
        outputTokens += tokens;
      } else if (kind === "iw-normal") {
        const r = await fetch(`${gateway.url}/v1/completions`, {
          method: "POST",
          headers: headers("normal"),
          body: JSON.stringify({ model, prompt: text, max_tokens: maxTokens }),
          signal,
        });
        const body = (await r.json()) as { usage?: { completion_tokens?: number } };
        if (r.status !== 200) {
          errors[r.status] = (errors[r.status] ?? 0) + 1;
          return;
        }
        const n = body.usage?.completion_tokens ?? 0;
        if (n !== maxTokens) return loseOne(`completion with ${n}/${maxTokens} tokens`);
        outputTokens += n;
      } else {
        const r = await fetch(`${gateway.url}/v1/chat/completions`, {
          method: "POST",
          headers: headers("batch"),
          body: JSON.stringify({ model, messages: [{ role: "user", content: text }], max_tokens: maxTokens }),
          signal,
        });
        const job = (await r.json()) as { id?: string };
        if (r.status !== 202 || !job.id) {
          errors[r.status] = (errors[r.status] ?? 0) + 1;
          return;
        }
        for (;;) {
          if (signal.aborted) return loseOne(`batch job ${job.id} not completed in ${timeoutMs} ms`);
          await clock.sleep(250);
          const s = (await (
            await fetch(`${gateway.url}/v1/sage/jobs/${job.id}`, { headers: headers("batch"), signal })
          ).json()) as { status: string; output?: string };
          if (s.status === "completed") {
            const n = s.output?.trim().split(/\s+/).length ?? 0;
            if (n !== maxTokens) return loseOne(`batch job ${job.id} with ${n}/${maxTokens} tokens`);
            outputTokens += n;
            break;
          }
          if (s.status === "failed") {
            errors.jobFailed = (errors.jobFailed ?? 0) + 1;
            return;
          }
        }
      }
      e2e[kind].push(performance.now() - t0);
      completed[kind]++;
    } catch (e) {
      loseOne(`${kind}: ${String(e)}`);
    } finally {
      inFlight--;
    }
  };

  const memory: MemorySample[] = [];
  const start = performance.now();
  const sample = () => {
    const m = process.memoryUsage();
    memory.push({
      tS: Math.round((performance.now() - start) / 1000),
      rssMb: Math.round(m.rss / 2 ** 20),
      heapMb: Math.round(m.heapUsed / 2 ** 20),
      inFlight,
    });
  };
  sample();
  const sampler = setInterval(sample, (o.sampleEveryS ?? 5) * 1000);
  const progress =
    o.progressEveryS && o.progressEveryS > 0
      ? setInterval(() => {
          const c = completed["iw-fast"] + completed["iw-normal"] + completed.niw;
          console.log(
            `load: ${Math.round((performance.now() - start) / 1000)} s, ${c} completed, ${inFlight} in flight, ${lost} lost`,
          );
        }, o.progressEveryS * 1000)
      : undefined;

  // Open loop: arrivals do not wait for answers.
  const pending: Promise<void>[] = [];
  const endAt = start + o.durationS * 1000;
  let next = start;
  while (true) {
    next += (-Math.log(1 - rng.next()) / o.rate) * 1000;
    if (next >= endAt) break;
    const wait = next - performance.now();
    if (wait > 1) await clock.sleep(wait);
    const u = rng.next();
    const kind: Kind = u < 0.5 ? "iw-fast" : u < 0.8 ? "iw-normal" : "niw";
    const model = MODELS[rng.next() < 0.6 ? 0 : 1]!;
    sent[kind]++;
    pending.push(one(kind, model, prompt(), 8 + Math.floor(rng.next() * 56)));
  }
  await Promise.all(pending);
  const wallS = (performance.now() - start) / 1000;
  clearInterval(sampler);
  if (progress) clearInterval(progress);
  sample();

  for (const a of [gateway, agent, ...nodes, router]) await a.stop();
  for (const b of buses) await b.close();
  clock.cancelAll();
  await server.stop();

  const done = completed["iw-fast"] + completed["iw-normal"] + completed.niw;
  return {
    durationS: o.durationS,
    rate: o.rate,
    sent,
    completed,
    errors,
    lost,
    lostExamples,
    throughputRps: done / o.durationS,
    outputTokensPerS: outputTokens / o.durationS,
    ttftMs: quantiles(ttft),
    e2eMs: {
      "iw-fast": quantiles(e2e["iw-fast"]),
      "iw-normal": quantiles(e2e["iw-normal"]),
      niw: quantiles(e2e.niw),
    },
    memory,
    wallS,
  };
}
