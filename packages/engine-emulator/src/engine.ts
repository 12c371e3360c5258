/**
 * A real-time inference engine without a GPU: iteration-level continuous
 * batching on the wall clock, timed by the measured performance model. Each
 * iteration either prefills the newly admitted requests (pausing decode, as
 * vLLM without chunked prefill) or gives every running request one token.
 * KV-cache memory is reserved for prompt + max tokens at admission.
 */
import type { Tier } from "@sageserve/protocol";

/** Prompt tokens per prefill batch, as the simulator (`DEFAULT_MAX_PREFILL_TOKENS`) and vLLM's default. */
export const MAX_PREFILL_TOKENS = 8_192;

export interface EngineTiming {
  prefillMs(promptTokens: number, batch: number): number;
  decodeIterMs(batch: number): number;
}

export interface EngineRequest {
  id: string;
  promptTokens: number;
  maxTokens: number;
  /** Scheduling class the server gives the request (openai.ts `priorityTier`, from its `priority`). */
  tier?: Tier;
  /** Called once per generated token, in order (index 0 is the first token). */
  onToken(index: number): void;
  onDone(reason: "length" | "abort"): void;
}

interface Active {
  req: EngineRequest;
  generated: number;
  kv: number;
  arrivedMs: number;
  firstTokenMs?: number;
}

export interface EngineStats {
  running: number;
  waiting: number;
  kvUsage: number;
  promptTokensTotal: number;
  generationTokensTotal: number;
  requestsFinished: number;
}

export class RealtimeEngine {
  private readonly waiting: Active[] = [];
  private readonly running: Active[] = [];
  private kvUsed = 0;
  private stopped = false;
  private wake: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  promptTokensTotal = 0;
  generationTokensTotal = 0;
  requestsFinished = 0;
  /** Observers for latency metrics (seconds). */
  onFirstToken?: (ttftS: number) => void;
  onInterToken?: (s: number) => void;
  onFinished?: (e2eS: number, promptTokens: number, generated: number) => void;

  constructor(
    private readonly timing: EngineTiming,
    readonly kvCapacityTokens: number,
    readonly maxBatch = 256,
    private readonly now: () => number = () => performance.now(),
  ) {
    void this.loop();
  }

  stats(): EngineStats {
    return {
      running: this.running.length,
      waiting: this.waiting.length,
      kvUsage: Math.min(1, this.kvUsed / this.kvCapacityTokens),
      promptTokensTotal: this.promptTokensTotal,
      generationTokensTotal: this.generationTokensTotal,
      requestsFinished: this.requestsFinished,
    };
  }

  /** Queue a request; false if it could never fit the KV cache. */
  submit(req: EngineRequest): boolean {
    if (this.stopped || req.promptTokens + req.maxTokens > this.kvCapacityTokens) return false;
    this.waiting.push({ req, generated: 0, kv: req.promptTokens + req.maxTokens, arrivedMs: this.now() });
    this.wake?.();
    return true;
  }

  /** Stop generating for a request (client went away): its KV is freed at once. */
  abort(id: string): void {
    for (const list of [this.waiting, this.running]) {
      const i = list.findIndex((a) => a.req.id === id);
      if (i < 0) continue;
      const [a] = list.splice(i, 1);
      if (list === this.running) this.kvUsed -= a!.kv;
      a!.req.onDone("abort");
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    for (const a of [...this.waiting, ...this.running]) a.req.onDone("abort");
    this.waiting.length = 0;
    this.running.length = 0;
    this.kvUsed = 0;
    this.wake?.();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => {
      this.timer = setTimeout(r, Math.max(0, ms));
    });
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const batch = this.admit();
      if (batch.length) {
        // A mixed batch costs what a uniform one with the same tokens does (the measured curve at the mean prompt).
        const mean = batch.reduce((t, a) => t + a.req.promptTokens, 0) / batch.length;
        await this.sleep(this.timing.prefillMs(mean, batch.length));
        if (this.stopped) return;
        for (const a of batch) {
          if (!this.running.includes(a)) continue; // aborted while prefilling
          this.promptTokensTotal += a.req.promptTokens;
          this.emit(a);
        }
        continue;
      }
      if (this.running.length) {
        const t0 = this.now();
        await this.sleep(this.timing.decodeIterMs(this.running.length));
        if (this.stopped) return;
        const dt = (this.now() - t0) / 1000;
        for (const a of [...this.running]) {
          this.onInterToken?.(dt);
          this.emit(a);
        }
        continue;
      }
      await new Promise<void>((r) => {
        this.wake = r;
      });
      this.wake = undefined;
    }
  }

  private admit(): Active[] {
    const batch: Active[] = [];
    let prompt = 0;
    while (
      this.waiting.length &&
      this.running.length < this.maxBatch &&
      this.kvUsed + this.waiting[0]!.kv <= this.kvCapacityTokens &&
      // vLLM's max_num_batched_tokens: at most this many prompt tokens per prefill (a longer one goes alone).
      (batch.length === 0 || prompt + this.waiting[0]!.req.promptTokens <= MAX_PREFILL_TOKENS)
    ) {
      const a = this.waiting.shift()!;
      prompt += a.req.promptTokens;
      this.kvUsed += a.kv;
      this.running.push(a);
      batch.push(a);
    }
    return batch;
  }

  private emit(a: Active): void {
    const index = a.generated++;
    this.generationTokensTotal++;
    if (index === 0) {
      a.firstTokenMs = this.now();
      this.onFirstToken?.((a.firstTokenMs - a.arrivedMs) / 1000);
    }
    a.req.onToken(index);
    if (a.generated >= a.req.maxTokens) {
      this.running.splice(this.running.indexOf(a), 1);
      this.kvUsed -= a.kv;
      this.requestsFinished++;
      this.onFinished?.((this.now() - a.arrivedMs) / 1000, a.req.promptTokens, a.generated);
      a.req.onDone("length");
    }
  }
}
