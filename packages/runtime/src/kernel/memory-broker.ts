/**
 * The in-memory "server" of the simulator: subscriptions in a subject trie, matches cached per subject,
 * queue groups picked from a seeded stream, request inboxes, and the durable queues, KV and object maps
 * its connections share. Separate from `memory-bus.ts` (one client connection) as NATS separates the
 * server from its clients; every publish of a simulated week passes through `routeMessage`.
 */
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
import { MemoryBus } from "./memory-bus.js";
import { MemoryMessage } from "./memory-message.js";
import type { Clock, DurableMessage, InboundMessage, MessageHandler, ServiceInfo } from "./ports.js";
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

export interface Sub {
  pattern: string;
  queue: string | undefined;
  handler: MessageHandler;
  active: boolean;
  received: number;
  owner: MemoryBus;
}

export interface DurableEntry {
  seq: number;
  subject: string;
  body: Body;
  holder: string | undefined;
}

interface DurableConsumer {
  filter: string;
  handler: (m: DurableMessage) => void;
  owner: MemoryBus;
}

/** One durable stream of the in-memory server. */
export interface DurableState {
  /** By sequence number (a Map keeps insertion order: FIFO; an ack deletes in O(1)). */
  messages: Map<number, DurableEntry>;
  consumers: Map<string, DurableConsumer>;
  seq: number;
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

export type Body =
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
  readonly durable = new Map<string, DurableState>();

  durableStream(name: string): DurableState {
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
        this.postEvent(this.options.deliveryDelayMs, new DurableDelivery(this, name, s, m, cname, c));
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
 * A durable message offered to one consumer: first the clock's delivery event, then the consumer's handle
 * on the message until it acknowledges or gives it back. One object, no closures: a forecast-driven policy
 * holds up to a day of batch jobs, and at `paper-scale` that is millions of handles (each delivery used to
 * keep four closures, their scopes and a message object alive: ~0.5 kB per held job).
 */
class DurableDelivery extends ClockEvent implements DurableMessage {
  constructor(
    private readonly broker: MemoryBroker,
    private readonly stream: string,
    private readonly state: DurableState,
    private readonly entry: DurableEntry,
    private readonly consumer: string,
    private readonly to: DurableConsumer,
  ) {
    super();
  }

  /** The delivery event: to the consumer, unless the message changed hands or the consumer left meanwhile. */
  fn(): void {
    if (this.entry.holder !== this.consumer || !this.state.consumers.has(this.consumer)) return;
    this.to.handler(this);
  }

  get subject(): string {
    return this.entry.subject;
  }

  get trusted(): boolean {
    return this.entry.body.trusted === true;
  }

  get value(): unknown {
    return this.entry.body.value;
  }

  data(): Result<unknown> {
    const b = this.entry.body;
    if (b.bytes !== undefined) return decode(b.bytes, this.broker.options.maxPayloadBytes);
    return { ok: true, value: b.value };
  }

  ack(): void {
    this.state.messages.delete(this.entry.seq);
  }

  nak(delayMs = 0): void {
    this.broker.clock.setTimer(delayMs, () => {
      if (this.entry.holder === this.consumer) {
        this.entry.holder = undefined;
        this.broker.dispatchDurable(this.stream);
      }
    });
  }

  /** Nothing to postpone: a held message stays with its consumer (`Bus.durableRedelivery` is false). */
  working(): void {}
}
