import type { ChildProcess } from "node:child_process";
import {
  BATCH_MAX_ATTEMPTS,
  BATCH_RESULT_TTL_MS,
  BATCH_RESULTS_BUCKET,
  Heartbeat,
  InferenceChunk,
  InferenceRequest,
  type InstanceState,
  InstanceTransition,
  LoadReport,
  NodeCommand,
  nodeCommandStep,
  type Payload,
  type ReplyIn,
  RequestCancel,
  RequestDone,
  RunCheck,
  SageError,
  streamParams,
  streamSubjectOf,
} from "@sageserve/protocol";
import { Actor, type ActorContext } from "@sageserve/runtime";
import { fetchOnce, ResultCollector, runEngineCall } from "./engine-call.js";
import { spawnEngine, stopEngineProcess } from "./engine-process.js";
import { type EngineKind, type EngineLoad, engineLoad, parsePrometheus } from "./metrics.js";
import { type NodeAgentOptions, type NodeAgentTimings, resolveTimings } from "./options.js";
import { compilePriority, type EnginePriority, engineCall } from "./priority.js";

/**
 * One per GPU host: wraps an inference server that speaks the OpenAI HTTP API,
 * reads its Prometheus metrics (one table maps each engine's names), publishes
 * load reports and heartbeats, runs routed requests and streams the tokens back
 * over NATS, and carries out the region agent's commands (drain, lend as spot,
 * reclaim, swap the model by restarting the engine).
 */
export class NodeAgentActor extends Actor {
  private state: InstanceState = "loading";
  private model: string;
  private pool: string | undefined;
  private load: EngineLoad = { running: 0, waiting: 0, kvUtilization: 0 };
  private inFlight = 0;
  /** Requests sent to the engine that have no first token yet: when each was sent, by tier. */
  private readonly awaitingFirst = new Map<string, { tier: string; sinceMs: number }>();
  private afterDrain: InstanceState | undefined;
  /** An `unload` of a busy instance: its engine stops once the drain has finished. */
  private unloadAfterDrain = false;
  private failedChecks = 0;
  private seq = 0;
  private proc: ChildProcess | undefined;
  /** Bumped when a new engine process starts; polls that began before belong to the old engine. */
  private engineGen = 0;
  private replacingEngine = false;
  private readonly streams = new Set<Promise<void>>();
  /** The engine request of each request in flight, to abort when its client goes away. */
  private readonly engineCalls = new Map<string, AbortController>();
  /**
   * Requests cancelled lately (id → when): a cancel can overtake its InferenceRequest (the gateway
   * publishes it straight here, the request comes through the router), so it is remembered a while.
   */
  private readonly cancelled = new Map<string, number>();
  /** Batch (NIW) requests finished lately: a region agent whose RequestDone was lost asks (RunCheck). */
  private readonly finished = new Map<string, { outcome: RunOutcome; atMs: number }>();
  /** The priority each request carries to the engine (undefined: none). */
  private readonly priority: EnginePriority | undefined;
  private readonly timings: NodeAgentTimings;
  readonly instanceId: string;

  constructor(
    ctx: ActorContext,
    private readonly opts: NodeAgentOptions,
  ) {
    super(ctx, {
      role: "node-agent",
      id: `node-agent-${opts.nodeId}`,
      description: "wraps an inference server on one GPU host",
      metadata: { region: opts.region, node: opts.nodeId, engine: opts.engine.kind },
    });
    this.model = opts.engine.model;
    this.pool = opts.engine.pool;
    this.priority = compilePriority(opts.engine.kind, opts.engine.priority);
    this.timings = resolveTimings(opts);
    this.instanceId = `${opts.nodeId}-i0`;
  }

  get currentState(): InstanceState {
    return this.state;
  }

  get currentModel(): string {
    return this.model;
  }

  get engineUrl(): string {
    return this.opts.engine.url;
  }

  /** The engine process this agent started (undefined when it watches an engine run by someone else). */
  get engineProcess(): ChildProcess | undefined {
    return this.proc;
  }

  protected setup(): void {
    const node = this.opts.nodeId;
    this.handle(InferenceRequest, { node }, (r) => this.infer(r));
    this.handle(RunCheck, { node }, (c) => this.runs(c.requestIds));
    this.handle(NodeCommand, { node }, (c) => this.command(c));
    this.on(RequestCancel, {}, (c) => this.cancel(c.requestId), { broadcast: true });
    if (this.opts.engine.command) this.startEngine(this.model);
    this.every(this.timings.loadReportMs, () => this.poll());
    this.every(this.timings.heartbeatMs, () => this.heartbeat());
    this.after(0, () => this.poll());
  }

