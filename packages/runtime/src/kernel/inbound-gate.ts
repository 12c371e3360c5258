/**
 * An actor's inbound boundary: every message is decoded and validated before a handler sees it, bad
 * input becomes a counted, typed rejection (and an error reply), and a handler failure is counted,
 * logged and answered instead of escaping into the bus. One per actor, sharing the actor's counters;
 * the per-message path of every simulated request, so it allocates nothing on success.
 */
import { type MessageDef, type Payload, SageError, validatePayload } from "@sageserve/protocol";
import type { ActorStats } from "./actor-context.js";
import type { Logger } from "./logger.js";
import type { InboundMessage } from "./ports.js";

export interface HandlerMeta {
  subject: string;
  params: Record<string, string>;
}

export class InboundGate {
  constructor(
    private readonly counters: ActorStats,
    private readonly log: Logger,
  ) {}

  /** Passive listeners (auditors, dashboards) never answer, so they cannot race the real responder. */
  accept<D extends MessageDef>(def: D, msg: InboundMessage, passive = false): Payload<D> | undefined {
    this.counters.received++;
    // An in-process value its publisher already checked (the simulator's bus): nothing to decode.
    if (msg.trusted === true && msg.value !== undefined) return msg.value as Payload<D>;
    let stage: "DECODE" | "SCHEMA" = "DECODE";
    try {
      const data = msg.data();
      if (!data.ok) return this.reject(def, msg, data.error, passive);
      if (msg.trusted) return data.value as Payload<D>;
      stage = "SCHEMA";
      const checked = validatePayload(def, data.value, msg.subject);
      if (!checked.ok) return this.reject(def, msg, checked.error, passive);
      return checked.value as Payload<D>;
    } catch (e) {
      // Decoding and validation return errors as values; should either ever throw, the message is
      // still rejected, counted and answered — the bus adapters swallow what a handler throws, so an
      // escaped error would be an uncounted message and a requester left waiting for its timeout.
      const error = new SageError(stage, `${def.name}: ${String(e)}`, { subject: msg.subject, cause: e });
      return this.reject(def, msg, error, passive);
    }
  }

  private reject(def: MessageDef, msg: InboundMessage, error: SageError, passive: boolean): undefined {
    const c = this.counters;
    c.rejected++;
    c.rejectedByCode[error.code] = (c.rejectedByCode[error.code] ?? 0) + 1;
    const key = def.subject.template;
    const n = (c.rejectedBySubject[key] ?? 0) + 1;
    c.rejectedBySubject[key] = n;
    // Log the first few of each kind, then every 1000th, so garbage cannot flood the log.
    if (n <= 3 || n % 1000 === 0) {
      this.log.warn(
        { code: error.code, subject: msg.subject, count: n },
        `rejected ${def.name}: ${error.message}`,
      );
    }
    if (msg.reply && !passive)
      msg.respond({ v: def.version, error: { code: error.code, message: error.message } });
    return undefined;
  }

  /**
   * Run a handler on an accepted payload: count it, answer through `reply` when given, and turn a
   * failure into a counted, logged error (and an error reply). Allocates nothing on the success path.
   */
  dispatch<P, R>(
    def: MessageDef,
    msg: InboundMessage,
    handler: (payload: P, meta: HandlerMeta) => R | Promise<R>,
    payload: P,
    reply?: (out: R) => void,
  ): void | Promise<void> {
    try {
      // Handlers that take no `meta` get none: most read the payload only.
      const out = handler(payload, handler.length > 1 ? new LazyMeta(def, msg.subject) : NO_META);
      if (out && typeof (out as Promise<R>).then === "function") {
        return (out as Promise<R>).then(
          (r) => {
            reply?.(r);
            this.counters.handled++;
          },
          (e: unknown) => this.handlerFailed(def, msg, e),
        );
      }
      reply?.(out as R);
      this.counters.handled++;
    } catch (e) {
      this.handlerFailed(def, msg, e);
    }
  }

  private handlerFailed(def: MessageDef, msg: InboundMessage, e: unknown): void {
    this.counters.handlerErrors++;
    this.log.error({ subject: msg.subject, err: String(e) }, `handler for ${def.name} failed`);
    if (msg.reply) msg.respond({ v: def.version, error: { code: "HANDLER", message: String(e) } });
  }
}

/** What a handler declared without a `meta` parameter receives (it cannot read it). */
const NO_META: HandlerMeta = Object.freeze({
  subject: "",
  params: Object.freeze({}) as Record<string, string>,
});

/** Subject params are parsed on first use only: most handlers read the payload, not the subject. */
class LazyMeta implements HandlerMeta {
  private parsed: Record<string, string> | undefined;
  constructor(
    private readonly def: MessageDef,
    readonly subject: string,
  ) {}
  get params(): Record<string, string> {
    this.parsed ??= this.def.subject.parse(this.subject) ?? {};
    return this.parsed;
  }
}
