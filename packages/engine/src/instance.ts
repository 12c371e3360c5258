import type { Tier } from "@sageserve/protocol";

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
 */
export interface InstanceRequest {
  id: string;
  seq: number;
  tier: Tier;
  arrivalMs: number;
  inputTokens: number;
  outputTokens: number;
  deadlineMs?: number | undefined;
  /** When the instance received it (after the router's hold and the hop). */
  receivedMs?: number | undefined;
  /** Set by the instance: first admission (its prefill started). */
  admittedMs?: number | undefined;
  /** Set by the instance. */
  firstTokenMs?: number | undefined;
  /** Set by the instance: times it was preempted (and recomputed). */
  preemptions?: number | undefined;
}

export interface Completion {
  req: InstanceRequest;
  doneMs: number;
}

export interface InstanceTiming {
  prefillMs(promptTokens: number, batch: number): number;
  decodeIterMs(batchSize: number): number;
}

export type SchedulingPolicy = "priority" | "fcfs";

export interface InstanceOptions {
  kvCapacityTokens: number;
  timing: InstanceTiming;
  nowMs: number;
  /** vLLM's `max_num_seqs`: requests running at once (default 512). */
  maxNumSeqs?: number;
  /** vLLM's `max_num_batched_tokens`: tokens one step computes (default 8,192). */
  maxBatchedTokens?: number;
  /** Tokens per KV block (vLLM's `block_size`, default 16). */
  blockSize?: number;
  /**
   * Most prompt tokens one request may prefill in one step (vLLM's `long_prefill_token_threshold`;
   * 0 = no limit, vLLM's default): a long prompt then leaves room in every step for others.
   */
  longPrefillTokenThreshold?: number;
  /** Waiting-queue order (default priority: iw-fast > iw-normal > niw). */
  scheduling?: SchedulingPolicy;
  /**
   * Most of the KV blocks NIW (batch) requests may take at admission, as a fraction: the rest stays free
   * for interactive arrivals. 1 = no limit (vLLM has no such knob; an optional SageServe one).
   */
  niwKvShare?: number;
  /**
   * Keep an index from request id to request (default true) so `cancel` and `generated` are O(1); the
   * simulated fleet, which calls neither, turns it off (a string-keyed map insert and delete per request
   * was ~4 % of a paper-scale run) and the two then search the instance's queues.
   */
  indexIds?: boolean;
  /**
   * Count every decoding request's KV blocks at every scheduling decision instead of only when a bound
   * says the count could matter (the tests compare the two: same steps, same completions).
   */
  alwaysSync?: boolean;
}

export const DEFAULT_BLOCK_SIZE = 16;
export const DEFAULT_MAX_BATCHED_TOKENS = 8_192;
export const DEFAULT_MAX_NUM_SEQS = 512;

const TIER_ORDER: Record<Tier, number> = { "iw-fast": 0, "iw-normal": 1, niw: 2 };
const EPS = 1e-9;
/** A `decAt` sits this many iterations before the exact boundary, so float rounding never skips it. */
const CHECK_MARGIN = 1e-4;

interface Seq {
  req: InstanceRequest;
  /** The request's prompt and output tokens and whether it is NIW, copied here: the hot loops then
   * touch one object per request, not two. */
  input: number;
  output: number;
  niw: boolean;
  /** Waiting queue (tier order under priority scheduling, 0 under fcfs). */
  prio: number;
  /** Arrival order on this instance (ties between equal arrival times). */
  order: number;
  /** Tokens whose KV is computed in the current (re)prefill. */
  computed: number;
  /** Tokens to prefill before the next token: prompt + tokens generated before a preemption. */
  target: number;
  /** Output tokens generated as of `iter0` (decoding) or in total (waiting / prefilling). */
  gen0: number;
  /** Iteration counter when `gen0` was taken (decoding). */
  iter0: number;
  /** Iteration at which the last output token is produced (decoding). */
  finishIter: number;
  blocks: number;
  decoding: boolean;
  /** Decoding: its index in the instance's `dec` / `decAt` arrays (-1 otherwise). */
  decIdx: number;
  /** Decoding and its next token opens a KV block: in `openList`, at `openIdx`. */
  open: boolean;
  openIdx: number;
  /** Holds the block the last `plan` reserved for that token (given back at the next sync). */
  reserved: boolean;
  /** Prefill tokens scheduled in the current step. */
  chunk: number;
  /** Bumped when the request leaves the decode heap, so stale heap entries are skipped. */
  version: number;
  /** Where it is. */
  where: "waiting" | "running" | "gone";
}

