import { RouteRequest } from "@sageserve/protocol";
import { Actor, type ActorContext } from "@sageserve/runtime";
import type { SimRequest, Workload } from "../workload/types.js";

/**
 * Plays a workload into the system as the gateway would: each request is
 * published as a RouteRequest at its arrival time. Batches are pulled lazily,
 * so only about a minute of the trace sits in the event queue at once.
 */
export class TraceReplayer extends Actor {
  generated = 0;
  exhausted = false;
  private readonly startMs: number;
  private readonly buffered: SimRequest[][];

  constructor(
    ctx: ActorContext,
    private readonly workload: Workload,
    prefetched: SimRequest[][] = [],
  ) {
    super(ctx, { role: "trace-replayer", id: "trace-replayer" });
    this.startMs = ctx.clock.now();
    this.buffered = prefetched;
  }

  protected setup(): void {
    this.scheduleNext();
  }

  private scheduleNext(): void {
    const batch = this.buffered.shift() ?? this.workload.next();
    if (batch.length === 0) {
      this.exhausted = true;
      return;
    }
    const last = batch.length - 1;
    batch.forEach((r, i) => {
      this.after(this.startMs + r.arrivalMs - this.clock.now(), () => {
        this.send(r);
        if (i === last) this.scheduleNext();
      });
    });
  }

  private send(r: SimRequest): void {
    this.generated++;
    this.publish(
      RouteRequest,
      { region: r.region, model: r.model },
      {
        requestId: `r${r.id}`,
        model: r.model,
        tier: r.tier,
        originRegion: r.region,
        inputTokens: r.inputTokens,
        maxOutputTokens: r.outputTokens,
        arrivalMs: this.startMs + r.arrivalMs,
        ...(r.deadlineMs === undefined ? {} : { deadlineMs: this.startMs + r.deadlineMs }),
        stream: false,
      },
    );
  }
}
