import {
  envelope,
  type MessageDef,
  type ParamsOf,
  type Payload,
  type PayloadIn,
  type ReplyIn,
  type ReplyOf,
  type Result,
  SageError,
  stampVersion,
  validatePayload,
  validateReply,
} from "@sageserve/protocol";
import type { ActorContext, ActorIdentity, ActorStats } from "./actor-context.js";
import { type HandlerMeta, InboundGate } from "./inbound-gate.js";
import { type Logger, silentLogger } from "./logger.js";
import type {
  Bus,
  Clock,
  DurableMessage,
  DurableStream,
  InboundMessage,
  KvPutOptions,
  ServiceHandle,
  Timer,
} from "./ports.js";

type SubjectParams<D extends MessageDef> = Partial<Record<ParamsOf<D>, string>>;

/**
 * Base of every SageServe actor. Subclasses declare handlers in `setup()` and
 * use `publish`/`request`/timers; the base validates every inbound message at
 * the boundary, turns bad input into counted, typed rejections (and error
 * replies), and never lets a handler failure escape into the bus.
 */
export abstract class Actor {
  readonly bus: Bus;
  readonly clock: Clock;
  readonly log: Logger;
  readonly identity: Required<Omit<ActorIdentity, "metadata">> & { metadata: Record<string, string> };
  private readonly validateOutgoing: boolean;
  private readonly versionless: boolean;
  private service: ServiceHandle | undefined;
  /** Live timers, cancelled on stop; one-shot timers leave the set when they fire. */
  private readonly timers = new Set<Timer>();
  private readonly durableSubs: { unsubscribe(): void }[] = [];
  private endpointNames = new Map<string, number>();
  private running = false;
  /** Validates inbound messages and runs handlers guarded; shares `counters`. */
  private readonly inboundGate: InboundGate;
  private readonly counters: ActorStats = {
    received: 0,
    handled: 0,
    published: 0,
    publishFailures: 0,
    handlerErrors: 0,
    rejected: 0,
    rejectedByCode: {},
    rejectedBySubject: {},
  };

  constructor(ctx: ActorContext, identity: ActorIdentity) {
    this.bus = ctx.bus;
    this.clock = ctx.clock;
    this.identity = {
      role: identity.role,
      id: identity.id,
      version: identity.version ?? "0.1.0",
      description: identity.description ?? `SageServe ${identity.role}`,
      metadata: identity.metadata ?? {},
    };
    this.log = (ctx.log ?? silentLogger).child({ actor: identity.id });
    this.inboundGate = new InboundGate(this.counters, this.log);
    this.validateOutgoing = ctx.validateOutgoing ?? true;
    this.versionless = ctx.bus.versionless === true;
  }

  /** Declare handlers and timers here. */
  protected abstract setup(): void | Promise<void>;

  /** Called on stop, before subscriptions and timers are removed. */
  protected teardown(): void | Promise<void> {}

  async start(): Promise<void> {
    if (this.running) return;
    this.service = await this.bus.registerService({
      name: this.identity.role,
      version: this.identity.version,
      description: this.identity.description,
      instanceId: this.identity.id,
      metadata: this.identity.metadata,
      stats: () => this.stats(),
    });
    this.running = true;
    await this.setup();
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    try {
      await this.teardown();
    } catch (e) {
      this.log.error({ err: String(e) }, "teardown failed");
    }
    for (const t of this.timers) t.cancel();
    this.timers.clear();
    for (const s of this.durableSubs.splice(0)) s.unsubscribe();
    await this.service?.stop();
    this.service = undefined;
  }

  get isRunning(): boolean {
    return this.running;
  }

  stats(): ActorStats {
    return structuredClone(this.counters);
  }

  // ---------------------------------------------------------------- inbound

  /** Listen for an event (or stream) message. Default queue: the message's queue group, else broadcast. */
  protected on<D extends MessageDef>(
    def: D,
    params: SubjectParams<D>,
    handler: (payload: Payload<D>, meta: HandlerMeta) => void | Promise<void>,
    opts: { queue?: string; broadcast?: boolean; passive?: boolean } = {},
  ): void {
    const subject = def.subject.pattern(params as Record<string, string>);
    const passive = opts.passive ?? false;
    this.endpoint(def, subject, opts, (msg) => {
      const payload = this.inboundGate.accept(def, msg, passive);
      if (payload === undefined) return;
      return this.inboundGate.dispatch(def, msg, handler, payload);
    });
  }

