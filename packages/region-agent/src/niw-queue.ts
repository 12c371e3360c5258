import type { NiwJob, Payload } from "@sageserve/protocol";

export type Job = Payload<typeof NiwJob>;

/** Width of a deadline bin: one minute. */
const BIN_MS = 60_000;

/** The jobs whose deadlines fall in one minute, by (deadline, arrival order); `head` is the next to leave. */
interface Bin {
  key: number;
  jobs: Job[];
  head: number;
  /** Prompt + output tokens of the jobs still queued in the bin (`jobs.length − head` of them). */
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
  /** Bins in ascending key order; `first` indexes the earliest bin still holding jobs. */
  private bins: Bin[] = [];
  private first = 0;
  private n = 0;

  get size(): number {
    return this.n;
  }

  push(job: Job): void {
    const key = Math.floor(job.deadlineMs / BIN_MS);
    const bin = this.binFor(key);
    const a = bin.jobs;
    // After every job with the same or an earlier deadline (FIFO among equals); usually the end.
    const end = a.length;
    if (end === bin.head || a[end - 1]!.deadlineMs <= job.deadlineMs) {
      a.push(job);
    } else {
      let lo = bin.head;
      let hi = end;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (a[mid]!.deadlineMs <= job.deadlineMs) lo = mid + 1;
        else hi = mid;
      }
      a.splice(lo, 0, job);
    }
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
    for (let k = this.first; k < this.bins.length; k++) {
      const bin = this.bins[k]!;
      // Every deadline d in the bin has lo ≤ d < hi; (d − now) / 60 000 is monotone in d, so a bound at or
      // above the bin's end counts the whole bin, one below its start none of it, and one inside it is
      // decided job by job with the same expression.
      const dueLo = (bin.key * BIN_MS - nowMs) / 60_000;
      const dueHi = ((bin.key + 1) * BIN_MS - nowMs) / 60_000;
      for (const b of out) {
        if (dueLo > b.withinMinutes) continue;
        if (dueHi <= b.withinMinutes) {
          b.jobs += bin.jobs.length - bin.head;
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
    const bin = this.bins[this.first];
    return bin?.jobs[bin.head];
  }

  pop(): Job | undefined {
    const bin = this.bins[this.first];
    if (!bin) return undefined;
    const job = bin.jobs[bin.head]!;
    bin.jobs[bin.head++] = undefined as unknown as Job; // let it be collected
    bin.tokens -= job.inputTokens + job.maxOutputTokens;
    this.n--;
    if (bin.head === bin.jobs.length) {
      this.first++;
      // Drop the emptied bins now and then (not on every pop: that would be a shift per bin).
      if (this.first > 64 && this.first * 2 > this.bins.length) {
        this.bins = this.bins.slice(this.first);
        this.first = 0;
      }
    }
    return job;
  }

  /** The bin for a key, made and put in order if new (usually the last: deadlines mostly arrive in order). */
  private binFor(key: number): Bin {
    const bins = this.bins;
    const end = bins.length;
    const last = end > this.first ? bins[end - 1]! : undefined;
    if (last && last.key === key) return last;
    let i = end;
    if (last && last.key > key) {
      let lo = this.first;
      let hi = end;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (bins[mid]!.key < key) lo = mid + 1;
        else hi = mid;
      }
      if (lo < end && bins[lo]!.key === key) return bins[lo]!;
      i = lo;
    }
    const bin: Bin = { key, jobs: [], head: 0, tokens: 0 };
    if (i === end) bins.push(bin);
    else bins.splice(i, 0, bin);
    return bin;
  }
}
