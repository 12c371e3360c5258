import {
  DEFAULT_MAX_PAYLOAD_BYTES,
  decode,
  encode,
  isValidSubject,
  type Result,
  SageError,
  subjectMatches,
} from "@sageserve/protocol";
import { ClockEvent, type TimedEvent } from "./heap.js";
import type {
  Bus,
  Clock,
  DurableMessage,
  DurableStream,
  InboundMessage,
  KvPutOptions,
  MessageHandler,
  RequestOptions,
  ServiceHandle,
  ServiceInfo,
  ServiceSpec,
  SubscribeOptions,
  Subscription,
} from "./ports.js";
import { SubjectTrie } from "./subject-trie.js";
import { eventPoster, VirtualClock } from "./virtual-clock.js";

export interface MemoryBrokerOptions {
  /** Virtual delay between publish and delivery. Default 0 (still asynchronous: after the current event). */
  deliveryDelayMs?: number;
  /**
   * "msgpack" (default) encodes every payload as it would travel over NATS;
   * "none" passes values by reference, for simulations where codec cost would
   * dominate (publishers must not mutate what they published). Such messages are
   * marked `trusted`: actors validated them on the way out and skip re-validation.
   */
  codec?: "msgpack" | "none";
  maxPayloadBytes?: number;
  /**
   * With codec "none": treat every in-process value as already valid, even when the
   * publisher did not validate it. Only for trusted simulations of typed actor code
   * where validation cost dominates; raw bytes are still always checked.
   */
  trustAll?: boolean;
}

interface Sub {
  pattern: string;
  queue: string | undefined;
  handler: MessageHandler;
  active: boolean;
  received: number;
  owner: MemoryBus;
}

interface DurableEntry {
  seq: number;
  subject: string;
  body: Body;
  holder: string | undefined;
}

interface Match {
  subs: Sub[];
  /** Every match receives (no queue group, or a single subscriber). */
  plain: boolean;
  broadcast: Sub[];
  groups: Sub[][];
}

interface PendingRequest {
  resolve(m: InboundMessage): void;
  timer: { cancel(): void };
}

type Body =
  | { bytes: Uint8Array; value?: undefined; trusted?: undefined }
  | { bytes?: undefined; value: unknown; trusted: boolean };

/** The in-memory "server": one per simulated world; actors each get a MemoryBus connection. */
export class MemoryBroker {
  readonly clock: Clock;
  readonly options: Required<MemoryBrokerOptions>;
  private readonly trie = new SubjectTrie<Sub>();
  readonly inboxes = new Map<string, PendingRequest>();
  readonly services = new Map<string, ServiceInfo>();
  readonly kv = new Map<string, Map<string, { bytes: Uint8Array; atMs: number }>>();
  readonly kvTtl = new Map<string, number>();
  readonly objects = new Map<string, Map<string, Uint8Array>>();
  /** Durable work queues: messages stay until acknowledged; unacked ones return when their consumer goes away. */
  readonly durable = new Map<
    string,
    {
      /** By sequence number (a Map keeps insertion order: FIFO; an ack deletes in O(1)). */
      messages: Map<number, DurableEntry>;
      consumers: Map<string, { filter: string; handler: (m: DurableMessage) => void; owner: MemoryBus }>;
      seq: number;
    }
  >();

  durableStream(name: string) {
    let s = this.durable.get(name);
    if (!s) {
      s = { messages: new Map(), consumers: new Map(), seq: 0 };
      this.durable.set(name, s);
    }
    return s;
  }