  protected override async teardown(): Promise<void> {
    // Let in-flight streams finish, but not forever.
    let timer: { cancel(): void } | undefined;
    await Promise.race([
      Promise.allSettled([...this.streams]),
      new Promise<void>((r) => {
        timer = this.clock.setTimer(this.timings.drainTimeoutMs, r);
      }),
    ]);
    timer?.cancel();
    await this.stopEngine();
  }

  // ------------------------------------------------------------ engine process

  private engineBaseUrl(): URL {
    return new URL(this.opts.engine.url);
  }

  private startEngine(model: string): void {
    const port = this.engineBaseUrl().port || "80";
    this.proc = spawnEngine(this.opts.engine.command!, { model, port, gpuType: this.opts.gpuType }, (e) =>
      this.log.error({ err: String(e) }, "engine failed to start"),
    );
  }

  private stopEngine(): Promise<void> {
    const p = this.proc;
    this.proc = undefined;
    return stopEngineProcess(p, this.clock);
  }

  // ------------------------------------------------------------ health, load, heartbeats

  private async poll(): Promise<void> {
    const base = this.opts.engine.url;
    const gen = this.engineGen;
    const replacing = this.replacingEngine;
    let healthy = false;
    try {
      const h = await fetchOnce(`${base}/health`, { signal: AbortSignal.timeout(2_000) });
      healthy = h.ok;
      if (healthy) {
        const m = await fetchOnce(`${base}/metrics`, { signal: AbortSignal.timeout(2_000) });
        if (m.ok) this.load = engineLoad(this.opts.engine.kind, parsePrometheus(await m.text()));
      }
    } catch {
      healthy = false;
    }
    // A poll that overlapped an engine restart may have reached the old process: no state change from it.
    if (!replacing && !this.replacingEngine && gen === this.engineGen) this.judgeHealth(healthy);
    this.report();
  }

  private judgeHealth(healthy: boolean): void {
    if (healthy) {
      this.failedChecks = 0;
      if (this.state === "loading" || this.state === "swapping" || this.state === "failed")
        this.transition("serving", "engine healthy");
    } else if (this.state === "serving" || this.state === "draining") {
      if (++this.failedChecks >= this.timings.failAfterChecks)
        this.transition("failed", "engine health check failing");
    }
  }

  private report(): void {
    const { region, nodeId, gpuType } = this.opts;
    this.publish(
      LoadReport,
      { region, model: this.model, instance: this.instanceId },
      {
        instanceId: this.instanceId,
        nodeId,
        region,
        model: this.model,
        gpuType,
        state: this.state,
        kvUtilization: this.load.kvUtilization,
        memoryUtilization: this.load.kvUtilization,
        running: this.load.running,
        waiting: this.load.waiting,
        outstandingTokens: 0,
        tokensPerSecond: 0,
        ...(this.opts.engine.kvCapacityTokens ? { kvCapacityTokens: this.opts.engine.kvCapacityTokens } : {}),
        ...(this.opts.engine.maxRunning ? { maxRunning: this.opts.engine.maxRunning } : {}),
        ...this.waitMs(),
        ...(this.pool ? { pool: this.pool } : {}),
        atMs: this.clock.now(),
      },
    );
  }

  /** The oldest wait for a first token per interactive tier, as the node agent sees it (LoadReport). */
  private waitMs(): { iwFastWaitMs?: number; iwNormalWaitMs?: number } {
    const now = this.clock.now();
    let fast = 0;
    let normal = 0;
    for (const { tier, sinceMs } of this.awaitingFirst.values()) {
      if (tier === "iw-fast") fast = Math.max(fast, now - sinceMs);
      else if (tier === "iw-normal") normal = Math.max(normal, now - sinceMs);
    }
    return { ...(fast ? { iwFastWaitMs: fast } : {}), ...(normal ? { iwNormalWaitMs: normal } : {}) };
  }

  private heartbeat(): Promise<void> {
    const { region, nodeId, gpuType } = this.opts;
    const hb = this.timings.heartbeatMs;
    // Liveness also lives in KV (bucket entries expire after 3 heartbeats): a dead node disappears.
    const alive = this.kvPut(
      "sage-nodes",
      nodeId,
      { nodeId, region, state: this.state, model: this.model, atMs: this.clock.now() },
      { bucketTtlMs: 3 * hb },
    );
    this.publish(
      Heartbeat,
      { region, node: nodeId },
      {
        nodeId,
        region,
        gpuType,
        gpus: this.timings.gpus,
        spot: this.state === "spot",
        instances: [{ instanceId: this.instanceId, model: this.model, state: this.state }],
        ttlMs: 3 * hb,
        seq: ++this.seq,
        atMs: this.clock.now(),
      },
    );
    return alive.then(() => {});
  }

