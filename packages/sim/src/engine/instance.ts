import type { Tier } from "@sageserve/protocol";

/**
 * One serving instance (a model on one 8-GPU VM) with iteration-level continuous
 * batching, modelled analytically: between events every running request gains
 * one token per decode iteration, so the instance keeps a cumulative iteration
 * counter instead of simulating each iteration. Prefills run one admission
 * batch at a time and pause decoding (no chunked prefill, as the reference
 * simulator). KV memory is reserved for prompt + output at admission and freed
 * at completion.
 */
export interface InstanceRequest {
  id: string;
  seq: number;
  tier: Tier;
  arrivalMs: number;
  inputTokens: number;
  outputTokens: number;
  deadlineMs?: number;
  /** Set by the instance. */
  admittedMs?: number;
  firstTokenMs?: number;
}

export interface Completion {
  req: InstanceRequest;
  doneMs: number;
}

export interface InstanceTiming {
  prefillMs(promptTokens: number, batch: number): number;
  decodeIterMs(batchSize: number): number;
}

interface Running {
  req: InstanceRequest;
  finishIter: number;
  kvTokens: number;
}

const TIER_ORDER: Record<Tier, number> = { "iw-fast": 0, "iw-normal": 1, niw: 2 };

export class Instance {
  /** Cumulative decode iterations since creation. */
  private iter = 0;
  private lastMs: number;
  /** Decode is paused until this time while a prefill batch runs. */
  private prefillUntilMs = 0;
  private prefilling: InstanceRequest[] = [];
  private readonly running: Running[] = []; // min-heap on finishIter
  private readonly waiting: InstanceRequest[][] = [[], [], []]; // per tier, FIFO
  private readonly waitHead = [0, 0, 0];
  private iterMsCache = Number.NaN;
  kvReserved = 0;
  /** KV reserved by running NIW requests. */
  niwKv = 0;
  waitingTokens = 0;
  tokensServed = 0;
  readonly tokensByTier: Record<Tier, number> = { "iw-fast": 0, "iw-normal": 0, niw: 0 };

  constructor(
    readonly kvCapacity: number,
    private readonly timing: InstanceTiming,
    nowMs: number,
    readonly maxBatch = 512,
    /**
     * Prompt tokens one prefill batch may carry (vLLM's max_num_batched_tokens); the rest wait for the
     * next batch, in tier order. Infinity = admit everything that fits in KV and the batch at once.
     */
    readonly maxPrefillTokens = Number.POSITIVE_INFINITY,
    /**
     * Most of the KV cache NIW (batch) requests may hold, as a fraction: the rest stays free for
     * interactive arrivals, which otherwise wait for long batch outputs to finish. 1 = no limit.
     */
    readonly niwKvShare = 1,
  ) {
    this.lastMs = nowMs;
  }

  get batchSize(): number {
    return this.running.length;
  }

  get waitingCount(): number {
    return this.waiting.reduce((a, q, i) => a + q.length - this.waitHead[i]!, 0);
  }

  get inFlight(): number {
    return this.running.length + this.prefilling.length + this.waitingCount;
  }

  get kvUtilization(): number {
    return Math.min(1, this.kvReserved / this.kvCapacity);
  }

  /** Too big to ever fit this instance's KV cache. */
  fits(r: InstanceRequest): boolean {
    return r.inputTokens + r.outputTokens <= this.kvCapacity;
  }

  /** Add a request; returns false (and does nothing) if it can never fit. */
  submit(r: InstanceRequest, nowMs: number): boolean {
    if (!this.fits(r)) return false;
    this.advance(nowMs);
    const q = TIER_ORDER[r.tier];
    this.waiting[q]!.push(r);
    this.waitingTokens += r.inputTokens + r.outputTokens;
    this.admit(nowMs);
    return true;
  }

  /**
   * Bring the instance to `nowMs`, collecting requests that finished by then.
   * Callers then ask `nextEventMs()` for when to look again.
   */
  step(nowMs: number, done: Completion[]): void {
    this.advance(nowMs, done);
    this.admit(nowMs);
  }

  /** When something next changes (a prefill ends or a request finishes), or Infinity when idle. */
  nextEventMs(): number {
    if (this.prefilling.length) return this.prefillUntilMs;
    const top = this.running[0];
    if (!top) return Number.POSITIVE_INFINITY;
    return this.lastMs + Math.max(0, top.finishIter - this.iter) * this.iterMs();
  }

  /** Requests not yet admitted, removed (drain, failure): the caller re-routes them. */
  takeWaiting(): InstanceRequest[] {
    const out: InstanceRequest[] = [];
    for (let t = 0; t < 3; t++) {
      out.push(...this.waiting[t]!.slice(this.waitHead[t]!));
      this.waiting[t] = [];
      this.waitHead[t] = 0;
    }
    this.waitingTokens = 0;
    return out;
  }