  /**
   * Offer unheld messages to a consumer whose filter matches (FIFO by sequence): every one, or only
   * `fresh` — a new message is the only one a publish can make deliverable, since every earlier
   * unheld message already found no consumer that matches.
   */
  dispatchDurable(name: string, fresh?: DurableEntry): void {
    const s = this.durableStream(name);
    for (const m of fresh ? [fresh] : s.messages.values()) {
      if (m.holder !== undefined) continue;
      for (const [cname, c] of s.consumers) {
        if (!this.filterMatches(c.filter, m.subject)) continue;
        m.holder = cname;
        const msg = m;
        this.later(() => {
          if (msg.holder !== cname || !s.consumers.has(cname)) return;
          const inbound = this.inbound(msg.subject, msg.body, undefined);
          c.handler({
            subject: msg.subject,
            trusted: inbound.trusted === true,
            value: inbound.value,
            data: () => inbound.data(),
            ack: () => {
              s.messages.delete(msg.seq);
            },
            nak: (delayMs = 0) => {
              this.clock.setTimer(delayMs, () => {
                if (msg.holder === cname) {
                  msg.holder = undefined;
                  this.dispatchDurable(name);
                }
              });
            },
            working: () => {},
          });
        });
        break;
      }
    }
  }
  /** Durable consumer filters against subjects (a few filters, a few subjects per model and region). */
  private readonly filterCache = new Map<string, Map<string, boolean>>();

  private filterMatches(filter: string, subject: string): boolean {
    let byFilter = this.filterCache.get(filter);
    if (byFilter === undefined) {
      byFilter = new Map();
      this.filterCache.set(filter, byFilter);
    }
    let ok = byFilter.get(subject);
    if (ok === undefined) {
      ok = subjectMatches(filter, subject);
      if (byFilter.size > 10_000) byFilter.clear();
      byFilter.set(subject, ok);
    }
    return ok;
  }

  private readonly queuePick;
  private nextConn = 0;
  published = 0;
  delivered = 0;
  handlerFailures = 0;

  constructor(clock: Clock, opts: MemoryBrokerOptions = {}) {
    this.clock = clock;
    this.options = {
      deliveryDelayMs: opts.deliveryDelayMs ?? 0,
      codec: opts.codec ?? "msgpack",
      maxPayloadBytes: opts.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES,
      trustAll: opts.trustAll ?? false,
    };
    this.queuePick = clock.rng("memory-bus.queue-groups");
    this.post =
      clock instanceof VirtualClock ? clock.post.bind(clock) : (delayMs, fn) => clock.setTimer(delayMs, fn);
    this.postEvent = eventPoster(clock);
  }

  connect(name = `conn-${this.nextConn}`): MemoryBus {
    return new MemoryBus(this, `${name}#${this.nextConn++}`);
  }

  add(sub: Sub): void {
    this.trie.add(sub.pattern, sub);
    this.matchCache.clear();
  }

  remove(sub: Sub): void {
    this.trie.remove(sub.pattern, sub);
    this.matchCache.clear();
  }

  /** Subjects repeat (a few per model, region and node), so matches are cached until a subscription changes. */
  private readonly matchCache = new Map<string, Match>();

  /** Matching subscriptions, and whether none of them is in a queue group (then all receive). */
  private matchCached(subject: string): Match {
    let m = this.matchCache.get(subject);
    if (m === undefined) {
      if (!isValidSubject(subject))
        throw new SageError("SUBJECT", `invalid publish subject '${subject}'`, { subject });
      const subs = this.trie.match(subject);
      const plain = subs.every((s) => s.queue === undefined);
      // Queue groups in order of first appearance, each picked from per message.
      const groups = new Map<string, Sub[]>();
      for (const s of subs) {
        if (s.queue === undefined) continue;
        const g = groups.get(s.queue);
        if (g) g.push(s);
        else groups.set(s.queue, [s]);
      }
      m = {
        subs,
        plain: plain || subs.length === 1,
        broadcast: subs.filter((s) => s.queue === undefined),
        groups: [...groups.values()],
      };
      if (this.matchCache.size > 50_000) this.matchCache.clear();
      this.matchCache.set(subject, m);
    }
    return m;
  }

  /** True when some subscription (or pending request inbox) would receive `subject`. */
  hasInterest(subject: string): boolean {
    return this.inboxes.has(subject) || this.trie.match(subject).length > 0;
  }

  route(subject: string, body: Body, reply: string | undefined): void {
    this.routeMessage(new MemoryMessage(this, subject, body.bytes, body.value, body.trusted === true, reply));
  }

