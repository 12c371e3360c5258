import { RouteRequest } from "@sageserve/protocol";
import { Actor, type ActorContext, ClockEvent, eventPoster } from "@sageserve/runtime";
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
  private readonly postEvent = eventPoster(this.clock);

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
    const now = this.clock.now();
    for (let i = 0; i <= last; i++) {
      const r = batch[i]!;
      this.postEvent(this.startMs + r.arrivalMs - now, new Arrival(this, r, i === last));
    }
  }

  /** One arrival: sends its request; the batch's last one pulls the next batch. */
  arrive(r: SimRequest, last: boolean): void {
    if (!this.isRunning) return;
    this.send(r);
    // A trace error in a later batch (a malformed or out-of-order line) propagates: the run fails
    // with it, naming the line, instead of stopping the arrivals silently.
    if (last) this.scheduleNext();
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

/** A scheduled arrival: itself the clock's event (one object per request, no closure or timer handle). */
class Arrival extends ClockEvent {
  constructor(
    private readonly replayer: TraceReplayer,
    private readonly r: SimRequest,
    private readonly last: boolean,
  ) {
    super();
  }
  fn(): void {
    this.replayer.arrive(this.r, this.last);
  }
}
