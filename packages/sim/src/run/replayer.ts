import { type PayloadIn, RouteRequest } from "@sageserve/protocol";
import { Actor, type ActorContext, ClockEvent, eventPoster, VirtualClock } from "@sageserve/runtime";
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
    const now = this.clock.now();
    const clock = this.clock;
    if (clock instanceof VirtualClock) {
      // One event for the whole batch, re-queued for each arrival: the event queue holds the next
      // arrival only (not a minute of them), in the order queuing them all now would give.
      const chain = new Arrival(this, batch, now, clock.reserveSeq(batch.length), true);
      chain.queue(clock);
      return;
    }
    for (let i = 0; i < batch.length; i++) {
      const one = new Arrival(this, [batch[i]!], now, 0, i === batch.length - 1);
      this.postEvent(this.startMs + batch[i]!.arrivalMs - now, one);
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

  /** Virtual time of a request's arrival, for a batch scheduled at `scheduledAtMs`. */
  arrivalAt(r: SimRequest, scheduledAtMs: number): number {
    return Math.max(scheduledAtMs, Math.ceil(this.startMs + r.arrivalMs));
  }

  private send(r: SimRequest): void {
    this.generated++;
    const req: PayloadIn<typeof RouteRequest> = {
      requestId: `r${r.id}`,
      model: r.model,
      tier: r.tier,
      originRegion: r.region,
      inputTokens: r.inputTokens,
      maxOutputTokens: r.outputTokens,
      arrivalMs: this.startMs + r.arrivalMs,
      stream: false,
    };
    // Set only when there is one (no spread of a temporary object per request).
    if (r.deadlineMs !== undefined) req.deadlineMs = this.startMs + r.deadlineMs;
    this.publish(RouteRequest, { region: r.region, model: r.model }, req);
  }
}

/**
 * The arrivals of one batch: itself the clock's event, re-queued for each request in turn (with the
 * sequence numbers reserved when the batch was scheduled). On a clock without reservations, one per
 * request.
 */
class Arrival extends ClockEvent {
  private i = 0;
  constructor(
    private readonly replayer: TraceReplayer,
    private readonly batch: readonly SimRequest[],
    private readonly scheduledAtMs: number,
    private readonly seqBase: number,
    /** Its last arrival is the batch's last (pulls the next batch). */
    private readonly endsBatch: boolean,
  ) {
    super();
  }

  queue(clock: VirtualClock): void {
    clock.postEventAt(
      this,
      this.replayer.arrivalAt(this.batch[this.i]!, this.scheduledAtMs),
      this.seqBase + this.i,
    );
  }

  fn(): void {
    const i = this.i++;
    const last = this.i === this.batch.length;
    const clock = this.replayer.clock;
    // Queue the next arrival before this one runs: it was queued before anything this one publishes.
    if (!last && clock instanceof VirtualClock) this.queue(clock);
    this.replayer.arrive(this.batch[i]!, last && this.endsBatch);
  }
}
