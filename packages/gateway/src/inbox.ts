import { InferenceChunk, type Payload, validatePayload } from "@sageserve/protocol";
import type { Bus, Subscription } from "@sageserve/runtime";

export type Chunk = Payload<typeof InferenceChunk>;

/**
 * One standing subscription for every token stream this gateway relays (`sage.stream.<listener>.*`),
 * dispatched by request id. A subscription made per request is not enough across a NATS supercluster:
 * since nats-server 2.9 gateways forward only subjects the remote cluster has announced interest in,
 * and that announcement travels on a different connection from the request itself, so the first chunks
 * of a request spilled to another region could arrive before the interest did and be dropped — the
 * request then waited out its first-token timeout. The listener's interest is announced once, at start.
 */
export class StreamInbox {
  private readonly handlers = new Map<string, (c: Chunk) => void>();
  private sub: Subscription | undefined;

  constructor(
    private readonly bus: Pick<Bus, "subscribe">,
    /** The `{listener}` token requests name as `streamTo` (the gateway's id). */
    readonly listener: string,
  ) {}

  start(): void {
    this.sub ??= this.bus.subscribe(InferenceChunk.subject.pattern({ listener: this.listener }), (m) => {
      const d = m.data();
      const c = d.ok ? validatePayload(InferenceChunk, d.value) : d;
      if (!c.ok) return;
      this.handlers.get(c.value.requestId)?.(c.value);
    });
  }

  /** Chunks of `requestId` go to `handler` until the returned unsubscribe. */
  listen(requestId: string, handler: (c: Chunk) => void): { unsubscribe(): void } {
    this.handlers.set(requestId, handler);
    return {
      unsubscribe: () => {
        if (this.handlers.get(requestId) === handler) this.handlers.delete(requestId);
      },
    };
  }

  /** Requests with a listener (for tests and leak checks). */
  get listening(): number {
    return this.handlers.size;
  }

  stop(): void {
    this.sub?.unsubscribe();
    this.sub = undefined;
    this.handlers.clear();
  }
}