  /** Answer a request message. Return the reply payload or a SageError (sent as an ErrorReply). */
  protected handle<D extends MessageDef>(
    def: D,
    params: SubjectParams<D>,
    handler: (
      payload: Payload<D>,
      meta: HandlerMeta,
    ) => ReplyIn<D> | SageError | Promise<ReplyIn<D> | SageError>,
    opts: { queue?: string; broadcast?: boolean } = {},
  ): void {
    if (!def.reply) throw new Error(`${def.name} is not a request message`);
    const subject = def.subject.pattern(params as Record<string, string>);
    this.endpoint(def, subject, opts, (msg) => {
      const payload = this.inboundGate.accept(def, msg);
      if (payload === undefined) return;
      // Published without a reply subject (a fire-and-forget route request): nobody is waiting.
      if (msg.reply === undefined) return this.inboundGate.dispatch(def, msg, handler, payload);
      const reply = (out: ReplyIn<D> | SageError): void => {
        if (out instanceof SageError) msg.respond({ v: def.version, error: out.toJSON() });
        else msg.respond(envelope(def, out as object));
      };
      return this.inboundGate.dispatch(def, msg, handler, payload, reply);
    });
  }

  // ---------------------------------------------------------------- outbound

  protected publish<D extends MessageDef>(
    def: D,
    params: Record<ParamsOf<D>, string>,
    payload: PayloadIn<D>,
  ): Result<void> {
    // The hot path of every simulated request: no intermediate objects, no closures.
    try {
      const subject = def.subject.build(params as Record<string, string>);
      if (this.validateOutgoing) {
        const wire = stampVersion(def, payload as object);
        const checked = validatePayload(def, wire, subject);
        if (!checked.ok) return this.publishFailed(checked.error);
        this.bus.publish(subject, wire, VALIDATED);
      } else this.bus.publish(subject, this.versionless ? payload : stampVersion(def, payload as object));
      this.counters.published++;
      return OK;
    } catch (e) {
      return this.publishFailed(
        e instanceof SageError ? e : new SageError("CLOSED", `publish ${def.name} failed: ${String(e)}`),
      );
    }
  }

  protected async request<D extends MessageDef>(
    def: D,
    params: Record<ParamsOf<D>, string>,
    payload: PayloadIn<D>,
    timeoutMs: number,
  ): Promise<Result<ReplyOf<D>>> {
    let subject = def.name;
    try {
      subject = def.subject.build(params as Record<string, string>);
      const wire = envelope(def, payload as object);
      if (this.validateOutgoing) {
        const checked = validatePayload(def, wire, subject);
        if (!checked.ok) return checked as Result<never>;
      }
      this.counters.published++;
      const reply = await this.bus.request(subject, wire, { timeoutMs });
      const data = reply.data();
      if (!data.ok) return data as Result<never>;
      return validateReply(def, data.value, subject);
    } catch (e) {
      return {
        ok: false,
        error:
          e instanceof SageError
            ? e
            : new SageError("CLOSED", `request ${def.name} failed: ${String(e)}`, { subject }),
      };
    }
  }

  /**
   * Put a message in a durable work queue (validated like `publish`). The write completes in the
   * background; a failure is counted and logged.
   */
  protected durablePublish<D extends MessageDef>(
    stream: DurableStream,
    def: D,
    params: Record<ParamsOf<D>, string>,
    payload: PayloadIn<D>,
  ): Result<void> {
    try {
      // Checked unless every receiver trusts the bus as it is (the simulator without validation).
      const out = this.outgoing(def, params, payload, this.validateOutgoing || !this.versionless);
      if (!out.ok) return this.publishFailed(out.error);
      this.counters.published++;
      this.bus.durablePublish(stream, out.value.subject, out.value.wire).catch((e: unknown) => {
        this.publishFailed(
          e instanceof SageError ? e : new SageError("CLOSED", `durable publish ${def.name}: ${String(e)}`),
        );
      });
      return { ok: true, value: undefined };
    } catch (e) {
      return this.publishFailed(
        e instanceof SageError ? e : new SageError("CLOSED", `durable publish ${def.name}: ${String(e)}`),
      );
    }
  }

