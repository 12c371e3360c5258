import { InferenceChunk, validatePayload } from "@sageserve/protocol";
import type { Bus } from "@sageserve/runtime";

export interface BatchJob {
  id: string;
  model: string;
  status: "queued" | "running" | "completed" | "failed";
  created: number;
  output: string;
  finish: string | undefined;
  unsubscribe?: () => void;
}

/**
 * Batch jobs this gateway queued (`/v1/sage/jobs/{id}`), oldest forgotten first. A job's output
 * arrives on its request's stream subject when the region agent releases it to an instance.
 */
export class BatchJobs {
  private readonly jobs = new Map<string, BatchJob>();

  constructor(
    private readonly bus: Pick<Bus, "subscribe">,
    private readonly maxJobs: number,
  ) {}

  get(id: string): BatchJob | undefined {
    return this.jobs.get(id);
  }

  track(id: string, requestId: string, model: string, createdS: number): void {
    const job: BatchJob = { id, model, status: "queued", created: createdS, output: "", finish: undefined };
    this.jobs.set(id, job);
    while (this.jobs.size > this.maxJobs) {
      const oldest = this.jobs.keys().next().value!;
      this.jobs.get(oldest)?.unsubscribe?.();
      this.jobs.delete(oldest);
    }
    const sub = this.bus.subscribe(InferenceChunk.subject.build({ request: requestId }), (m) => {
      const d = m.data();
      const c = d.ok ? validatePayload(InferenceChunk, d.value) : d;
      if (!c.ok) return;
      if (c.value.done) {
        job.status = c.value.error ? "failed" : "completed";
        job.finish = c.value.error ? "error" : (c.value.finishReason ?? "stop");
        if (c.value.error) job.output = c.value.error.message;
        sub.unsubscribe();
        return;
      }
      job.status = "running";
      job.output += c.value.text ?? "";
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
