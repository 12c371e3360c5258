/**
 * The live adapter of the Bus port over a real NATS connection (the `nats` package): core publish,
 * subscribe and request, and services as `nats micro` shows them. JetStream work queues and the KV and
 * object stores are in `jetstream-queues.ts` and `jetstream-stores.ts`; connecting in `nats-options.ts`.
 */
import { decode, encode, errorMessage, isValidSubject, type Result, SageError } from "@sageserve/protocol";
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
} from "@sageserve/runtime";
import { connect, type Msg, type NatsConnection, RequestStrategy, type Service } from "nats";
import { JetStreamQueues } from "./jetstream-queues.js";
import { JetStreamStores } from "./jetstream-stores.js";
import {
  connectionOptions,
  type NatsBusOptions,
  type NatsBusSettings,
  resolveNatsBusSettings,
} from "./nats-options.js";
import { encodePayload, mapError, statusError } from "./nats-wire.js";

/** Live Bus adapter over a real NATS connection (the `nats` package). */
export class NatsBus implements Bus {
  readonly kind = "nats" as const;
  readonly durableRedelivery = true;
  private readonly maxPayload: number;

  /** Replicas of the JetStream assets this connection creates (see `NatsBusOptions.jsReplicas`). */
  readonly jsReplicas: number;
  /** The connection's name (`NatsBusOptions.name`). */
  readonly name: string;
  private readonly settings: NatsBusSettings;
  private readonly queues: JetStreamQueues;
  private readonly stores: JetStreamStores;

  private constructor(
    readonly connection: NatsConnection,
    opts: NatsBusOptions,
  ) {
    this.settings = resolveNatsBusSettings(opts, connection.info);
    this.maxPayload = this.settings.maxPayload;
    this.name = this.settings.name;
    this.jsReplicas = this.settings.jsReplicas;
    this.queues = new JetStreamQueues(connection, this.settings);
    this.stores = new JetStreamStores(connection, this.settings);
    this.watchStatus(opts.onStatus);
  }

  /** Recent asynchronous errors the server reported on this connection (last 100), e.g. permission violations. */
  readonly errors: SageError[] = [];

  /** Connect with endless reconnects; the client buffers publishes while reconnecting. */
  static async connect(opts: NatsBusOptions): Promise<NatsBus> {
    const co = connectionOptions(opts);
    let nc: NatsConnection;
    try {
      nc = await connect(co);
    } catch (e) {
      const msg = errorMessage(e);
      const auth = /authoriz|authentic|permission|nkey|tls|certificate/i.test(msg);
      throw new SageError(
        auth ? "AUTH" : "CLOSED",
        `cannot connect to NATS at ${String(opts.servers)}: ${msg}`,
        { cause: e },
      );
    }
    try {
      return new NatsBus(nc, opts);
    } catch (e) {
      // A bad setting found once connected (e.g. SAGE_JS_REPLICAS=7) keeps its own code; the connection closes.
      await nc.close().catch(() => {});
      throw e;
    }
  }

  /** Keep the server's asynchronous errors (`errors`) and pass every status event to `onStatus`. */
  private watchStatus(onStatus: NatsBusOptions["onStatus"]): void {
    void (async () => {
      for await (const s of this.connection.status()) {
        if (String(s.type) === "error") {
          this.errors.push(statusError(s));
          if (this.errors.length > 100) this.errors.shift();
        }
        onStatus?.({ type: String(s.type), data: s.data });
      }
    })().catch(() => {});
  }

  get closed(): boolean {
    return this.connection.isClosed();
  }

  publish(subject: string, data: unknown, opts: { reply?: string; validated?: boolean } = {}): void {
    this.publishRaw(
      subject,
      this.encode(data, subject),
      opts.reply === undefined ? {} : { reply: opts.reply },
    );
  }

  publishRaw(subject: string, bytes: Uint8Array, opts: { reply?: string } = {}): void {
    if (!isValidSubject(subject))
      throw new SageError("SUBJECT", `invalid publish subject '${subject}'`, { subject });
    try {
      this.connection.publish(subject, bytes, opts.reply === undefined ? undefined : { reply: opts.reply });
    } catch (e) {
      throw mapError(e, subject);
    }
  }

  subscribe(subject: string, handler: MessageHandler, opts: SubscribeOptions = {}): Subscription {
    if (!isValidSubject(subject, true))
      throw new SageError("SUBJECT", `invalid subscription subject '${subject}'`);
    let received = 0;
    const sub = this.connection.subscribe(subject, {
      ...(opts.queue === undefined ? {} : { queue: opts.queue }),
      callback: (err, msg) => {
        if (err) return;
        received++;
        invoke(handler, this.inbound(msg));
      },
    });
    return {
      subject,
      queue: opts.queue,
      get received() {
        return received;
      },
      unsubscribe: () => sub.unsubscribe(),
    };
  }

  async request(subject: string, data: unknown, opts: RequestOptions): Promise<InboundMessage> {
    if (!isValidSubject(subject))
      throw new SageError("SUBJECT", `invalid request subject '${subject}'`, { subject });
    try {
      const m = await this.connection.request(subject, this.encode(data, subject), {
        timeout: opts.timeoutMs,
      });
      return this.inbound(m);
    } catch (e) {
      throw mapError(e, subject, opts.timeoutMs);
    }
  }

