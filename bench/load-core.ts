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
import { NatsBus, type NatsClusterHandle, startNatsCluster, startNatsServer } from "@sageserve/nats";
import { NodeAgentActor } from "@sageserve/node-agent";
import { NIW_STREAM } from "@sageserve/protocol";
import { RegionAgentActor } from "@sageserve/region-agent";
import { RouterActor } from "@sageserve/router";
import { createRng, freePort, WallClock } from "@sageserve/runtime";

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
  /** nats-servers: 1 (default) or a cluster of this many (JetStream assets then get 3 replicas). */
  natsServers?: number;
  /**
   * Fault on the NATS cluster: SIGKILL the server that leads the SAGE_NIW stream at `killAtS` (the router,
   * gateway, region agent and one node agent per model are connected to it), start it again
   * `restartAfterS` later on its ports and store, and wait until it has caught up.
   */
  natsFault?: { killAtS: number; restartAfterS: number };
}

export type ProbeOutcome = "complete" | "truncated" | "error" | "hung";

/** What the NATS fault did and how the cluster came through it. */
export interface NatsFaultResult {
  servers: number;
  /** Replicas of SAGE_NIW and the KV bucket, as the servers report them. */
  niwReplicas: number;
  kvReplicas: number;
  killed: string;
  /** The connections that were on the killed server when it died. */
  clientsOnKilled: string[];
  /** Kill → the last of those connections reconnected to another server. */
  clientFailoverMs: number;
  /** Kill → SAGE_NIW has a new leader. */
  niwLeaderMs: number;
  /** Streams in flight at the kill: the longest wait from their last token before the kill to their first after. */
  streamsAcrossKill: number;
  failoverGapMs: number;
  /**
   * The 4 long probe streams (4,000 tokens) running across the kill: complete (every token, then [DONE]),
   * truncated ([DONE] with tokens missing), error (an error event or status), hung (no end within 20 s).
   */
  probeStreams: Record<ProbeOutcome, number>;
  /** A KV value written before the kill reads back after it. */
  kvIntact: boolean;
  /** Restart → the restarted server is a current replica of SAGE_NIW and the KV bucket again. */
  catchUpMs: number;
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
  nats?: NatsFaultResult;
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
  const natsServers = o.natsServers ?? 1;
  const cluster: NatsClusterHandle | undefined =
    natsServers > 1 ? await startNatsCluster({ size: natsServers }) : undefined;
  const single = cluster ? undefined : await startNatsServer();
  const serverUrl = cluster?.url ?? single!.url;
  const buses: NatsBus[] = [];
  const reconnects = new Map<string, number[]>();
  // The server to kill leads SAGE_NIW; the connections named in `pinned` connect to it first.
  let target = -1;
  const track = (name: string) => (st: { type: string }) => {
    if (st.type === "reconnect") reconnects.set(name, [...(reconnects.get(name) ?? []), performance.now()]);
  };
  const admin = await NatsBus.connect({
    servers: serverUrl,
    name: "load-admin",
    onStatus: track("load-admin"),
  });
  buses.push(admin);
  if (cluster) {
    await admin.ensureDurableStream(NIW_STREAM);
    await admin.kvPut("sage-plans", "fault-probe", { written: "before the fault" });
    const jsm = await admin.connection.jetstreamManager();
    const leader = (await jsm.streams.info(NIW_STREAM.name)).cluster?.leader;
    target = cluster.servers.findIndex((_, i) => `${cluster.name}-${i + 1}` === leader);
    if (target < 0) throw new Error(`SAGE_NIW has no leader among the cluster's servers (${leader})`);
  }
  const pinned = (name: string) =>
    cluster !== undefined &&
    (["router", "gateway", "region-agent"].includes(name) || /^node-.*-0$/.test(name));
  const ctx = async (name: string) => {
    // router-2 starts on another server than the one to be killed.
    const first = pinned(name)
      ? cluster!.urls[target]!
      : cluster && name === "router-2"
        ? cluster.urls[(target + 1) % cluster.urls.length]!
        : undefined;
    const bus = await NatsBus.connect({
      servers: first ? [first, ...cluster!.urls.filter((u) => u !== first)] : serverUrl,
      name,
      ...(first ? { noRandomize: true } : {}),
      onStatus: track(name),
    });
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
  // On a cluster, a second router (queue group `router`) on another server, as a deployment runs them:
  // while the first fails over, the second takes the routing requests.
  const routers = cluster
    ? [
        router,
        // Its own id: broadcast subscriptions are queue groups named after the actor id, and two routers
        // sharing the default id would split the load reports and heartbeats between them.
        new RouterActor(await ctx("router-2"), { regions: ["westus"], models: [...MODELS], id: "router-2" }),
      ]
    : [router];
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
  const actors = [...routers, ...nodes, agent, gateway];
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
  const streamTimes: number[][] = [];
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
    const at = () => ((t0 - start) / 1000).toFixed(1);
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
        const times: number[] = [];
        if (cluster) streamTimes.push(times);
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
              if (cluster) times.push(performance.now());
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
          if (signal.aborted)
            return loseOne(`batch job ${job.id} (sent at ${at()} s) not completed in ${timeoutMs} ms`);
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
      loseOne(`${kind} (sent at ${at()} s): ${String(e)}`);
    } finally {
      inFlight--;
    }
  };

  /** A long streamed chat whose token arrival times are kept (the failover gap is measured on these). */
  const probeStream = (maxTokens: number): { times: number[]; done: Promise<ProbeOutcome> } => {
    const times: number[] = [];
    const done = (async () => {
      const r = await fetch(`${gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: headers("fast"),
        body: JSON.stringify({
          model: MODELS[0],
          messages: [{ role: "user", content: "probe" }],
          max_tokens: maxTokens,
          stream: true,
        }),
        signal: AbortSignal.timeout(20_000),
      });
      if (r.status !== 200) return "error" as const;
      const text = r.body!.getReader();
      const dec = new TextDecoder();
      let buf = "";
      let finished = false;
      let errored = false;
      for (;;) {
        const { value, done: end } = await text.read();
        if (end) break;
        buf += dec.decode(value, { stream: true });
        let i = buf.indexOf("\n\n");
        while (i >= 0) {
          const ev = buf.slice(0, i);
          buf = buf.slice(i + 2);
          i = buf.indexOf("\n\n");
          if (ev === "data: [DONE]") finished = true;
          else if (ev.includes('"error"')) errored = true;
          else if (ev.includes('"content"')) {
            times.push(performance.now());
          }
        }
      }
      if (errored) return "error" as const;
      return finished && times.length === maxTokens ? ("complete" as const) : ("truncated" as const);
    })().catch(() => "hung" as const);
    return { times, done };
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
  let fault: Promise<NatsFaultResult> | undefined;
  if (cluster && o.natsFault) {
    const f = o.natsFault;
    fault = clock
      .sleep(f.killAtS * 1000)
      .then(() =>
        natsFault(
          cluster,
          target,
          f.restartAfterS,
          admin,
          buses,
          reconnects,
          clock,
          streamTimes,
          probeStream,
        ),
      );
    fault.catch(() => {});
  }
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
  const nats = await fault;
  clearInterval(sampler);
  if (progress) clearInterval(progress);
  sample();

  for (const a of [gateway, agent, ...nodes, ...routers]) await a.stop();
  for (const b of buses) await b.close();
  clock.cancelAll();
  await cluster?.stop();
  await single?.stop();

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
    ...(nats ? { nats } : {}),
  };
}

async function until(
  cond: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what: string,
): Promise<number> {
  const t0 = performance.now();
  while (!(await cond())) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return performance.now() - t0;
}

/** SIGKILL server `target` of the cluster under load, start it again, and measure what it cost. */
async function natsFault(
  cluster: NatsClusterHandle,
  target: number,
  restartAfterS: number,
  admin: NatsBus,
  buses: NatsBus[],
  reconnects: Map<string, number[]>,
  clock: WallClock,
  streamTimes: number[][],
  probeStream: (maxTokens: number) => { times: number[]; done: Promise<ProbeOutcome> },
): Promise<NatsFaultResult> {
  const killedName = `${cluster.name}-${target + 1}`;
  const jsm = await admin.connection.jetstreamManager();
  const info = async (stream: string) => (await jsm.streams.info(stream)).cluster;
  const names = buses.filter((b) => b.connection.info?.server_name === killedName).map((b) => b.name);
  // Long streams in flight across the kill: the failover gap is last token before → first token after.
  const probes = Array.from({ length: 4 }, () => probeStream(4_000));
  await until(() => probes.every((p) => p.times.length >= 3), 30_000, "the probe streams start");
  const killAt = performance.now();
  await cluster.kill(target);
  const niwLeaderMs = await until(
    async () => {
      const c = await info(NIW_STREAM.name).catch(() => undefined);
      return !!c?.leader && c.leader !== killedName;
    },
    30_000,
    "SAGE_NIW elects a new leader",
  );
  const clientFailoverMs = await until(
    () => names.every((n) => (reconnects.get(n) ?? []).some((t) => t > killAt)),
    30_000,
    "every client of the killed server reconnects",
  ).then(() => Math.max(0, ...names.map((n) => reconnects.get(n)!.find((t) => t > killAt)! - killAt)));
  await clock.sleep(restartAfterS * 1000);
  await cluster.restart(target);
  const restartAt = performance.now();
  const caughtUp = async (stream: string) => {
    const c = await info(stream).catch(() => undefined);
    const peers = [
      c?.leader,
      ...(c?.replicas ?? []).filter((r) => r.current && !r.offline).map((r) => r.name),
    ];
    return peers.includes(killedName) && (c?.replicas ?? []).every((r) => r.current && !r.offline);
  };
  await until(
    async () => (await caughtUp(NIW_STREAM.name)) && (await caughtUp("KV_sage-plans")),
    30_000,
    "the restarted server catches up",
  );
  const catchUpMs = performance.now() - restartAt;
  const kv = (await admin.kvGet("sage-plans", "fault-probe")) as { written?: string } | undefined;
  const probesOk = await Promise.all(probes.map((p) => p.done));
  const across = [...streamTimes, ...probes.map((p) => p.times)].filter(
    (t) => t.length && t[0]! < killAt && t.at(-1)! > killAt,
  );
  const gaps = across.map((t) => {
    const after = t.findIndex((x) => x > killAt);
    return t[after]! - t[after - 1]!;
  });
  const niw = await jsm.streams.info(NIW_STREAM.name);
  const kvInfo = await jsm.streams.info("KV_sage-plans");
  return {
    servers: cluster.servers.length,
    niwReplicas: niw.config.num_replicas,
    kvReplicas: kvInfo.config.num_replicas,
    killed: killedName,
    clientsOnKilled: names,
    clientFailoverMs: Math.round(clientFailoverMs),
    niwLeaderMs: Math.round(niwLeaderMs),
    streamsAcrossKill: across.length,
    probeStreams: {
      complete: probesOk.filter((x) => x === "complete").length,
      truncated: probesOk.filter((x) => x === "truncated").length,
      error: probesOk.filter((x) => x === "error").length,
      hung: probesOk.filter((x) => x === "hung").length,
    },
    failoverGapMs: Math.round(Math.max(0, ...gaps)),
    kvIntact: kv?.written === "before the fault",
    catchUpMs: Math.round(catchUpMs),
  };
}