  /** Route a message object: it is also the delivery event, shared by every receiver (read-only). */
  routeMessage(msg: MemoryMessage): void {
    const subject = msg.subject;
    if (subject.charCodeAt(0) === 95 /* _INBOX. */) {
      const inbox = this.inboxes.get(subject);
      if (inbox) {
        this.inboxes.delete(subject);
        this.published++;
        this.later(() => {
          inbox.timer.cancel();
          (this.clock as { markAsync?: () => void }).markAsync?.();
          inbox.resolve(msg);
        });
        return;
      }
    }
    const m = this.matchCached(subject);
    this.published++;
    if (m.subs.length === 0) return;
    msg.targets = m.plain ? m.subs : this.selectTargets(m);
    this.postEvent(this.options.deliveryDelayMs, msg);
  }

  /** Hand a message to its receivers (a Delivery event). */
  deliver(targets: Sub[], msg: InboundMessage): void {
    for (const sub of targets) {
      if (!sub.active) continue;
      sub.received++;
      this.delivered++;
      this.invoke(sub, msg);
    }
  }

  /** Every broadcast subscriber, and one member of each queue group (seeded pick). */
  private selectTargets(m: Match): Sub[] {
    const out = m.broadcast.slice();
    for (const members of m.groups) out.push(this.queuePick.pick(members));
    return out;
  }

  private invoke(sub: Sub, msg: InboundMessage): void {
    try {
      const r = sub.handler(msg);
      if (r && typeof (r as Promise<void>).then === "function") {
        (this.clock as { markAsync?: () => void }).markAsync?.();
        (r as Promise<void>).catch(() => {
          this.handlerFailures++;
        });
      }
    } catch {
      // Handlers are wrapped by the actor runtime; this only guards raw bus users.
      this.handlerFailures++;
    }
  }

  later(fn: () => void): void {
    this.post(this.options.deliveryDelayMs, fn);
  }

  /** The clock's fire-and-forget event (the virtual clock's `post`), else a timer. */
  private readonly post: (delayMs: number, fn: () => unknown) => void;
  /** The same for an event object (the virtual clock queues it as it is: no closure, no wrapper). */
  private readonly postEvent: (delayMs: number, ev: TimedEvent) => void;

  inbound(subject: string, body: Body, reply: string | undefined): InboundMessage {
    return new MemoryMessage(this, subject, body.bytes, body.value, body.trusted === true, reply);
  }

  body(data: unknown, validated = false): Body {
    if (this.options.codec === "none") return { value: data, trusted: validated || this.options.trustAll };
    const bytes = encode(data);
    if (bytes.byteLength > this.options.maxPayloadBytes) {
      throw new SageError(
        "TOO_LARGE",
        `payload of ${bytes.byteLength} bytes exceeds ${this.options.maxPayloadBytes}`,
      );
    }
    return { bytes };
  }
}

/**
 * A message on the in-memory bus: what receivers read (InboundMessage) and, while it waits to be
 * delivered, the clock's event itself — one object per publish, shared by every receiver.
 */
class MemoryMessage extends ClockEvent implements InboundMessage {
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

/** One client connection to a MemoryBroker; implements the same Bus port as NatsBus. */
export class MemoryBus implements Bus {
  readonly kind = "memory" as const;
  readonly versionless: boolean;
  private readonly subs = new Set<Sub>();
  private readonly pending = new Map<string, (e: SageError) => void>();
  private nextInbox = 0;
  closed = false;

  constructor(
    readonly broker: MemoryBroker,
    readonly name: string,
  ) {
    this.versionless = broker.options.codec === "none" && broker.options.trustAll;
  }

  publish(subject: string, data: unknown, opts?: { reply?: string; validated?: boolean }): void {
    if (this.closed) throw new SageError("CLOSED", `publish on closed connection ${this.name}`, { subject });
    // The subject's validity is checked when the broker first matches it (once per distinct subject).
    const b = this.broker;
    if (b.options.codec === "none") {
      // In-process: the value itself travels (no Body object in between).
      const trusted = opts?.validated === true || b.options.trustAll;
      b.routeMessage(new MemoryMessage(b, subject, undefined, data, trusted, opts?.reply));
    } else b.route(subject, b.body(data, opts?.validated), opts?.reply);
  }

