import type { BatchLineResult } from "@sageserve/protocol";
import type { StreamInbox } from "./inbox.js";

/**
 * Where the node stores the result of a `/v1/sage/jobs` batch job (KV `sage-batch-out`, like a Batch
 * API request's): derived from the request id, so any gateway finds it.
 */
export const jobResultKey = (requestId: string): string => `batch_job-${requestId.replace(/^r-/, "")}.0`;

export interface BatchJob {
  id: string;
  model: string;
  status: "queued" | "running" | "completed" | "failed";
  created: number;
  output: string;
  finish: string | undefined;
  unsubscribe?: () => void;
}

/** Where job views are kept for every gateway (KV `sage-jobs`). */
export interface JobStore {
  put(id: string, view: object): void;
  get(id: string): Promise<object | undefined>;
  /** The result the node stored for the job's request (`jobResultKey`), if any. */
  result(requestId: string): Promise<BatchLineResult | undefined>;
}

/**
 * Batch jobs this gateway queued (`/v1/sage/jobs/{id}`), oldest forgotten first. A job's output
 * arrives on its request's stream subject when the region agent releases it to an instance. Each
 * change of status is also written to the shared store, so any gateway (or this one restarted)
 * answers for the job; a job whose gateway stops while it runs keeps its last stored status.
 */
export class BatchJobs {
  private readonly jobs = new Map<string, BatchJob>();

  constructor(
    private readonly inbox: Pick<StreamInbox, "listen">,
    private readonly maxJobs: number,
    private readonly store: JobStore,
  ) {}

  get(id: string): BatchJob | undefined {
    return this.jobs.get(id);
  }

  /**
   * The job's view: this gateway's own, else the shared store's (another gateway's job). A job not yet
   * finished is read from the result its node stored: the gateway that queued it may have stopped
   * before the output reached it, and the output's last chunk can be lost on its way (core NATS is at
   * most once: a chunk inside a server of a cluster that dies is gone), which left the job "running" here
   * for good although its node had finished it.
   */
  async view(id: string): Promise<object | undefined> {
    const j = this.jobs.get(id);
    if (j && (j.status === "completed" || j.status === "failed")) return BatchJobs.view(j);
    const stored = j
      ? undefined
      : ((await this.store.get(id)) as { status?: string; model?: string; created?: number } | undefined);
    if (!j && (!stored || stored.status === "completed" || stored.status === "failed")) return stored;
    const r = await this.store.result(id.replace(/^j-/, ""));
    if (!r) return j ? BatchJobs.view(j) : stored;
    const failed = r.outcome !== "ok";
    const finish = [...r.chunks].reverse().find((c) => c.finishReason)?.finishReason;
    const err = r.chunks.find((c) => c.error)?.error;
    const done: BatchJob = {
      id,
      model: j?.model ?? stored?.model ?? "",
      created: j?.created ?? stored?.created ?? 0,
      status: failed ? "failed" : "completed",
      output: failed ? (err?.message ?? "the request failed") : r.chunks.map((c) => c.text ?? "").join(""),
      finish: failed ? "error" : (finish ?? "stop"),
    };
    if (j) {
      // Ours: settle it (its output will not come now) and tell the other gateways.
      j.unsubscribe?.();
      Object.assign(j, done, { unsubscribe: undefined });
      this.store.put(id, BatchJobs.view(j));
    }
    return BatchJobs.view(done);
  }

  track(id: string, requestId: string, model: string, createdS: number): void {
    const job: BatchJob = { id, model, status: "queued", created: createdS, output: "", finish: undefined };
    this.jobs.set(id, job);
    this.store.put(id, BatchJobs.view(job));
    while (this.jobs.size > this.maxJobs) {
      const oldest = this.jobs.keys().next().value!;
      this.jobs.get(oldest)?.unsubscribe?.();
      this.jobs.delete(oldest);
    }
    const sub = this.inbox.listen(requestId, (c) => {
      if (c.done) {
        job.status = c.error ? "failed" : "completed";
        job.finish = c.error ? "error" : (c.finishReason ?? "stop");
        if (c.error) job.output = c.error.message;
        this.store.put(id, BatchJobs.view(job));
        sub.unsubscribe();
        return;
      }
      if (job.status !== "running") {
        job.status = "running";
        this.store.put(id, BatchJobs.view(job));
      }
      job.output += c.text ?? "";
    });
    job.unsubscribe = () => sub.unsubscribe();
  }

  /** The job as `GET /v1/sage/jobs/{id}` shows it. */
  static view(j: BatchJob): object {
    return {
      id: j.id,
      object: "sage.batch_job",
      status: j.status,
      model: j.model,
      created: j.created,
      ...(j.status === "completed" || j.status === "failed"
        ? { output: j.output, finish_reason: j.finish }
        : {}),
    };
  }
}