class Deque<T> {
  private items: T[] = [];
  private head = 0;
  get length(): number {
    return this.items.length - this.head;
  }
  peek(): T | undefined {
    return this.items[this.head];
  }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const x = this.items[this.head++];
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return x;
  }
  push(x: T): void {
    this.items.push(x);
  }
  unshift(x: T): void {
    if (this.head > 0) this.items[--this.head] = x;
    else this.items.unshift(x);
  }
  remove(x: T): boolean {
    const i = this.items.indexOf(x, this.head);
    if (i < 0) return false;
    this.items.splice(i, 1);
    return true;
  }
  /** The first of the first `limit` items that satisfies `pred`. */
  find(pred: (x: T) => boolean, limit: number): T | undefined {
    const end = Math.min(this.items.length, this.head + limit);
    for (let i = this.head; i < end; i++) if (pred(this.items[i]!)) return this.items[i];
    return undefined;
  }
  drain(): T[] {
    const out = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    return out;
  }
  toArray(): T[] {
    return this.items.slice(this.head);
  }
}

export class Instance {
  readonly kvCapacity: number;
  readonly numBlocks: number;
  readonly blockSize: number;
  readonly maxBatch: number;
  readonly maxBatchedTokens: number;
  readonly scheduling: SchedulingPolicy;
  readonly niwKvShare: number;
  readonly longPrefill: number;
  private readonly timing: InstanceTiming;

  /** Engine steps since creation (fractional inside a run of decode steps). */
  private iter = 0;
  private lastMs: number;
  /** End of the discrete (prefill-carrying) step under way, or NaN. */
  private stepEndMs = Number.NaN;
  private stepSeqs: Seq[] = [];
  /** Decode-only stretch: iteration time and the iteration at which KV blocks run out. */
  private iterMs = Number.NaN;
  private runOutIter = Number.POSITIVE_INFINITY;

  /** Running requests in admission order (vLLM's `running` list). */
  private readonly running: Seq[] = [];
  private readonly heap = new DecodeHeap();
  /** Decoding requests (any order), and for each the iteration before which neither its KV block count
   * nor "its next token opens a block" can change (`syncBlocks` skips it until then; -Infinity: look at
   * it next time). A flat array of numbers, so the skip test reads no request object. */
  private readonly dec: Seq[] = [];
  private decAt = new Float64Array(64);
  private readonly waiting: Deque<Seq>[] = [new Deque(), new Deque(), new Deque()];
  private nWaiting = 0;
  private readonly byId: Map<string, Seq> | undefined;
  /** Decoding requests whose next token opens a KV block (as of the last `syncBlocks`). */
  private readonly openList: Seq[] = [];
  /** Requests holding a block `plan` reserved for their next token. */
  private readonly reservedList: Seq[] = [];
  private orderSeq = 0;
  private usedBlocks = 0;
  private niwBlocks = 0;
  /**
   * The last plan ran on the blocks as of an earlier sync (`boundedPlan`): decoding requests' growth
   * since `syncIter` and the reservation for their next token are not in `usedBlocks` yet.
   */
  private unsynced = false;
  private syncIter = 0;
  /** Most blocks one step's prefill chunks can take: ceil(token budget / block size) + one per request. */
  private readonly maxStepBlocks: number;
  private readonly alwaysSync: boolean;
  /** Completions found while advancing outside `step()` (e.g. on submit); handed out at the next step. */
  private readonly pending: Completion[] = [];

  /** Prompt + output tokens of the requests waiting (JSQ's outstanding work). */
  waitingTokens = 0;
  /** Prompt + output tokens of the running requests. */
  runningTokens = 0;
  /** Requests preempted (recomputed) so far. */
  preemptions = 0;