  /**
   * Every request on the instance — waiting, prefilling and decoding — removed (the VM failed): the
   * caller re-routes them. Their KV reservation is released.
   */
  takeAll(): InstanceRequest[] {
    const out = [...this.prefilling, ...this.running.map((r) => r.req), ...this.takeWaiting()];
    this.prefilling = [];
    this.running.length = 0;
    this.kvReserved = 0;
    this.niwKv = 0;
    return out;
  }

  private iterMs(): number {
    if (Number.isNaN(this.iterMsCache)) this.iterMsCache = this.timing.decodeIterMs(this.running.length);
    return this.iterMsCache;
  }

  private advance(nowMs: number, done?: Completion[]): void {
    // Decode runs outside prefill windows; complete requests in finish order.
    while (nowMs > this.lastMs) {
      if (this.prefilling.length) {
        if (nowMs < this.prefillUntilMs) {
          this.lastMs = nowMs;
          return;
        }
        this.lastMs = this.prefillUntilMs;
        this.joinDecode();
        continue;
      }
      const top = this.running[0];
      if (!top) {
        this.lastMs = nowMs;
        return;
      }
      const iterMs = this.iterMs();
      const finishMs = this.lastMs + Math.max(0, top.finishIter - this.iter) * iterMs;
      if (finishMs > nowMs) {
        this.iter += (nowMs - this.lastMs) / iterMs;
        this.lastMs = nowMs;
        return;
      }
      this.iter = Math.max(this.iter, top.finishIter);
      this.lastMs = finishMs;
      this.finishTop(finishMs, done);
      // Free KV may admit waiting work at this instant.
      this.admit(finishMs);
    }
    if (this.prefilling.length && nowMs >= this.prefillUntilMs) {
      this.lastMs = Math.max(this.lastMs, this.prefillUntilMs);
      this.joinDecode();
    }
    while (!this.prefilling.length && this.running[0] && this.running[0].finishIter <= this.iter + 1e-9) {
      this.finishTop(this.lastMs, done);
    }
  }

  private finishTop(atMs: number, done?: Completion[]): void {
    const r = this.popRunning();
    this.kvReserved -= r.kvTokens;
    if (r.req.tier === "niw") this.niwKv -= r.kvTokens;
    this.tokensServed += r.req.outputTokens + r.req.inputTokens;
    this.tokensByTier[r.req.tier] += r.req.outputTokens + r.req.inputTokens;
    this.iterMsCache = Number.NaN;
    done?.push({ req: r.req, doneMs: atMs });
  }

  /** Admit waiting requests (IW-fast, then IW-normal, then NIW) while KV and batch slots allow; start their prefill. */
  private admit(nowMs: number): void {
    if (this.prefilling.length) return; // one prefill batch at a time
    const batch: InstanceRequest[] = [];
    let promptTokens = 0;
    for (let t = 0; t < 3; t++) {
      const q = this.waiting[t]!;
      while (this.waitHead[t]! < q.length) {
        const r = q[this.waitHead[t]!]!;
        const need = r.inputTokens + r.outputTokens;
        if (this.running.length + batch.length >= this.maxBatch || this.kvReserved + need > this.kvCapacity)
          break;
        if (batch.length > 0 && promptTokens + r.inputTokens > this.maxPrefillTokens) break;
        if (t === 2 && this.niwKv + need > this.niwKvShare * this.kvCapacity) break;
        promptTokens += r.inputTokens;
        this.waitHead[t]!++;
        this.kvReserved += need;
        if (t === 2) this.niwKv += need;
        this.waitingTokens -= need;
        r.admittedMs = nowMs;
        batch.push(r);
      }
      if (this.waitHead[t]! > 1024 && this.waitHead[t]! * 2 > q.length) {
        this.waiting[t] = q.slice(this.waitHead[t]!);
        this.waitHead[t] = 0;
      }
    }
    if (!batch.length) return;
    // A mixed batch costs about what a uniform batch with the same tokens does (prefill is compute-
    // bound, ~linear in tokens): the measured curve at the mean prompt. Costing it at the longest prompt
    // (as before) charged a batch of one 8k and seven 1k prompts like eight 8k prompts.
    let tokens = 0;
    for (const r of batch) tokens += r.inputTokens;
    this.prefilling = batch;
    this.prefillUntilMs = nowMs + this.timing.prefillMs(tokens / batch.length, batch.length);
  }

  private joinDecode(): void {
    const at = this.prefillUntilMs;
    for (const r of this.prefilling) {
      r.firstTokenMs = at;
      // The prefill produced the first token; the rest take one iteration each.
      this.pushRunning({
        req: r,
        finishIter: this.iter + Math.max(0, r.outputTokens - 1),
        kvTokens: r.inputTokens + r.outputTokens,
      });
    }
    this.prefilling = [];
    this.iterMsCache = Number.NaN;
    this.admit(at);
  }

  private pushRunning(x: Running): void {
    const a = this.running;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]!.finishIter <= x.finishIter) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = x;
  }

  private popRunning(): Running {
    const a = this.running;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const r = l + 1;
        const c = r < a.length && a[r]!.finishIter < a[l]!.finishIter ? r : l;
        if (a[c]!.finishIter >= last.finishIter) break;
        a[i] = a[c]!;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}
