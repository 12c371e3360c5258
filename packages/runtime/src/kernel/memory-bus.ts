/**
 * One client connection to a `MemoryBroker`: the simulator's adapter of the Bus port, the in-memory
 * counterpart of `NatsBus` (publish, subscribe, request, services, durable queues, KV, object store).
 */
import { decode, encode, isValidSubject, SageError } from "@sageserve/protocol";
import type { DurableEntry, MemoryBroker, Sub } from "./memory-broker.js";
import { MemoryMessage } from "./memory-message.js";
import type {
  Bus,
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

/** One client connection to a MemoryBroker; implements the same Bus port as NatsBus. */
export class MemoryBus implements Bus {
  readonly kind = "memory" as const;
  readonly durableRedelivery = false;
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
    this.kvWrite(bucket, key, value, opts);
  }

  private kvWrite(bucket: string, key: string, value: unknown, opts: KvPutOptions): void {
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
    return this.kvRead(bucket, key);
  }

  private kvRead(bucket: string, key: string): unknown | undefined {
    const e = this.broker.kv.get(bucket)?.get(key);
    if (!e) return undefined;
    const ttl = this.broker.kvTtl.get(bucket);
    if (ttl !== undefined && this.broker.clock.now() - e.atMs >= ttl) return undefined;
    const d = decode(e.bytes);
    return d.ok ? d.value : undefined;
  }

  async kvUpdate(
    bucket: string,
    key: string,
    change: (current: unknown | undefined) => unknown | undefined,
    opts: KvPutOptions = {},
  ): Promise<unknown | undefined> {
    if (this.closed) throw new SageError("CLOSED", `kvUpdate on closed connection ${this.name}`);
    // Read and write in one synchronous step: no other writer can come between them.
    const current = this.kvRead(bucket, key);
    const next = change(current);
    if (next === undefined) return current;
    this.kvWrite(bucket, key, next, opts);
    return next;
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
