import type { NiwJob, Payload } from "@sageserve/protocol";

export type Job = Payload<typeof NiwJob>;

/**
 * Per-model queue of NIW jobs ordered by deadline (earliest first), FIFO among
 * equal deadlines. In the live system the jobs sit in JetStream; this is the
 * region agent's working view of them.
 */
export class NiwQueue {
  private readonly heap: { job: Job; seq: number }[] = [];
  private seq = 0;

  get size(): number {
    return this.heap.length;
  }

  push(job: Job): void {
    const a = this.heap;
    const x = { job, seq: this.seq++ };
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(x, a[p]!)) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = x;
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
    for (const { job } of this.heap) {
      const due = (job.deadlineMs - nowMs) / 60_000;
      for (const b of out) {
        if (due > b.withinMinutes) continue;
        b.jobs++;
        b.tokens += job.inputTokens + job.maxOutputTokens;
      }
    }
    return out;
  }

  peek(): Job | undefined {
    return this.heap[0]?.job;
  }

  pop(): Job | undefined {
    const a = this.heap;
    const top = a[0];
    const last = a.pop();
    if (a.length && last) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const r = l + 1;
        const c = r < a.length && before(a[r]!, a[l]!) ? r : l;
        if (!before(a[c]!, last)) break;
        a[i] = a[c]!;
        i = c;
      }
      a[i] = last;
    }
    return top?.job;
  }
}

function before(x: { job: Job; seq: number }, y: { job: Job; seq: number }): boolean {
  return x.job.deadlineMs < y.job.deadlineMs || (x.job.deadlineMs === y.job.deadlineMs && x.seq < y.seq);
}