  constructor(o: InstanceOptions) {
    this.blockSize = o.blockSize ?? DEFAULT_BLOCK_SIZE;
    this.numBlocks = Math.floor(o.kvCapacityTokens / this.blockSize);
    this.kvCapacity = this.numBlocks * this.blockSize;
    this.maxBatch = o.maxNumSeqs ?? DEFAULT_MAX_NUM_SEQS;
    this.maxBatchedTokens = o.maxBatchedTokens ?? DEFAULT_MAX_BATCHED_TOKENS;
    this.scheduling = o.scheduling ?? "priority";
    this.niwKvShare = o.niwKvShare ?? 1;
    this.longPrefill =
      o.longPrefillTokenThreshold && o.longPrefillTokenThreshold > 0
        ? o.longPrefillTokenThreshold
        : Number.POSITIVE_INFINITY;
    this.timing = o.timing;
    this.lastMs = o.nowMs;
    this.byId = o.indexIds === false ? undefined : new Map();
    this.maxStepBlocks = Math.ceil(this.maxBatchedTokens / this.blockSize) + this.maxBatch;
    this.alwaysSync = o.alwaysSync === true;
    if (!(this.blockSize >= 1) || !Number.isInteger(this.blockSize))
      throw new RangeError(`blockSize must be a positive integer, got ${o.blockSize}`);
    if (!(this.maxBatch >= 1)) throw new RangeError(`maxNumSeqs must be ≥ 1, got ${o.maxNumSeqs}`);
    if (!(this.maxBatchedTokens >= this.maxBatch))
      throw new RangeError(
        `maxBatchedTokens (${this.maxBatchedTokens}) must be ≥ maxNumSeqs (${this.maxBatch}): every running request decodes each step`,
      );
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
    const s: Seq = {
      req: r,
      input: r.inputTokens,
      output: r.outputTokens,
      niw: r.tier === "niw",
      prio: this.scheduling === "priority" ? TIER_ORDER[r.tier] : 0,
      order: this.orderSeq++,
      computed: 0,
      target: Math.max(1, r.inputTokens),
      gen0: 0,
      iter0: 0,
      finishIter: 0,
      decIdx: -1,
      open: false,
      openIdx: -1,
      reserved: false,
      blocks: 0,
      decoding: false,
      chunk: 0,
      version: 0,
      where: "waiting",
    };
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
    this.heap.clear();
    this.dec.length = 0;
    this.openList.length = 0;
    this.reservedList.length = 0;
    this.usedBlocks = 0;
    this.niwBlocks = 0;
    this.unsynced = false;
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

  // ------------------------------------------------------------------ internals

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

  private blocksFor(tokens: number): number {
    return Math.ceil(tokens / this.blockSize);
  }

  private genOf(s: Seq): number {
    if (!s.decoding) return s.gen0;
    return Math.min(s.output, s.gen0 + Math.floor(this.iter - s.iter0 + EPS));
  }

  private topFinishIter(): number {
    const h = this.heap;
    while (h.size > 0 && h.topVersion() !== h.top().version) h.pop();
    return h.size > 0 ? h.topKey() : Number.POSITIVE_INFINITY;
  }

  private advance(nowMs: number, done: Completion[]): void {
    for (;;) {
      if (!Number.isNaN(this.stepEndMs)) {
        if (nowMs < this.stepEndMs) {
          // Tokens of a prefill-carrying step appear at its end.
          this.lastMs = Math.max(this.lastMs, nowMs);
          return;
        }
        this.lastMs = this.stepEndMs;
        this.stepEndMs = Number.NaN;
        this.iter += 1;
        this.finishDecodes(done);
        this.finishChunks(done);
        this.plan(this.lastMs);
        continue;
      }
      if (this.nDecoding === 0) {
        this.lastMs = Math.max(this.lastMs, nowMs);
        return;
      }
      const ev = Math.min(this.topFinishIter(), this.runOutIter);
      const evMs = this.lastMs + Math.max(0, ev - this.iter) * this.iterMs;
      if (evMs > nowMs) {
        this.iter += (nowMs - this.lastMs) / this.iterMs;
        this.lastMs = nowMs;
        return;
      }
      this.iter = Math.max(this.iter, ev);
      this.lastMs = evMs;
      this.finishDecodes(done);
      this.plan(this.lastMs);
    }
  }

  /** Decoding requests whose last token came by now. */
  private finishDecodes(done: Completion[]): void {
    for (;;) {
      const top = this.topFinishIter();
      if (top > this.iter + EPS) return;
      const seq = this.heap.pop();
      seq.version++;
      this.removeRunning(seq);
      this.complete(seq, done);
    }
  }

  /** Prefill chunks of the step that just ended: a finished (re)prefill yields the next token. */
  private finishChunks(done: Completion[]): void {
    const seqs = this.stepSeqs;
    this.stepSeqs = [];
    for (const s of seqs) {
      if (s.where !== "running" || s.chunk === 0) continue;
      s.computed += s.chunk;
      s.chunk = 0;
      if (s.computed < s.target) continue;
      s.gen0++;
      if (s.req.firstTokenMs === undefined) s.req.firstTokenMs = this.lastMs;
      if (s.gen0 >= s.output) {
        this.removeRunning(s);
        this.complete(s, done);
        continue;
      }
      s.decoding = true;
      s.iter0 = this.iter;
      s.finishIter = this.iter + (s.output - s.gen0);
      this.addDecoding(s);
      this.heap.push(s.finishIter, s, s.version);
    }
  }

  private complete(s: Seq, done: Completion[]): void {
    s.where = "gone";
    this.byId?.delete(s.req.id);
    this.runningTokens -= s.input + s.output;
    done.push({ req: s.req, doneMs: this.lastMs });
  }

  private get nDecoding(): number {
    return this.dec.length;
  }

  private addDecoding(s: Seq): void {
    const n = this.dec.length;
    if (n === this.decAt.length) {
      const grown = new Float64Array(2 * n);
      grown.set(this.decAt);
      this.decAt = grown;
    }
    this.dec.push(s);
    this.decAt[n] = Number.NEGATIVE_INFINITY;
    s.decIdx = n;
  }

  private removeDecoding(s: Seq): void {
    const i = s.decIdx;
    const moved = swapRemove(this.dec, i);
    if (moved) {
      this.decAt[i] = this.decAt[this.dec.length]!;
      moved.decIdx = i;
    }
    s.decIdx = -1;
  }

  /** Take a running request off the running list and free its blocks. */
  private removeRunning(s: Seq): void {
    const i = this.running.indexOf(s);
    if (i >= 0) this.running.splice(i, 1);
    if (s.decoding) {
      s.gen0 = this.genOf(s);
      s.decoding = false;
      s.version++;
      this.removeDecoding(s);
    }
    if (s.open) this.unopen(s);
    this.usedBlocks -= s.blocks;
    if (s.niw) this.niwBlocks -= s.blocks;
    s.blocks = 0;
    s.reserved = false;
  }

  private unopen(s: Seq): void {
    const moved = swapRemove(this.openList, s.openIdx);
    if (moved) moved.openIdx = s.openIdx;
    s.open = false;
    s.openIdx = -1;
  }

  /** After a plan that skipped the count (`boundedPlan`): the count and reservation it would have made. */
  private restoreCount(): void {
    this.syncBlocks();
    this.reserve();
  }

  /**
   * Blocks held by decoding requests as of now (they grow one token per step); returns how many of
   * them open a new block with their next token (those in `openList`). The blocks the last `plan`
   * reserved for that token are given back first. A request is looked at only from its `decAt` on:
   * until its next token (while that token opens a block) or its next multiple of the block size,
   * nothing about it changes. (A calendar queue of boundaries instead of this scan was measured slower:
   * ~10 of ~76 decoding requests are due per sync on paper-scale, and filing them costs more than
   * skipping the rest.)
   */
  private syncBlocks(): number {
    const bs = this.blockSize;
    const iter = this.iter;
    this.unsynced = false;
    this.syncIter = iter;
    const reserved = this.reservedList;
    if (reserved.length > 0) {
      for (const s of reserved) {
        if (!s.reserved) continue; // left the running list since
        s.reserved = false;
        s.blocks--;
        this.usedBlocks--;
        if (s.niw) this.niwBlocks--;
      }
      reserved.length = 0;
    }
    const dec = this.dec;
    const at = this.decAt;
    for (let i = 0; i < dec.length; i++) {
      if (iter < at[i]!) continue;
      const s = dec[i]!;
      const t = s.input + this.genOf(s);
      const b = Math.ceil(t / bs);
      if (b !== s.blocks) {
        this.usedBlocks += b - s.blocks;
        if (s.niw) this.niwBlocks += b - s.blocks;
        s.blocks = b;
      }
      // genOf reaches n more tokens once iter - iter0 + EPS ≥ n: look again just before the next
      // token (while it opens a block) or before the next multiple of bs.
      const base = s.iter0 - s.input - s.gen0 - CHECK_MARGIN;
      if (t % bs === 0) {
        if (!s.open) {
          s.open = true;
          s.openIdx = this.openList.length;
          this.openList.push(s);
        }
        at[i] = base + t + 1;
      } else {
        if (s.open) this.unopen(s);
        at[i] = base + b * bs;
      }
    }
    return this.openList.length;
  }

  /** A block for the next token of each decoding request whose next token opens one. */
  private reserve(): void {
    for (const s of this.openList) {
      s.blocks++;
      s.reserved = true;
      this.reservedList.push(s);
      this.usedBlocks++;
      if (s.niw) this.niwBlocks++;
    }
  }

  /** Most blocks the decoding requests can have grown by since the last sync (≤ Δiter + 1 tokens each). */
  private growthBound(): number {
    return this.nDecoding * (Math.floor((this.iter - this.syncIter) / this.blockSize) + 2);
  }

  /**
   * Whether a plan can skip the sync (an O(batch) pass, the engine's largest cost at paper-scale): even
   * if every decoding request grew by the most it can have since the last sync, each took a block for
   * its next token and the step's prefill took the most blocks a step can, every block comparison the
   * plan makes (preemption for growth, chunk and admission fit, the NIW share) would come out as with
   * the exact count. Exactness is restored (`syncBlocks` + `reserve`) wherever a count is read.
   */
  private boundedPlan(): boolean {
    if (this.alwaysSync) return false;
    const worst = this.growthBound() + this.nDecoding + this.maxStepBlocks;
    if (this.usedBlocks + worst > this.numBlocks) return false;
    return this.niwKvShare >= 1 || this.niwBlocks + worst <= this.niwKvShare * this.numBlocks;
  }

  /** The running request vLLM preempts first: lowest priority, latest arrival. */
  private victim(): Seq | undefined {
    let v: Seq | undefined;
    for (const s of this.running)
      if (!v || s.prio > v.prio || (s.prio === v.prio && s.order > v.order)) v = s;
    return v;
  }

  private preempt(s: Seq): void {
    this.removeRunning(s);
    this.runningTokens -= s.input + s.output;
    s.chunk = 0;
    s.computed = 0;
    s.target = Math.max(1, s.input + s.gen0);
    s.where = "waiting";
    s.req.preemptions = (s.req.preemptions ?? 0) + 1;
    this.preemptions++;
    this.waiting[s.prio]!.unshift(s);
    this.nWaiting++;
    this.waitingTokens += s.input + s.output;
  }

  private peekWaiting(): Seq | undefined {
    for (const q of this.waiting) {
      const s = q.peek();
      if (s) return s;
    }
    return undefined;
  }

  /**
   * One scheduling decision at `nowMs` (nothing under way): decodes first, then prefill chunks of
   * running requests, then admissions; a step with prefill work becomes a discrete event, a decode-only
   * step the start of a decode stretch.
   */
  private plan(nowMs: number): void {
    const bounded = this.boundedPlan();
    let extra = bounded ? 0 : this.syncBlocks();
    this.unsynced = bounded;
    let budget = this.maxBatchedTokens - this.nDecoding;
    let preempted = false;
    // Decodes whose next token opens a new block: preempt until those blocks are free.
    const bs = this.blockSize;
    while (extra > this.numBlocks - this.usedBlocks) {
      const v = this.victim()!;
      if (v.decoding) {
        budget++;
        if ((v.input + this.genOf(v)) % bs === 0) extra--;
      }
      this.preempt(v);
      preempted = true;
    }
    if (extra > 0) this.reserve();
    const chunks: Seq[] = [];
    let prefillTokens = 0;
    // Running requests still prefilling, in admission order (`left`: how many are at or after i).
    let left = this.running.length - this.nDecoding;
    for (let i = 0; left > 0 && i < this.running.length && budget > 0; i++) {
      const s = this.running[i]!;
      if (s.decoding) continue;
      left--;
      const c = Math.min(s.target - s.computed, budget, this.longPrefill);
      const need = this.blocksFor(s.computed + c) - s.blocks;
      let self = false;
      while (need > this.numBlocks - this.usedBlocks) {
        const v = this.victim()!;
        const at = this.running.indexOf(v);
        if (v.decoding) budget++;
        else if (at > i) left--;
        if (v.chunk) {
          budget += v.chunk;
          prefillTokens -= v.chunk;
        }
        this.preempt(v);
        preempted = true;
        if (v === s) {
          self = true;
          break;
        }
        if (at < i) i--;
      }
      if (self) break;
      s.blocks += need;
      this.usedBlocks += need;
      if (s.niw) this.niwBlocks += need;
      s.chunk = c;
      chunks.push(s);
      prefillTokens += c;
      budget -= c;
    }
    if (!preempted) {
      while (budget > 0 && this.running.length < this.maxBatch) {
        const s = this.peekWaiting();
        if (!s) break;
        const c = Math.min(s.target, budget, this.longPrefill);
        const need = this.blocksFor(c);
        if (need > this.numBlocks - this.usedBlocks) break;
        if (s.niw && this.niwBlocks + need > this.niwKvShare * this.numBlocks) break;
        this.waiting[s.prio]!.shift();
        this.nWaiting--;
        this.waitingTokens -= s.input + s.output;
        this.runningTokens += s.input + s.output;
        s.where = "running";
        s.computed = 0;
        s.blocks = need;
        this.usedBlocks += need;
        if (s.niw) this.niwBlocks += need;
        if (s.req.admittedMs === undefined) s.req.admittedMs = nowMs;
        this.running.push(s);
        s.chunk = c;
        chunks.push(s);
        prefillTokens += c;
        budget -= c;
      }
    }
    // Chunks a preemption emptied drop out of the step (in place: no second array per step).
    let kept = 0;
    for (const s of chunks) if (s.chunk > 0) chunks[kept++] = s;
    chunks.length = kept;
    this.stepSeqs = chunks;
    if (prefillTokens > 0) {
      const decodeMs = this.nDecoding > 0 ? this.timing.decodeIterMs(this.nDecoding) : 0;
      const g = (x: number) => this.timing.prefillMs(x, 1);
      // One pass over every token of the step, plus, for a chunk that continues a prompt, what its
      // attention to the context already computed adds (the curve's excess over linear): a prompt
      // prefilled in k chunks costs what it costs whole, plus the fixed cost of k - 1 more steps.
      let computeMs = g(prefillTokens + this.nDecoding);
      for (const s of this.stepSeqs)
        if (s.computed > 0)
          computeMs += Math.max(0, g(s.computed + s.chunk) - g(s.computed) - g(s.chunk) + g(1));
      this.stepEndMs = nowMs + Math.max(decodeMs, computeMs);
      this.iterMs = Number.NaN;
      this.runOutIter = Number.POSITIVE_INFINITY;
      return;
    }
    this.stepEndMs = Number.NaN;
    if (this.nDecoding === 0) {
      this.iterMs = Number.NaN;
      this.runOutIter = Number.POSITIVE_INFINITY;
      // A step that only preempted leaves the engine empty: the next step (now) admits again.
      if (preempted && this.nWaiting > 0) this.plan(nowMs);
      return;
    }
    this.iterMs = this.timing.decodeIterMs(this.nDecoding);
    this.runOutIter = this.predictRunOut();
    // After a preemption the next step schedules again (and may admit): look one step later.
    if (preempted && this.nWaiting > 0) this.runOutIter = Math.min(this.runOutIter, this.iter + 1);
  }

  /**
   * The iteration at which the decoding requests' growth needs more blocks than are free (before the
   * next finish), or Infinity. The first step's blocks were reserved by `plan`.
   */
  private predictRunOut(): number {
    const kFin = Math.ceil(this.topFinishIter() - this.iter - EPS);
    if (!Number.isFinite(kFin) || kFin <= 1) return Number.POSITIVE_INFINITY;
    const bs = this.blockSize;
    if (this.unsynced) {
      // The exact count is at most the bound's: enough room by the bound is enough room.
      const freeAtLeast = this.numBlocks - this.usedBlocks - this.growthBound() - this.nDecoding;
      if (this.nDecoding * Math.ceil(kFin / bs) <= freeAtLeast) return Number.POSITIVE_INFINITY;
      this.restoreCount();
    }
    // Blocks already held (synced) plus the first step's reservation are in usedBlocks; seq i needs
    // ceil((T_i + k) / bs) blocks at the k-th step from now.
    const free = this.numBlocks - this.usedBlocks;
    if (this.nDecoding * Math.ceil(kFin / bs) <= free) return Number.POSITIVE_INFINITY;
    const tokens: number[] = [];
    let base = 0;
    for (const s of this.dec) {
      const t = s.input + this.genOf(s);
      tokens.push(t);
      base += Math.ceil((t + 1) / bs); // held after step 1
    }
    const over = (k: number): boolean => {
      let n = 0;
      for (const t of tokens) n += Math.ceil((t + k) / bs);
      return n - base > free;
    };
    if (!over(kFin)) return Number.POSITIVE_INFINITY;
    let lo = 1;
    let hi = kFin; // over(hi) holds, over(lo) does not (step 1 was reserved)
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (over(mid)) hi = mid;
      else lo = mid;
    }
    // Step `hi` needs the missing block: decide at its start.
    return this.iter + hi - 1;
  }
}