  async registerService(spec: ServiceSpec): Promise<ServiceHandle> {
    const srv: Service = await this.connection.services.add({
      name: spec.name,
      version: spec.version,
      description: spec.description,
      metadata: { ...(spec.metadata ?? {}), instance: spec.instanceId },
      statsHandler: async () => (spec.stats ? spec.stats() : null),
    });
    return {
      addEndpoint: (name, subject, handler, opts = {}) => {
        let active = true;
        let received = 0;
        // A queue named after the actor instance gives broadcast semantics (every actor gets
        // every message) while the endpoint still shows up in `nats micro info/stats`.
        srv.addEndpoint(name, {
          subject,
          queue: opts.queue ?? spec.instanceId,
          handler: (err, msg) => {
            if (err || !active) return;
            received++;
            invoke(handler, this.inbound(msg as unknown as Msg));
          },
        });
        return {
          subject,
          queue: opts.queue ?? spec.instanceId,
          get received() {
            return received;
          },
          // Stopping one endpoint's subscription would stop the whole service in nats.js,
          // so an unsubscribed endpoint just ignores further messages.
          unsubscribe: () => {
            active = false;
          },
        };
      },
      stop: async () => {
        if (!srv.isStopped) await srv.stop();
      },
    };
  }

  async discover(opts: { name?: string; timeoutMs?: number } = {}): Promise<ServiceInfo[]> {
    const client = this.connection.services.client({
      strategy: RequestStrategy.Timer,
      maxWait: opts.timeoutMs ?? 500,
    });
    const it = await client.info(opts.name);
    const out: ServiceInfo[] = [];
    for await (const s of it) {
      out.push({
        name: s.name,
        id: s.id,
        version: s.version,
        description: s.description ?? "",
        metadata: (s.metadata as Record<string, string> | undefined) ?? {},
        endpoints: (s.endpoints ?? []).map((e) => ({
          name: e.name,
          subject: e.subject,
          queue: e.queue_group,
        })),
      });
    }
    return out;
  }

  /** Create the work-queue stream once (see `JetStreamQueues.ensureDurableStream`). */
  ensureDurableStream(s: DurableStream): Promise<void> {
    return this.queues.ensureDurableStream(s);
  }

  durablePublish(stream: DurableStream, subject: string, data: unknown): Promise<void> {
    return this.queues.durablePublish(stream, subject, data);
  }

  durableConsume(
    stream: DurableStream,
    consumer: string,
    filter: string,
    handler: (msg: DurableMessage) => void,
    opts: { ackWaitMs?: number } = {},
  ): Promise<Subscription> {
    return this.queues.durableConsume(stream, consumer, filter, handler, opts);
  }

  kvPut(bucket: string, key: string, value: unknown, opts: KvPutOptions = {}): Promise<void> {
    return this.stores.kvPut(bucket, key, value, opts);
  }

  kvGet(bucket: string, key: string): Promise<unknown | undefined> {
    return this.stores.kvGet(bucket, key);
  }

  kvUpdate(
    bucket: string,
    key: string,
    change: (current: unknown | undefined) => unknown | undefined,
    opts: KvPutOptions = {},
  ): Promise<unknown | undefined> {
    return this.stores.kvUpdate(bucket, key, change, opts);
  }

  kvKeys(bucket: string, prefix?: string): Promise<string[]> {
    return this.stores.kvKeys(bucket, prefix);
  }

  kvEntries(bucket: string, prefix?: string): Promise<Map<string, unknown>> {
    return this.stores.kvEntries(bucket, prefix);
  }

  kvDelete(bucket: string, key: string): Promise<void> {
    return this.stores.kvDelete(bucket, key);
  }

  objPut(bucket: string, name: string, data: Uint8Array): Promise<void> {
    return this.stores.objPut(bucket, name, data);
  }

  objGet(bucket: string, name: string): Promise<Uint8Array | undefined> {
    return this.stores.objGet(bucket, name);
  }

  objDelete(bucket: string, name: string): Promise<void> {
    return this.stores.objDelete(bucket, name);
  }

  async flush(): Promise<void> {
    await this.connection.flush();
  }

  async close(): Promise<void> {
    if (this.connection.isClosed()) return;
    try {
      await this.connection.drain();
    } catch {
      await this.connection.close();
    }
  }

  private encode(data: unknown, subject: string): Uint8Array {
    return encodePayload(data, subject, this.maxPayload);
  }

  private inbound(msg: Msg): InboundMessage {
    const maxPayload = this.maxPayload;
    return {
      subject: msg.subject,
      reply: msg.reply || undefined,
      data: (): Result<unknown> => decode(msg.data, maxPayload),
      respond: (data: unknown): boolean => {
        if (!msg.reply) return false;
        try {
          return msg.respond(encode(data));
        } catch {
          return false;
        }
      },
    };
  }
}

function invoke(handler: MessageHandler, msg: InboundMessage): void {
  try {
    const r = handler(msg);
    if (r && typeof (r as Promise<void>).then === "function") (r as Promise<void>).catch(() => {});
  } catch {
    // The actor runtime wraps handlers and counts failures; raw users must not crash the client.
  }
}
