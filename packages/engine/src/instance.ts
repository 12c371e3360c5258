import type { Tier } from "@sageserve/protocol";
import {
  type Completion,
  type InstanceOptions,
  type InstanceRequest,
  resolveInstanceOptions,
} from "./instance-types.js";
import { newSeq, type Seq, TIER_ORDER } from "./seq.js";
import { StepScheduler } from "./step-scheduler.js";

/**
 * One serving instance (a model on one 8-GPU VM), modelled after vLLM V1's scheduler
 * (`vllm/v1/core/sched/scheduler.py` and `kv_cache_manager.py`; docs/simulator.md names the version
 * read) and kept analytic: it creates an event only when the batch composition changes.
 *
 * - **Steps.** Every engine step first gives each decoding request one token, then spends the rest of
 *   the token budget (`maxBatchedTokens`, vLLM's `max_num_batched_tokens`) on prefill chunks: first of
 *   running requests whose prompt is not yet computed (in admission order), then of waiting requests
 *   (chunked prefill). A step with prefill work is one discrete event; a run of pure-decode steps is a
 *   single stretch of a cumulative iteration counter, ended by the first finish or KV run-out.
 * - **Paged KV.** Blocks of `blockSize` tokens are allocated as tokens are computed (prompt chunks, one
 *   token per decode step), not reserved for the whole output at admission.
 * - **Preemption by recompute.** When a step needs blocks that are not free, the running request of
 *   the lowest priority and latest arrival is preempted: its blocks are freed and it goes back to the
 *   head of its waiting queue; when re-admitted it prefills prompt + the tokens it had generated.
 * - **Priority.** `scheduling: "priority"` orders waiting requests by (tier, arrival): iw-fast before
 *   iw-normal before niw. A waiting request that cannot be admitted (no blocks, `maxNumSeqs` reached)
 *   stops admission for the step: nothing behind it overtakes it. As in vLLM, a waiting request never
 *   preempts running ones; preemption happens only for running requests' growth. `fcfs` orders by
 *   arrival alone.
 * - **Step time** (a roofline reading of the measured profiles): a step costs the larger of the decode
 *   iteration of its decoding batch (memory-bound: weights + KV read) and the prefill of all the tokens
 *   it computes (compute-bound: prefill chunk tokens + one per decoding request), where a chunk that
 *   continues a prompt also pays its attention to the context already computed (the measured curve's
 *   excess over linear), so chunking does not make a long prompt cheaper than prefilling it whole.
 *
 * This class is the instance's public face (submit, step, cancel, take, queries); the step loop and
 * scheduling decision are `StepScheduler`'s, the decoding requests' KV accounting `KvLedger`'s.
 */
export class Instance extends StepScheduler {
  private orderSeq = 0;
  /** Completions found while advancing outside `step()` (e.g. on submit); handed out at the next step. */
  private readonly pending: Completion[] = [];

  constructor(o: InstanceOptions) {
    super(resolveInstanceOptions(o));
  }

  /** Requests running (prefilling or decoding). */
  get batchSize(): number {
    return this.running.length;
  }

  /** Some request here has no first token yet (waiting, or prefilling). */
  get hasFirstTokenWaits(): boolean {
    return this.nWaiting > 0 || this.nDecoding < this.running.length;
  }

  get waitingCount(): number {
    return this.nWaiting;
  }

  get inFlight(): number {
    return this.running.length + this.nWaiting;
  }

  /** Share of KV blocks in use (vLLM's `kv_cache_usage_perc`) as of the instance's last step or submit. */
  get kvUtilization(): number {
    return this.numBlocks > 0 ? Math.min(1, this.kvBlocksUsed / this.numBlocks) : 1;
  }

  /** KV blocks in use as of the instance's last step or submit (decoding requests grow between events). */
  get kvBlocksUsed(): number {
    if (Number.isNaN(this.stepEndMs)) {
      if (this.nDecoding > 0) this.syncBlocks();
    } else if (this.unsynced) {
      // Inside a prefill-carrying step: what the plan would have counted had it synced (iter has not
      // moved since), reservation included.
      this.restoreCount();
    }
    return this.usedBlocks;
  }

  /** Could ever complete here: its prompt and output fit the KV cache together. */
  fits(r: InstanceRequest): boolean {
    return this.blocksFor(r.inputTokens + r.outputTokens) <= this.numBlocks;
  }

  /** Add a request; returns false (and does nothing) if it can never fit. */
  submit(r: InstanceRequest, nowMs: number): boolean {
    if (!this.fits(r)) return false;
    this.advance(nowMs, this.pending);
    const s = newSeq(r, this.scheduling === "priority" ? TIER_ORDER[r.tier] : 0, this.orderSeq++);
    r.preemptions = 0;
    this.byId?.set(r.id, s);
    this.waiting[s.prio]!.push(s);
    this.nWaiting++;
    this.waitingTokens += r.inputTokens + r.outputTokens;
    // A new arrival is looked at now unless a prefill step is under way (then at its end).
    if (Number.isNaN(this.stepEndMs)) this.plan(this.lastMs);
    return true;
  }

