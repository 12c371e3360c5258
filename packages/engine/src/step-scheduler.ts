/**
 * The step loop of an Instance, after vLLM V1's scheduler: time advancing through prefill-carrying
 * steps and decode stretches, the scheduling decision at each (`plan`: room for decodes, prefill chunks
 * of running requests, admissions), preemption by recompute and completion. Separate from the public
 * `Instance` (submit, cancel, queries), which drives it; built on the KV accounting of `KvLedger`, so
 * all of the engine's state stays on one object.
 */

import { Deque } from "./deque.js";
import type {
  Completion,
  InstanceTiming,
  ResolvedInstanceOptions,
  SchedulingPolicy,
} from "./instance-types.js";
import { EPS, KvLedger } from "./kv-ledger.js";
import type { Seq } from "./seq.js";

export abstract class StepScheduler extends KvLedger {
  readonly maxBatch: number;
  readonly maxBatchedTokens: number;
  readonly scheduling: SchedulingPolicy;
  readonly longPrefill: number;
  private readonly timing: InstanceTiming;

  protected lastMs: number;
  /** End of the discrete (prefill-carrying) step under way, or NaN. */
  protected stepEndMs = Number.NaN;
  protected stepSeqs: Seq[] = [];
  /** Decode-only stretch: iteration time and the iteration at which KV blocks run out. */
  protected iterMs = Number.NaN;
  protected runOutIter = Number.POSITIVE_INFINITY;

  /** Running requests in admission order (vLLM's `running` list). */
  protected readonly running: Seq[] = [];
  protected readonly waiting: Deque<Seq>[] = [new Deque(), new Deque(), new Deque()];
  protected nWaiting = 0;
  protected readonly byId: Map<string, Seq> | undefined;
  /**
   * The step `plan` is building, shared by its phases (fields, not an object, so planning allocates
   * nothing): token budget left, prefill tokens scheduled, whether it preempted.
   */
  private planBudget = 0;
  private planPrefillTokens = 0;
  private planPreempted = false;

  /** Prompt + output tokens of the requests waiting (JSQ's outstanding work). */
  waitingTokens = 0;
  /** Prompt + output tokens of the running requests. */
  runningTokens = 0;
  /** Requests preempted (recomputed) so far. */
  preemptions = 0;

  constructor(o: ResolvedInstanceOptions) {
    super(o);
    this.maxBatch = o.maxBatch;
    this.maxBatchedTokens = o.maxBatchedTokens;
    this.scheduling = o.scheduling;
    this.longPrefill = o.longPrefill;
    this.timing = o.timing;
    this.lastMs = o.nowMs;
    this.byId = o.indexIds ? new Map() : undefined;
  }

  protected advance(nowMs: number, done: Completion[]): void {
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

  /** Take a running request off the running list and free its blocks. */
  protected removeRunning(s: Seq): void {
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
  protected plan(nowMs: number): void {
    const bounded = this.boundedPlan();
    const extra = bounded ? 0 : this.syncBlocks();
    this.unsynced = bounded;
    this.planBudget = this.maxBatchedTokens - this.nDecoding;
    this.planPrefillTokens = 0;
    this.planPreempted = false;
    this.makeRoomForDecodes(extra);
    const chunks: Seq[] = [];
    this.scheduleRunningChunks(chunks);
    if (!this.planPreempted) this.admitWaiting(nowMs, chunks);
    // Chunks a preemption emptied drop out of the step (in place: no second array per step).
    let kept = 0;
    for (const s of chunks) if (s.chunk > 0) chunks[kept++] = s;
    chunks.length = kept;
    this.stepSeqs = chunks;
    if (this.planPrefillTokens > 0) this.startPrefillStep(nowMs, this.planPrefillTokens);
    else this.startDecodeStretch(nowMs, this.planPreempted);
  }

  /** Decodes whose next token opens a new block (`extra` of them): preempt until those blocks are free. */
  private makeRoomForDecodes(extra: number): void {
    let open = extra;
    let budget = this.planBudget;
    let preempted = false;
    const bs = this.blockSize;
    while (open > this.numBlocks - this.usedBlocks) {
      const v = this.victim()!;
      if (v.decoding) {
        budget++;
        if ((v.input + this.genOf(v)) % bs === 0) open--;
      }
      this.preempt(v);
      preempted = true;
    }
    if (open > 0) this.reserve();
    this.planBudget = budget;
    if (preempted) this.planPreempted = true;
  }

  /**
   * Prefill chunks of the running requests still prefilling, in admission order, preempting for their
   * blocks (`left`: how many are at or after i).
   */
  private scheduleRunningChunks(chunks: Seq[]): void {
    let budget = this.planBudget;
    let prefillTokens = this.planPrefillTokens;
    let preempted = false;
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
    this.planBudget = budget;
    this.planPrefillTokens = prefillTokens;
    if (preempted) this.planPreempted = true;
  }

  /**
   * Admissions from the waiting queues, head first, while the budget, `maxNumSeqs`, the free blocks and
   * the NIW share allow: a request that does not fit stops admission for the step.
   */
  private admitWaiting(nowMs: number, chunks: Seq[]): void {
    let budget = this.planBudget;
    let prefillTokens = this.planPrefillTokens;
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
    this.planBudget = budget;
    this.planPrefillTokens = prefillTokens;
  }

  /** A step with prefill work: one discrete event, as long as the larger of its decode and its compute. */
  private startPrefillStep(nowMs: number, prefillTokens: number): void {
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
  }

  /** No prefill work: a decode stretch until the next finish or KV run-out, or idle. */
  private startDecodeStretch(nowMs: number, preempted: boolean): void {
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
}
