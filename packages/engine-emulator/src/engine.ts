import {
  type Completion,
  DEFAULT_MAX_BATCHED_TOKENS,
  Instance,
  type InstanceRequest,
  type InstanceTiming,
  type SchedulingPolicy,
} from "@sageserve/engine";
import type { Tier } from "@sageserve/protocol";

export interface EngineRequest {
  id: string;
  promptTokens: number;
  maxTokens: number;
  /** Scheduling class (from the request's priority); engines without priority treat all alike. */
  tier?: Tier;
  /** Called once per generated token, in order (index 0 is the first token). */
  onToken(index: number): void;
  onDone(reason: "length" | "abort"): void;
}

export interface EngineOptions {
  /** vLLM's `max_num_batched_tokens` (default 8,192). */
  maxBatchedTokens?: number;
  /** vLLM's `block_size` (default 16). */
  blockSize?: number;
  /** vLLM's `--scheduling-policy`: "fcfs" (vLLM's default) or "priority". */
  scheduling?: SchedulingPolicy;
}

interface Active {
  req: EngineRequest;
  ireq: InstanceRequest;
  emitted: number;
  lastTokenMs: number;
}

export interface EngineStats {
  running: number;
  waiting: number;
  kvUsage: number;
  promptTokensTotal: number;
  generationTokensTotal: number;
  requestsFinished: number;
  preemptions: number;
}

/**
 * A real-time inference engine without a GPU: the simulator's engine model (`Instance`: vLLM V1-like
 * steps with chunked prefill, paged KV, preemption by recompute and priority scheduling) driven by the
 * wall clock. One implementation, so the emulator and the simulator cannot disagree about an engine
 * under load; this class only turns the model's token counts into callbacks as time passes.
 */
export class RealtimeEngine {
  private readonly inst: Instance;
  private readonly active = new Map<string, Active>();
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  private readonly done: Completion[] = [];
  promptTokensTotal = 0;
  generationTokensTotal = 0;
  requestsFinished = 0;
  /** Observers for latency metrics (seconds). */
  onFirstToken?: (ttftS: number) => void;
  onInterToken?: (s: number) => void;
  onFinished?: (e2eS: number, promptTokens: number, generated: number) => void;

  constructor(
    timing: InstanceTiming,
    readonly kvCapacityTokens: number,
    readonly maxBatch = 256,
    private readonly now: () => number = () => performance.now(),
    o: EngineOptions = {},
  ) {
    this.inst = new Instance({
      kvCapacityTokens,
      timing,
      nowMs: this.now(),
      maxNumSeqs: maxBatch,
      maxBatchedTokens: Math.max(o.maxBatchedTokens ?? DEFAULT_MAX_BATCHED_TOKENS, maxBatch),
      ...(o.blockSize ? { blockSize: o.blockSize } : {}),
      scheduling: o.scheduling ?? "fcfs",
    });
  }

  get scheduling(): SchedulingPolicy {
    return this.inst.scheduling;
  }

  stats(): EngineStats {
    return {
      running: this.inst.batchSize,
      waiting: this.inst.waitingCount,
      kvUsage: this.inst.kvUtilization,
      promptTokensTotal: this.promptTokensTotal,
      generationTokensTotal: this.generationTokensTotal,
      requestsFinished: this.requestsFinished,
      preemptions: this.inst.preemptions,
    };
  }

  /** Queue a request; false if it could never fit the KV cache. */
  submit(req: EngineRequest): boolean {
    if (this.stopped) return false;
    const now = this.now();
    const ireq: InstanceRequest = {
      id: req.id,
      seq: 0,
      // Without priority scheduling every request is alike; the tier only orders the queue.
      tier: req.tier ?? "iw-normal",
      arrivalMs: now,
      inputTokens: Math.max(1, req.promptTokens),
      outputTokens: Math.max(1, req.maxTokens),
    };
    if (!this.inst.submit(ireq, now)) return false;
    this.active.set(req.id, { req, ireq, emitted: 0, lastTokenMs: now });
    this.tick();
    return true;
  }

  /** Stop generating for a request (client went away): its KV is freed at once. */
  abort(id: string): void {
    const a = this.active.get(id);
    if (!a) return;
    this.active.delete(id);
    this.inst.cancel(id, this.now());
    a.req.onDone("abort");
    this.tick();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.inst.takeAll();
    const all = [...this.active.values()];
    this.active.clear();
    for (const a of all) a.req.onDone("abort");
  }

  /** Bring the model to now, hand out the tokens produced since the last look, and set the next look. */
  private tick(): void {
    if (this.stopped) return;
    const now = this.now();
    this.done.length = 0;
    this.inst.step(now, this.done);
    for (const a of this.active.values()) {
      const g = this.inst.generated(a.req.id);
      if (g !== undefined) this.emitUpTo(a, g, now);
    }
    for (const c of this.done) {
      const a = this.active.get(c.req.id);
      if (!a) continue;
      this.emitUpTo(a, c.req.outputTokens, now);
      this.active.delete(c.req.id);
      this.requestsFinished++;
      this.onFinished?.((now - a.ireq.arrivalMs) / 1000, a.req.promptTokens, a.emitted);
      a.req.onDone("length");
    }
    this.arm(now);
  }

  private emitUpTo(a: Active, generated: number, now: number): void {
    const n = generated - a.emitted;
    if (n <= 0) return;
    if (a.emitted === 0) {
      this.promptTokensTotal += a.req.promptTokens;
      this.onFirstToken?.(((a.ireq.firstTokenMs ?? now) - a.ireq.arrivalMs) / 1000);
    } else {
      const gap = (now - a.lastTokenMs) / 1000 / n;
      for (let i = 0; i < n; i++) this.onInterToken?.(gap);
    }
    a.lastTokenMs = now;
    for (let i = 0; i < n; i++) {
      this.generationTokensTotal++;
      a.req.onToken(a.emitted++);
    }
  }

  /** Wake at the model's next event, and at every decode step while requests stream tokens. */
  private arm(now: number): void {
    let at = this.inst.nextEventMs();
    const step = this.inst.currentStepMs();
    if (Number.isFinite(step) && step > 0) at = Math.min(at, now + step);
    if (!Number.isFinite(at)) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      this.timerAt = Number.POSITIVE_INFINITY;
      return;
    }
    if (this.timer && Math.abs(this.timerAt - at) < 0.5) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.timerAt = Number.POSITIVE_INFINITY;
        this.tick();
      },
      Math.max(0, at - now),
    );
  }
}