  /**
   * Consume a durable queue. Each valid message is handed over with its handle (ack when done); an
   * invalid one is rejected, counted and acknowledged, so a poison message cannot loop forever.
   */
  protected async consumeDurable<D extends MessageDef>(
    stream: DurableStream,
    def: D,
    params: SubjectParams<D>,
    consumer: string,
    handler: (payload: Payload<D>, msg: DurableMessage) => void,
    opts: { ackWaitMs?: number } = {},
  ): Promise<void> {
    const filter = def.subject.pattern(params as Record<string, string>);
    const sub = await this.bus.durableConsume(
      stream,
      consumer,
      filter,
      (m) => {
        if (!this.running) return;
        const inbound: InboundMessage = {
          subject: m.subject,
          reply: undefined,
          trusted: m.trusted === true,
          value: m.value,
          data: () => m.data(),
          respond: () => false,
        };
        const payload = this.inboundGate.accept(def, inbound);
        if (payload === undefined) {
          m.ack();
          return;
        }
        try {
          handler(payload, m);
          this.counters.handled++;
        } catch (e) {
          this.counters.handlerErrors++;
          this.log.error({ subject: m.subject, err: String(e) }, `handler for ${def.name} failed`);
          m.nak(1_000);
        }
      },
      opts,
    );
    this.durableSubs.push(sub);
  }

  /** Store shared state (e.g. the latest plan); failures come back as values. */
  protected async kvPut(
    bucket: string,
    key: string,
    value: unknown,
    opts?: KvPutOptions,
  ): Promise<Result<void>> {
    try {
      await this.bus.kvPut(bucket, key, value, opts);
      return { ok: true, value: undefined };
    } catch (e) {
      return this.publishFailed(
        e instanceof SageError ? e : new SageError("CLOSED", `kvPut ${bucket}/${key}: ${String(e)}`),
      );
    }
  }

  protected async kvGet(bucket: string, key: string): Promise<Result<unknown | undefined>> {
    try {
      return { ok: true, value: await this.bus.kvGet(bucket, key) };
    } catch (e) {
      return {
        ok: false,
        error: e instanceof SageError ? e : new SageError("CLOSED", `kvGet ${bucket}/${key}: ${String(e)}`),
      };
    }
  }

  /** Subject and wire form of an outgoing message (the payload object carries the version; see stampVersion). */
  private outgoing<D extends MessageDef>(
    def: D,
    params: Record<ParamsOf<D>, string>,
    payload: PayloadIn<D>,
    validate: boolean,
  ): Result<{ subject: string; wire: Record<string, unknown> }> {
    const subject = def.subject.build(params as Record<string, string>);
    const wire = stampVersion(def, payload as object);
    if (validate) {
      const checked = validatePayload(def, wire, subject);
      if (!checked.ok) return checked as Result<never>;
    }
    return { ok: true, value: { subject, wire } };
  }

  // ---------------------------------------------------------------- time

  protected every(intervalMs: number, fn: () => void | Promise<void>): Timer {
    return this.track(this.clock.every(intervalMs, () => this.guard("every", fn)));
  }

  protected after(delayMs: number, fn: () => void | Promise<void>): Timer {
    const t: Timer = this.clock.setTimer(delayMs, () => {
      this.timers.delete(t);
      return this.guard("timer", fn);
    });
    return this.track(t);
  }

  protected cron(
    expr: string,
    fn: (firedAtMs: number) => void | Promise<void>,
    opts?: { timezone?: string },
  ): Timer {
    return this.track(this.clock.schedule(expr, (at) => this.guard(`cron ${expr}`, () => fn(at)), opts));
  }

  // ---------------------------------------------------------------- internals

  private endpoint(
    def: MessageDef,
    subject: string,
    opts: { queue?: string; broadcast?: boolean },
    fn: (msg: InboundMessage) => void | Promise<void>,
  ): void {
    if (!this.service) throw new Error(`${this.identity.id}: declare handlers in setup()`);
    const n = this.endpointNames.get(def.name) ?? 0;
    this.endpointNames.set(def.name, n + 1);
    const name = n === 0 ? def.name : `${def.name}-${n}`;
    const queue = opts.broadcast ? undefined : (opts.queue ?? def.queueGroup);
    this.service.addEndpoint(name, subject, fn, queue === undefined ? {} : { queue });
  }

  private publishFailed(error: SageError): Result<void> {
    this.counters.publishFailures++;
    this.log.warn({ code: error.code, subject: error.subject }, error.message);
    return { ok: false, error };
  }

  private guard(what: string, fn: () => void | Promise<void>): void | Promise<void> {
    if (!this.running) return;
    try {
      const r = fn();
      if (r && typeof (r as Promise<void>).then === "function")
        return (r as Promise<void>).catch((e: unknown) => this.timerFailed(what, e));
    } catch (e) {
      this.timerFailed(what, e);
    }
  }

  private timerFailed(what: string, e: unknown): void {
    this.counters.handlerErrors++;
    this.log.error({ err: String(e) }, `${what} failed`);
  }

  private track(t: Timer): Timer {
    this.timers.add(t);
    return t;
  }
}

const OK: Result<void> = Object.freeze({ ok: true, value: undefined }) as Result<void>;
const VALIDATED = Object.freeze({ validated: true });