/**
 * Remove `list[i]` by moving the last element into its place (order is not kept); returns the element
 * moved, or undefined when `i` was the last.
 */
function swapRemove<T>(list: T[], i: number): T | undefined {
  const last = list.pop()!;
  if (i >= list.length) return undefined;
  list[i] = last;
  return last;
}

/**
 * Min-heap of decoding requests by the iteration of their last token, with the request's version when
 * pushed (an entry whose request moved on is stale). Keys and versions sit in flat arrays, so sifting
 * reads no request object; ties break as the object heap this replaced did (same pops, same bytes).
 */
class DecodeHeap {
  private keys = new Float64Array(64);
  private versions = new Float64Array(64);
  private seqs: (Seq | undefined)[] = [];
  size = 0;

  topKey(): number {
    return this.keys[0]!;
  }

  topVersion(): number {
    return this.versions[0]!;
  }

  top(): Seq {
    return this.seqs[0]!;
  }

  push(key: number, seq: Seq, version: number): void {
    if (this.size === this.keys.length) {
      const k = new Float64Array(2 * this.size);
      k.set(this.keys);
      this.keys = k;
      const v = new Float64Array(2 * this.size);
      v.set(this.versions);
      this.versions = v;
    }
    const keys = this.keys;
    let i = this.size++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (keys[p]! <= key) break;
      this.move(i, p);
      i = p;
    }
    this.place(i, key, version, seq);
  }

  private move(to: number, from: number): void {
    this.keys[to] = this.keys[from]!;
    this.versions[to] = this.versions[from]!;
    this.seqs[to] = this.seqs[from];
  }

  private place(i: number, key: number, version: number, seq: Seq | undefined): void {
    this.keys[i] = key;
    this.versions[i] = version;
    this.seqs[i] = seq;
  }

  /** Remove and return the top (the heap is not empty). */
  pop(): Seq {
    const keys = this.keys;
    const top = this.seqs[0]!;
    const n = --this.size;
    if (n > 0) {
      const lk = keys[n]!;
      const lv = this.versions[n]!;
      const ls = this.seqs[n];
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && keys[r]! < keys[l]! ? r : l;
        if (keys[c]! >= lk) break;
        this.move(i, c);
        i = c;
      }
      this.place(i, lk, lv, ls);
    }
    this.seqs[n] = undefined;
    return top;
  }

  clear(): void {
    this.size = 0;
    this.seqs.length = 0;
  }
}