  private transition(to: InstanceState, reason: string): void {
    if (to === this.state) return;
    const from = this.state;
    this.state = to;
    const { region, nodeId } = this.opts;
    this.publish(
      InstanceTransition,
      { region, instance: this.instanceId },
      {
        instanceId: this.instanceId,
        nodeId,
        region,
        model: this.model,
        from,
        to,
        reason,
        atMs: this.clock.now(),
      },
    );
    this.report();
  }

  // ------------------------------------------------------------ commands

  private command(c: Payload<typeof NodeCommand>) {
    const refuse = (message: string) => ({
      commandId: c.commandId,
      accepted: false,
      state: this.state,
      message,
    });
    const ok = () => ({ commandId: c.commandId, accepted: true, state: this.state });
    // What this node can do at all; the lifecycle rule (shared with the simulator) decides the rest.
    if ((c.action === "swap" || c.action === "load") && !c.model) return refuse(`${c.action} needs a model`);
    if ((c.action === "swap" || c.action === "load") && !this.opts.engine.command)
      return refuse("this node does not run its engine: configure engine.command to swap models");
    const step = nodeCommandStep({ state: this.state, model: this.model, inFlight: this.inFlight }, c);
    if (!step.accepted) return refuse(step.reason);
    switch (c.action) {
      case "drain":
      case "make-spot":
      case "unload":
        if (step.to === "draining") {
          this.afterDrain = step.settlesIn;
          this.unloadAfterDrain = c.action === "unload";
          this.transition("draining", c.action);
          this.finishDrainIfIdle();
          return ok();
        }
        void this.stopEngine();
        this.transition("stopped", "unloaded");
        return ok();
      case "reclaim":
        // The engine kept its model while lent out: serving again once its next health check passes.
        this.transition(step.to, "reclaim");
        return ok();
      case "swap":
      case "load": {
        this.transition(step.to, `${c.action} ${c.model}`);
        this.model = c.model!;
        this.pool = c.pool;
        this.replacingEngine = true;
        void this.stopEngine().then(() => {
          this.engineGen++;
          this.replacingEngine = false;
          this.startEngine(this.model);
        });
        return ok();
      }
    }
  }

  private finishDrainIfIdle(): void {
    if (this.state === "draining" && this.inFlight === 0 && this.afterDrain) {
      const to = this.afterDrain;
      this.afterDrain = undefined;
      if (this.unloadAfterDrain) {
        this.unloadAfterDrain = false;
        void this.stopEngine();
      }
      this.transition(to, "drained");
    }
  }

  // ------------------------------------------------------------ inference

  /** The client went away: abort the engine request (the engine frees its KV cache) or refuse it later. */
  private cancel(requestId: string): void {
    const now = this.clock.now();
    forgetBefore(this.cancelled, now - CANCEL_MEMORY_MS, (at) => at);
    this.cancelled.set(requestId, now);
    this.engineCalls.get(requestId)?.abort();
  }

  /** Which of these requests run here now, and which finished lately (RunCheck). */
  private runs(requestIds: readonly string[]): ReplyIn<typeof RunCheck> {
    forgetBefore(this.finished, this.clock.now() - FINISHED_MEMORY_MS, (f) => f.atMs);
    const running: string[] = [];
    const done: { requestId: string; outcome: RunOutcome }[] = [];
    for (const id of requestIds) {
      if (this.engineCalls.has(id)) running.push(id);
      else {
        const f = this.finished.get(id);
        if (f) done.push({ requestId: id, outcome: f.outcome });
      }
    }
    return { running, done };
  }

  private infer(r: Payload<typeof InferenceRequest>) {
    // Sent again (a region agent whose hand-off answer was lost queues the job again and may pick this
    // node once more): the run in progress answers for it, the request is not run twice here.
    if (this.engineCalls.has(r.requestId))
      return { requestId: r.requestId, accepted: true, streamSubject: streamSubjectOf(r) };
    if (this.state !== "serving")
      return new SageError("NO_CAPACITY", `instance ${this.instanceId} is ${this.state}`);
    if (r.model !== this.model)
      return new SageError(
        "UNKNOWN_MODEL",
        `instance ${this.instanceId} serves ${this.model}, not ${r.model}`,
      );
    const streamSubject = streamSubjectOf(r);
    this.inFlight++;
    const p = this.stream(r).finally(() => {
      this.inFlight--;
      this.streams.delete(p);
      this.finishDrainIfIdle();
    });
    this.streams.add(p);
    return { requestId: r.requestId, accepted: true, streamSubject };
  }