  publishRaw(subject: string, bytes: Uint8Array, opts: { reply?: string } = {}): void {
    this.checkPublish(subject);
    this.broker.route(subject, { bytes }, opts.reply);
  }

  subscribe(subject: string, handler: MessageHandler, opts: SubscribeOptions = {}): Subscription {
    if (this.closed) throw new SageError("CLOSED", `subscribe on closed connection ${this.name}`);
    if (!isValidSubject(subject, true))
      throw new SageError("SUBJECT", `invalid subscription subject '${subject}'`);
    const sub: Sub = { pattern: subject, queue: opts.queue, handler, active: true, received: 0, owner: this };
    this.subs.add(sub);
    this.broker.add(sub);
    return {
      subject,
      queue: opts.queue,
      get received() {
        return sub.received;
      },
      unsubscribe: () => {
        sub.active = false;
        this.subs.delete(sub);
        this.broker.remove(sub);
      },
    };
  }

  request(subject: string, data: unknown, opts: RequestOptions): Promise<InboundMessage> {
    return new Promise((resolve, reject) => {
      try {
        this.checkPublish(subject);
      } catch (e) {
        reject(e);
        return;
      }
      const clock = this.broker.clock;
      const markAsync = (): void => (clock as { markAsync?: () => void }).markAsync?.();
      if (!this.broker.hasInterest(subject)) {
        // NATS answers "503 no responders" at once; keep it asynchronous like the server's status message.
        clock.setTimer(0, () => {
          markAsync();
          reject(new SageError("NO_RESPONDERS", `no responders on ${subject}`, { subject }));
        });
        return;
      }
      const inbox = `_INBOX.${this.name.replace(/[^A-Za-z0-9_-]/g, "_")}.${this.nextInbox++}`;
      const fail = (e: SageError): void => {
        this.broker.inboxes.delete(inbox);
        this.pending.delete(inbox);
        markAsync();
        reject(e);
      };
      const timer = clock.setTimer(opts.timeoutMs, () =>
        fail(
          new SageError("TIMEOUT", `request on ${subject} timed out after ${opts.timeoutMs} ms`, { subject }),
        ),
      );
      this.pending.set(inbox, (e) => {
        timer.cancel();
        fail(e);
      });
      this.broker.inboxes.set(inbox, {
        timer,
        resolve: (m) => {
          this.pending.delete(inbox);
          resolve(m);
        },
      });
      this.broker.route(subject, this.broker.body(data), inbox);
    });
  }

  async registerService(spec: ServiceSpec): Promise<ServiceHandle> {
    const info: ServiceInfo = {
      name: spec.name,
      id: spec.instanceId,
      version: spec.version,
      description: spec.description,
      metadata: { ...(spec.metadata ?? {}), instance: spec.instanceId },
      endpoints: [],
    };
    this.broker.services.set(spec.instanceId, info);
    const subs: Subscription[] = [];
    return {
      addEndpoint: (name, subject, handler, opts = {}) => {
        const queue = opts.queue ?? spec.instanceId;
        info.endpoints.push({ name, subject, queue });
        const s = this.subscribe(subject, handler, { queue });
        subs.push(s);
        return s;
      },
      stop: async () => {
        for (const s of subs) s.unsubscribe();
        this.broker.services.delete(spec.instanceId);
      },
    };
  }

  async discover(opts: { name?: string } = {}): Promise<ServiceInfo[]> {
    return [...this.broker.services.values()]
      .filter((s) => opts.name === undefined || s.name === opts.name)
      .map((s) => structuredClone(s));
  }

