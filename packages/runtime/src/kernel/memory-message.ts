/**
 * One message on the in-memory bus: what its receivers read and, until delivery, the virtual clock's
 * event itself, one object per publish. Its own module because both the broker (a reply it routes) and
 * each connection (a publish) create it.
 */
import { decode, type Result } from "@sageserve/protocol";
import { ClockEvent } from "./heap.js";
import type { MemoryBroker, Sub } from "./memory-broker.js";
import type { InboundMessage } from "./ports.js";

/**
 * A message on the in-memory bus: what receivers read (InboundMessage) and, while it waits to be
 * delivered, the clock's event itself — one object per publish, shared by every receiver.
 */
export class MemoryMessage extends ClockEvent implements InboundMessage {
  targets: Sub[] = NO_TARGETS;
  constructor(
    private readonly broker: MemoryBroker,
    readonly subject: string,
    private readonly bytes: Uint8Array | undefined,
    readonly value: unknown,
    readonly trusted: boolean,
    readonly reply: string | undefined,
  ) {
    super();
  }

  fn(): void {
    this.broker.deliver(this.targets, this);
  }

  data(): Result<unknown> {
    if (this.bytes !== undefined) return decode(this.bytes, this.broker.options.maxPayloadBytes);
    return { ok: true, value: this.value };
  }

  respond(data: unknown): boolean {
    if (this.reply === undefined) return false;
    this.broker.route(this.reply, this.broker.body(data), undefined);
    return true;
  }
}

const NO_TARGETS: Sub[] = [];