  /** Forward to the engine with streaming on, and relay every token as an InferenceChunk. */
  private async stream(r: Payload<typeof InferenceRequest>): Promise<void> {
    const started = this.clock.now();
    const abort = new AbortController();
    this.engineCalls.set(r.requestId, abort);
    if (this.cancelled.has(r.requestId)) abort.abort();
    this.awaitingFirst.set(r.requestId, { tier: r.tier, sinceMs: started });
    let seq = 0;
    const result = r.resultKey === undefined ? undefined : new ResultCollector();
    try {
      const run = await runEngineCall({
        url: this.opts.engine.url,
        // Ask the engines that count for their usage: prompt tokens as the engine's tokenizer sees them.
        call: engineCall(r, this.model, this.priority, USAGE_ENGINES.has(this.opts.engine.kind)),
        signal: abort.signal,
        clock: this.clock,
        chunk: (p) => {
          result?.add(p);
          this.publish(InferenceChunk, streamParams(r), { requestId: r.requestId, seq: seq++, ...p });
        },
        onFirstToken: () => this.awaitingFirst.delete(r.requestId),
      });
      let outcome = run.outcome;
      // A failure is stored only on the last run: before it, the job is queued again (region agent).
      const final = outcome !== "failed" || (r.attempt ?? 0) >= BATCH_MAX_ATTEMPTS - 1;
      if (result && r.resultKey !== undefined && outcome !== "cancelled" && final) {
        // Stored before the request is reported done: only then is its queued job acknowledged.
        const stored = await this.kvPut(
          BATCH_RESULTS_BUCKET,
          r.resultKey,
          { requestId: r.requestId, outcome, chunks: result.chunks, atMs: this.clock.now() },
          { bucketTtlMs: BATCH_RESULT_TTL_MS },
        );
        if (!stored.ok) {
          this.log.warn({ requestId: r.requestId, error: stored.error.message }, "batch result not stored");
          outcome = "failed";
        }
      }
      this.done(r, outcome, started, run.firstAtMs, run.tokens, run.usage);
    } finally {
      this.awaitingFirst.delete(r.requestId);
      this.engineCalls.delete(r.requestId);
    }
  }

  private done(
    r: Payload<typeof InferenceRequest>,
    outcome: RunOutcome,
    started: number,
    firstAt: number | undefined,
    tokens: number,
    usage: { promptTokens: number } | undefined,
  ): void {
    const end = this.clock.now();
    if (r.tier === "niw") {
      forgetBefore(this.finished, end - FINISHED_MEMORY_MS, (f) => f.atMs);
      this.finished.set(r.requestId, { outcome, atMs: end });
    }
    const first = firstAt ?? end;
    this.publish(
      RequestDone,
      { region: this.opts.region, model: this.model },
      {
        requestId: r.requestId,
        model: this.model,
        tier: r.tier,
        region: this.opts.region,
        instanceId: this.instanceId,
        outcome,
        // The engine's count when it gave one (the router's was an estimate from the text).
        inputTokens: usage?.promptTokens || r.inputTokens,
        outputTokens: tokens,
        arrivalMs: r.arrivalMs,
        ttftMs: Math.max(0, first - r.arrivalMs),
        tbtMs: tokens > 1 ? (end - first) / (tokens - 1) : 0,
        e2eMs: Math.max(0, end - Math.min(started, r.arrivalMs)),
        ...(r.deadlineMs === undefined ? {} : { deadlineMs: r.deadlineMs }),
      },
    );
  }
}

/** Engine kinds whose OpenAI server honours `stream_options.include_usage`. */
const USAGE_ENGINES = new Set<EngineKind>(["vllm", "sglang"]);

/** How long a cancel is remembered for a request that has not arrived yet. */
const CANCEL_MEMORY_MS = 60_000;
/**
 * How long finished batch requests are remembered for RunCheck: a region agent asks within ~30 s of a
 * release, then every 5 minutes while the job runs.
 */
const FINISHED_MEMORY_MS = 15 * 60_000;

type RunOutcome = Payload<typeof RequestDone>["outcome"];

/** Drop the oldest entries of an insertion-ordered map up to the first one at or after `cutoffMs`. */
function forgetBefore<V>(m: Map<string, V>, cutoffMs: number, at: (v: V) => number): void {
  for (const [id, v] of m) {
    if (at(v) >= cutoffMs) break;
    m.delete(id);
  }
}
