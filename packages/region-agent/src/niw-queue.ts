import type { NiwJob, Payload } from "@sageserve/protocol";

export type Job = Payload<typeof NiwJob>;

/** Width of a deadline bin: one minute. */
const BIN_MS = 60_000;

/** The jobs whose deadlines fall in one minute, by (deadline, arrival order); `head` is the next to leave. */
interface Bin {
  key: number;
  jobs: Job[];
  head: number;
  /** Jobs still queued in the bin and their prompt + output tokens. */
  count: number;
  tokens: number;
}

/**
 * Per-model queue of NIW jobs ordered by deadline (earliest first), FIFO among equal deadlines. In the
 * live system the jobs sit in JetStream; this is the region agent's working view of them.
 *
 * The jobs are kept in one-minute deadline bins (a calendar queue), each with its count and tokens, so
 * the backlog by deadline bucket that every status report carries costs one step per bin plus the jobs of
 * the bins a bucket bound cuts through — not one step per queued job (a paper-scale day holds millions).
 */
export class NiwQueue {
  private readonly bins = new Map<number, Bin>();
  /** Bin keys in ascending order; `first` indexes the earliest bin still holding jobs. */
  private keys: number[] = [];
  private first = 0;
  private n = 0;

  get size(): number {
    return this.n;
  }

  push(job: Job): void {
    const key = Math.floor(job.deadlineMs / BIN_MS);
    let bin = this.bins.get(key);
    if (!bin) {
      bin = { key, jobs: [], head: 0, count: 0, tokens: 0 };
      this.bins.set(key, bin);
      this.insertKey(key);
    }
    const a = bin.jobs;
    // After every job with the same or an earlier deadline (FIFO among equals); usually the end.
    let i = a.length;
    if (i > bin.head && a[i - 1]!.deadlineMs > job.deadlineMs) {
      let lo = bin.head;
      let hi = i;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (a[mid]!.deadlineMs <= job.deadlineMs) lo = mid + 1;
        else hi = mid;
      }
      i = lo;
    }
    a.splice(i, 0, job);
    bin.count++;
    bin.tokens += job.inputTokens + job.maxOutputTokens;
    this.n++;
  }

  /**
   * The queue by deadline: for each bound (minutes from now, ascending) the jobs due within it and their
   * prompt + output tokens, cumulative (the last bound should cover every deadline).
   */
  backlog(
    nowMs: number,
    boundsMinutes: readonly number[],
  ): { withinMinutes: number; jobs: number; tokens: number }[] {
    const out = boundsMinutes.map((withinMinutes) => ({ withinMinutes, jobs: 0, tokens: 0 }));
    for (let k = this.first; k < this.keys.length; k++) {
      const bin = this.bins.get(this.keys[k]!)!;
      // Every deadline d in the bin has lo ≤ d < hi; (d − now) / 60 000 is monotone in d, so a bound at or
      // above the bin's end counts the whole bin, one below its start none of it, and one inside it is
      // decided job by job with the same expression.
      const dueLo = (bin.key * BIN_MS - nowMs) / 60_000;
      const dueHi = ((bin.key + 1) * BIN_MS - nowMs) / 60_000;
      for (const b of out) {
        if (dueLo > b.withinMinutes) continue;
        if (dueHi <= b.withinMinutes) {
          b.jobs += bin.count;
          b.tokens += bin.tokens;
          continue;
        }
        for (let i = bin.head; i < bin.jobs.length; i++) {
          const job = bin.jobs[i]!;
          if ((job.deadlineMs - nowMs) / 60_000 > b.withinMinutes) break;
          b.jobs++;
          b.tokens += job.inputTokens + job.maxOutputTokens;
        }
      }
    }
    return out;
  }

  peek(): Job | undefined {
    const bin = this.firstBin();
    return bin?.jobs[bin.head];
  }

  pop(): Job | undefined {
    const bin = this.firstBin();
    if (!bin) return undefined;
    const job = bin.jobs[bin.head]!;
    bin.jobs[bin.head++] = undefined as unknown as Job; // let it be collected
    bin.count--;
    bin.tokens -= job.inputTokens + job.maxOutputTokens;
    this.n--;
    if (bin.count === 0) {
      this.bins.delete(bin.key);
      this.first++;
      // Drop the consumed keys now and then (not on every pop: that would be a shift per bin).
      if (this.first > 64 && this.first * 2 > this.keys.length) {
        this.keys = this.keys.slice(this.first);
        this.first = 0;
      }
    }
    return job;
  }

  private firstBin(): Bin | undefined {
    return this.first < this.keys.length ? this.bins.get(this.keys[this.first]!) : undefined;
  }

  /** Add a new bin's key in order (usually the last: deadlines mostly arrive in order). */
  private insertKey(key: number): void {
    const keys = this.keys;
    let i = keys.length;
    if (i > this.first && keys[i - 1]! > key) {
      let lo = this.first;
      let hi = i;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (keys[mid]! < key) lo = mid + 1;
        else hi = mid;
      }
      i = lo;
    }
    keys.splice(i, 0, key);
  }
}