  /**
   * Bring the instance to `nowMs`, collecting requests that finished by then. Callers then ask
   * `nextEventMs()` for when to look again.
   */
  step(nowMs: number, done: Completion[]): void {
    if (this.pending.length) {
      for (const c of this.pending) done.push(c);
      this.pending.length = 0;
    }
    this.advance(nowMs, done);
  }

  /** When something next changes (a step ends, a request finishes, KV runs out), or Infinity when idle. */
  nextEventMs(): number {
    if (this.pending.length) return this.lastMs;
    if (!Number.isNaN(this.stepEndMs)) return this.stepEndMs;
    if (this.nDecoding === 0) return Number.POSITIVE_INFINITY;
    const ev = Math.min(this.topFinishIter(), this.runOutIter);
    return this.lastMs + Math.max(0, ev - this.iter) * this.iterMs;
  }

  /** Output tokens `id` has produced as of the last event (streaming); undefined when not here. */
  generated(id: string): number | undefined {
    const s = this.find(id);
    if (!s) return undefined;
    return this.genOf(s);
  }

  /** Length of the current engine step (decode iteration or prefill-carrying step), or NaN when idle. */
  currentStepMs(): number {
    if (!Number.isNaN(this.stepEndMs)) return this.stepEndMs - this.lastMs;
    return this.nDecoding > 0 ? this.iterMs : Number.NaN;
  }

  /** Remove a request wherever it is (client went away); its blocks are freed. */
  cancel(id: string, nowMs: number): boolean {
    const s = this.find(id);
    if (!s) return false;
    this.advance(nowMs, this.pending);
    if (s.where === "gone") return false;
    if (s.where === "waiting") {
      this.waiting[s.prio]!.remove(s);
      this.nWaiting--;
      this.waitingTokens -= s.input + s.output;
    } else {
      this.removeRunning(s);
      this.runningTokens -= s.input + s.output;
      if (s.chunk) this.stepSeqs = this.stepSeqs.filter((x) => x !== s);
      s.chunk = 0;
    }
    s.where = "gone";
    this.byId?.delete(id);
    if (Number.isNaN(this.stepEndMs)) this.plan(this.lastMs);
    return true;
  }

  /** Requests not yet running, removed (drain, failure): the caller re-routes them. */
  takeWaiting(): InstanceRequest[] {
    const out: InstanceRequest[] = [];
    for (const q of this.waiting)
      for (const s of q.drain()) {
        s.where = "gone";
        this.byId?.delete(s.req.id);
        out.push(s.req);
      }
    this.nWaiting = 0;
    this.waitingTokens = 0;
    return out;
  }

  /** Every request on the instance removed (the VM failed): the caller re-routes them. */
  takeAll(): InstanceRequest[] {
    const out = this.running.map((s) => s.req);
    for (const s of this.running) {
      s.where = "gone";
      this.byId?.delete(s.req.id);
    }
    this.running.length = 0;
    this.clearKv();
    this.runningTokens = 0;
    this.stepEndMs = Number.NaN;
    this.stepSeqs = [];
    this.pending.length = 0;
    out.push(...this.takeWaiting());
    return out;
  }

  /**
   * How long the oldest request of `tier` still without its first token has been on this instance (ms;
   * since `receivedMs`, else `arrivalMs`), or 0: the wait a prefill-bound engine builds up while its KV
   * cache and sequence slots look idle (LoadReport.iwFastWaitMs / iwNormalWaitMs).
   */
  oldestWaitMs(tier: Tier, nowMs: number): number {
    const since = (s: Seq) => s.req.receivedMs ?? s.req.arrivalMs;
    const waitingFirst = (s: Seq) => s.req.tier === tier && s.req.firstTokenMs === undefined;
    let oldest = Number.POSITIVE_INFINITY;
    for (const s of this.running) if (!s.decoding && waitingFirst(s)) oldest = Math.min(oldest, since(s));
    // FIFO within a queue: the first of the tier that has no token yet is its oldest (preempted requests
    // at the head already have theirs).
    const q = this.waiting[this.scheduling === "priority" ? TIER_ORDER[tier] : 0]!;
    const head = q.find(waitingFirst, 256);
    if (head) oldest = Math.min(oldest, since(head));
    return Number.isFinite(oldest) ? Math.max(0, nowMs - oldest) : 0;
  }

  /** Requests waiting, in the order they would be admitted (tests and diagnostics). */
  waitingIds(): string[] {
    return this.waiting.flatMap((q) => q.toArray().map((s) => s.req.id));
  }

  /** Requests running, in admission order (tests and diagnostics). */
  runningIds(): string[] {
    return this.running.map((s) => s.req.id);
  }

  /** The request `id` if it is here (waiting or running). */
  private find(id: string): Seq | undefined {
    if (this.byId) return this.byId.get(id);
    for (const s of this.running) if (s.req.id === id) return s;
    for (const q of this.waiting) {
      const s = q.find((x) => x.req.id === id, Number.POSITIVE_INFINITY);
      if (s) return s;
    }
    return undefined;
  }
}