  async durablePublish(stream: DurableStream, subject: string, data: unknown): Promise<void> {
    this.checkPublish(subject);
    const s = this.broker.durableStream(stream.name);
    const entry: DurableEntry = {
      seq: s.seq++,
      subject,
      body: this.broker.body(data),
      holder: undefined,
    };
    s.messages.set(entry.seq, entry);
    this.broker.dispatchDurable(stream.name, entry);
  }

  async durableConsume(
    stream: DurableStream,
    consumer: string,
    filter: string,
    handler: (msg: DurableMessage) => void,
  ): Promise<Subscription> {
    const s = this.broker.durableStream(stream.name);
    // A successor of a consumer that went away gets what its predecessor held but never acknowledged.
    for (const m of s.messages.values()) if (m.holder === consumer) m.holder = undefined;
    let received = 0;
    const counted = (m: DurableMessage): void => {
      received++;
      handler(m);
    };
    s.consumers.set(consumer, { filter, handler: counted, owner: this });
    this.broker.dispatchDurable(stream.name);
    return {
      subject: filter,
      queue: consumer,
      get received() {
        return received;
      },
      unsubscribe: () => {
        if (s.consumers.get(consumer)?.owner === this) s.consumers.delete(consumer);
      },
    };
  }

  async kvPut(bucket: string, key: string, value: unknown, opts: KvPutOptions = {}): Promise<void> {
    if (this.closed) throw new SageError("CLOSED", `kvPut on closed connection ${this.name}`);
    let b = this.broker.kv.get(bucket);
    if (!b) {
      b = new Map();
      this.broker.kv.set(bucket, b);
      if (opts.bucketTtlMs) this.broker.kvTtl.set(bucket, opts.bucketTtlMs);
    }
    // Stored encoded, as on NATS, so a reader never shares the writer's object.
    b.set(key, { bytes: encode(value), atMs: this.broker.clock.now() });
  }

  async kvGet(bucket: string, key: string): Promise<unknown | undefined> {
    const e = this.broker.kv.get(bucket)?.get(key);
    if (!e) return undefined;
    const ttl = this.broker.kvTtl.get(bucket);
    if (ttl !== undefined && this.broker.clock.now() - e.atMs >= ttl) return undefined;
    const d = decode(e.bytes);
    return d.ok ? d.value : undefined;
  }

  async kvEntries(bucket: string, prefix = ""): Promise<Map<string, unknown>> {
    const out = new Map<string, unknown>();
    for (const key of [...(this.broker.kv.get(bucket)?.keys() ?? [])].sort()) {
      if (!key.startsWith(prefix)) continue;
      const v = await this.kvGet(bucket, key);
      if (v !== undefined) out.set(key, v);
    }
    return out;
  }

  async kvKeys(bucket: string, prefix = ""): Promise<string[]> {
    return [...(await this.kvEntries(bucket, prefix)).keys()];
  }

  async kvDelete(bucket: string, key: string): Promise<void> {
    this.broker.kv.get(bucket)?.delete(key);
  }

  async objPut(bucket: string, name: string, data: Uint8Array): Promise<void> {
    if (this.closed) throw new SageError("CLOSED", `objPut on closed connection ${this.name}`);
    let b = this.broker.objects.get(bucket);
    if (!b) {
      b = new Map();
      this.broker.objects.set(bucket, b);
    }
    b.set(name, data.slice());
  }

  async objGet(bucket: string, name: string): Promise<Uint8Array | undefined> {
    return this.broker.objects.get(bucket)?.get(name)?.slice();
  }

  async objDelete(bucket: string, name: string): Promise<void> {
    this.broker.objects.get(bucket)?.delete(name);
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Drain semantics: no new matches, but deliveries already scheduled still arrive.
    for (const s of this.subs) this.broker.remove(s);
    this.subs.clear();
    for (const fail of [...this.pending.values()])
      fail(new SageError("CLOSED", `connection ${this.name} closed`));
  }

  private checkPublish(subject: string): void {
    if (this.closed) throw new SageError("CLOSED", `publish on closed connection ${this.name}`, { subject });
    if (!isValidSubject(subject))
      throw new SageError("SUBJECT", `invalid publish subject '${subject}'`, { subject });
  }
}
