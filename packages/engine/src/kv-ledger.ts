/**
 * The decoding half of an Instance's state and its paged KV accounting: the iteration counter, the
 * decoding requests (flat arrays and the finish heap), the KV blocks every running request holds, the
 * bounded check that lets a scheduling decision skip the exact count, and the prediction of when the
 * decoding requests' growth runs out of blocks. A base class rather than a helper object so that every
 * field stays on the Instance itself (one object, no extra hop in the hot loops); the step scheduler
 * (`StepScheduler`) and the public `Instance` build on it.
 */
import { DecodeHeap } from "./decode-heap.js";
import type { ResolvedInstanceOptions } from "./instance-types.js";
import type { Seq } from "./seq.js";

/** Tolerance of the fractional iteration counter when counting whole tokens. */
export const EPS = 1e-9;
/** A `decAt` sits this many iterations before the exact boundary, so float rounding never skips it. */
const CHECK_MARGIN = 1e-4;

export abstract class KvLedger {
  readonly kvCapacity: number;
  readonly numBlocks: number;
  readonly blockSize: number;
  readonly niwKvShare: number;

  /** Engine steps since creation (fractional inside a run of decode steps). */
  protected iter = 0;
  protected readonly heap = new DecodeHeap();
  /** Decoding requests (any order), and for each the iteration before which neither its KV block count
   * nor "its next token opens a block" can change (`syncBlocks` skips it until then; -Infinity: look at
   * it next time). A flat array of numbers, so the skip test reads no request object. */
  private readonly dec: Seq[] = [];
  private decAt = new Float64Array(64);
  /** Decoding requests whose next token opens a KV block (as of the last `syncBlocks`). */
  private readonly openList: Seq[] = [];
  /** Requests holding a block `plan` reserved for their next token. */
  private readonly reservedList: Seq[] = [];
  protected usedBlocks = 0;
  protected niwBlocks = 0;
  /**
   * The last plan ran on the blocks as of an earlier sync (`boundedPlan`): decoding requests' growth
   * since `syncIter` and the reservation for their next token are not in `usedBlocks` yet.
   */
  protected unsynced = false;
  private syncIter = 0;
  /** Most blocks one step's prefill chunks can take: ceil(token budget / block size) + one per request. */
  private readonly maxStepBlocks: number;
  private readonly alwaysSync: boolean;

  constructor(o: ResolvedInstanceOptions) {
    this.blockSize = o.blockSize;
    this.numBlocks = o.numBlocks;
    this.kvCapacity = o.kvCapacity;
    this.niwKvShare = o.niwKvShare;
    this.maxStepBlocks = Math.ceil(o.maxBatchedTokens / o.blockSize) + o.maxBatch;
    this.alwaysSync = o.alwaysSync;
  }

  protected blocksFor(tokens: number): number {
    return Math.ceil(tokens / this.blockSize);
  }

  protected genOf(s: Seq): number {
    if (!s.decoding) return s.gen0;
    return Math.min(s.output, s.gen0 + Math.floor(this.iter - s.iter0 + EPS));
  }

  protected topFinishIter(): number {
    const h = this.heap;
    while (h.size > 0 && h.topVersion() !== h.top().version) h.pop();
    return h.size > 0 ? h.topKey() : Number.POSITIVE_INFINITY;
  }

  protected get nDecoding(): number {
    return this.dec.length;
  }

  protected addDecoding(s: Seq): void {
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

  protected removeDecoding(s: Seq): void {
    const i = s.decIdx;
    const moved = swapRemove(this.dec, i);
    if (moved) {
      this.decAt[i] = this.decAt[this.dec.length]!;
      moved.decIdx = i;
    }
    s.decIdx = -1;
  }

  protected unopen(s: Seq): void {
    const moved = swapRemove(this.openList, s.openIdx);
    if (moved) moved.openIdx = s.openIdx;
    s.open = false;
    s.openIdx = -1;
  }

  /** After a plan that skipped the count (`boundedPlan`): the count and reservation it would have made. */
  protected restoreCount(): void {
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
  protected syncBlocks(): number {
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
  protected reserve(): void {
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
  protected boundedPlan(): boolean {
    if (this.alwaysSync) return false;
    const worst = this.growthBound() + this.nDecoding + this.maxStepBlocks;
    if (this.usedBlocks + worst > this.numBlocks) return false;
    return this.niwKvShare >= 1 || this.niwBlocks + worst <= this.niwKvShare * this.numBlocks;
  }

  /** Forget every decoding request and every block held (the instance was emptied). */
  protected clearKv(): void {
    this.heap.clear();
    this.dec.length = 0;
    this.openList.length = 0;
    this.reservedList.length = 0;
    this.usedBlocks = 0;
    this.niwBlocks = 0;
    this.unsynced = false;
  }

  /**
   * The iteration at which the decoding requests' growth needs more blocks than are free (before the
   * next finish), or Infinity. The first step's blocks were reserved by `plan`.
   */
  protected predictRunOut(): number {
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
