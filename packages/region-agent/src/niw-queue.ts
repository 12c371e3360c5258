import type { NiwJob, Payload } from "@sageserve/protocol";
import { KeyedHeap } from "@sageserve/runtime";

export type Job = Payload<typeof NiwJob>;

/**
 * Per-model queue of NIW jobs ordered by deadline (earliest first), FIFO among
 * equal deadlines. In the live system the jobs sit in JetStream; this is the
 * region agent's working view of them.
 */
export class NiwQueue {
  private readonly heap = new KeyedHeap<Job>();

  get size(): number {
    return this.heap.size;
  }

  push(job: Job): void {
    this.heap.push(job, job.deadlineMs);
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
    for (const job of this.heap.values()) {
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
    return this.heap.peek();
  }

  pop(): Job | undefined {
    return this.heap.pop();
  }
}
