import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import {
  DEFAULT_MAX_PAYLOAD_BYTES,
  decode,
  encode,
  isValidSubject,
  type Result,
  SageError,
} from "@sageserve/protocol";
import {
  AckPolicy,
  type ConnectionOptions,
  connect,
  ErrorCode,
  type KV,
  type Msg,
  type NatsConnection,
  type NatsError,
  nanos,
  nkeyAuthenticator,
  type ObjectStore,
  RequestStrategy,
  RetentionPolicy,
  type Service,
  StorageType,
} from "nats";
import { readSeed } from "./nats-auth.js";
import { AUTH_ROLES, type AuthRole, inboxPrefix } from "./nats-permissions.js";
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

export interface NatsBusOptions {
  /** One URL, a comma-separated list (`NATS_URL=nats://a:4222,nats://b:4222`) or an array: the client fails over between them. */
  servers: string | string[];
  /**
   * Replicas of the JetStream assets this connection creates (the `SAGE_NIW` stream, KV buckets):
   * default `SAGE_JS_REPLICAS`, else 3 when the server is in a cluster of 3 or more, else 1.
   */
  jsReplicas?: number;
  /** Connection name shown in the server's connz. */
  name?: string;
  token?: string;
  user?: string;
  pass?: string;
  /** NKey seed file of this connection's role (`<creds>/<role>.nk`, `NATS_NKEY`). */
  nkeySeedFile?: string;
  /** TLS: the CA that signed the server's certificate, and a client certificate for mutual TLS. */
  tls?: NatsTlsOptions;
  /** Prefix of this connection's reply inboxes (a role's own, `_INBOX_<role>`; default `_INBOX`). */
  inboxPrefix?: string;
  maxPayloadBytes?: number;
  /** Try `servers` in the order given (default: shuffled, which spreads clients over a cluster). */
  noRandomize?: boolean;
  /**
   * The JetStream domain to use (`SAGE_JS_DOMAIN`): a client on a leaf node reaches its hub's JetStream
   * through `$JS.<domain>.API` (docs/deploy.md, leaf nodes).
   */
  jsDomain?: string;
  /** The cluster new JetStream assets are placed in (`SAGE_JS_CLUSTER`): a supercluster's home cluster. */
  jsCluster?: string;
  /** How long `durablePublish` retries a stream that does not acknowledge (default 60 s). */
  durablePublishBudgetMs?: number;
  /** How long the first connection may take before it fails (default 20 s, the client's). */
  connectTimeoutMs?: number;
  /** Called on reconnects, disconnects and errors (log them). */
  onStatus?: (event: { type: string; data: unknown }) => void;
}

export interface NatsTlsOptions {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

/** What a connection authenticates with: an NKey seed file and TLS files. */
export interface NatsClientAuth {
  nkeySeedFile?: string;
  tls?: NatsTlsOptions;
  /** The role's reply inboxes, which its permissions allow (`inboxPrefix(role)`). */
  inboxPrefix?: string;
}

/**
 * Credentials from the environment, named as the `nats` CLI names them: `NATS_NKEY` (seed file),
 * `NATS_CA`, `NATS_CERT`, `NATS_KEY` (TLS), `NATS_INBOX_PREFIX`. With `SAGE_NATS_CREDS` (a directory made by
 * `sageserve nats-auth` / `scripts/gen-nats-auth.ts`) and a role, the seed is `<dir>/<role>.nk`.
 */
export function natsAuthFromEnv(
  role?: string,
  env: Record<string, string | undefined> = process.env,
): NatsClientAuth {
  const out: NatsClientAuth = {};
  const dir = env.SAGE_NATS_CREDS;
  if (dir && role) out.nkeySeedFile = `${dir}/${role}.nk`;
  else if (env.NATS_NKEY) out.nkeySeedFile = env.NATS_NKEY;
  // With credentials, replies come to the role's own inboxes (all its permissions allow).
  if (env.NATS_INBOX_PREFIX) out.inboxPrefix = env.NATS_INBOX_PREFIX;
  else if (out.nkeySeedFile && role && (AUTH_ROLES as readonly string[]).includes(role))
    out.inboxPrefix = inboxPrefix(role as AuthRole);
  const tls: NatsTlsOptions = {};
  if (env.NATS_CA) tls.caFile = env.NATS_CA;
  if (env.NATS_CERT) tls.certFile = env.NATS_CERT;
  if (env.NATS_KEY) tls.keyFile = env.NATS_KEY;
  if (Object.keys(tls).length) out.tls = tls;
  return out;
}

/** How long a KV put keeps retrying "no responders" (a bucket just created in another cluster). */
const KV_PUT_RETRY_MS = 5_000;
/**
 * How long a KV read keeps retrying a timeout or "no responders": when a server of a cluster dies, the
 * bucket's stream has no leader for a few seconds (5–10 s measured, `bench/nats-cluster.ts`) and its reads
 * time out meanwhile; `sageserve status` right after a server loss failed on that.
 */
const KV_READ_RETRY_MS = 20_000;

/** A JetStream hiccup a retry can outlive: a timeout, no responders, or a stream without a leader. */
function transient(e: SageError): boolean {
  return (
    e.code === "TIMEOUT" || e.code === "NO_RESPONDERS" || /temporarily unavailable|no leader/i.test(e.message)
  );
}

/** Live Bus adapter over a real NATS connection (the `nats` package). */
export class NatsBus implements Bus {
  readonly kind = "nats" as const;
  private readonly maxPayload: number;

  /** Replicas of the JetStream assets this connection creates (see `NatsBusOptions.jsReplicas`). */
  readonly jsReplicas: number;
  /** The connection's name (`NatsBusOptions.name`). */
  readonly name: string;
  private readonly durablePublishBudgetMs: number;
  private readonly jsOpts: { domain?: string };
  private readonly jsCluster: string | undefined;

  private constructor(
    readonly connection: NatsConnection,
    opts: NatsBusOptions,
  ) {
    this.maxPayload = opts.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
    this.name = opts.name ?? "sageserve";
    this.durablePublishBudgetMs = opts.durablePublishBudgetMs ?? 60_000;
    const domain = opts.jsDomain ?? process.env.SAGE_JS_DOMAIN;
    this.jsOpts = domain ? { domain } : {};
    this.jsCluster = opts.jsCluster ?? (process.env.SAGE_JS_CLUSTER || undefined);
    this.jsReplicas = resolveJsReplicas(opts.jsReplicas, process.env.SAGE_JS_REPLICAS, connection.info);
    const onStatus = opts.onStatus;
    void (async () => {
      for await (const s of connection.status()) {
        if (String(s.type) === "error") {
          // Asynchronous server errors, e.g. a publish outside this role's permissions.
          const ctx = (s as { permissionContext?: { operation: string; subject: string } }).permissionContext;
          const e = ctx
            ? new SageError("AUTH", `NATS permissions violation: ${ctx.operation} '${ctx.subject}'`, {
                subject: ctx.subject,
              })
            : new SageError(
                /PERMISSION/i.test(String(s.data)) ? "AUTH" : "CLOSED",
                `NATS: ${String(s.data)}`,
              );
          this.errors.push(e);
          if (this.errors.length > 100) this.errors.shift();
        }
        onStatus?.({ type: String(s.type), data: s.data });
      }
    })().catch(() => {});
  }

  /** Recent asynchronous errors the server reported on this connection (last 100), e.g. permission violations. */
  readonly errors: SageError[] = [];

  /** Connect with endless reconnects; the client buffers publishes while reconnecting. */
  static async connect(opts: NatsBusOptions): Promise<NatsBus> {
    const co: ConnectionOptions = {
      servers: natsServerList(opts.servers),
      name: opts.name ?? "sageserve",
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      reconnectJitter: 100,
      pingInterval: 10_000,
      waitOnFirstConnect: false,
    };
    if (opts.token) co.token = opts.token;
    if (opts.user) co.user = opts.user;
    if (opts.pass) co.pass = opts.pass;
    if (opts.connectTimeoutMs !== undefined) co.timeout = opts.connectTimeoutMs;
    if (opts.noRandomize) co.noRandomize = true;
    if (opts.inboxPrefix) co.inboxPrefix = opts.inboxPrefix;
    if (opts.nkeySeedFile) {
      const seed = new TextEncoder().encode(readSeed(opts.nkeySeedFile));
      co.authenticator = nkeyAuthenticator(seed);
    }
    if (opts.tls) {
      if ((opts.tls.certFile === undefined) !== (opts.tls.keyFile === undefined))
        throw new SageError(
          "CONFIG",
          "NATS TLS: a client certificate needs its key, and a key its certificate",
        );
      for (const f of [opts.tls.caFile, opts.tls.certFile, opts.tls.keyFile])
        if (f !== undefined && !existsSync(f)) throw new SageError("CONFIG", `NATS TLS: no file ${f}`);
      co.tls = { ...opts.tls };
    }
    try {
      return new NatsBus(await connect(co), opts);
    } catch (e) {
      const msg = (e as Error).message;
      const auth = /authoriz|authentic|permission|nkey|tls|certificate/i.test(msg);
      throw new SageError(
        auth ? "AUTH" : "CLOSED",
        `cannot connect to NATS at ${String(opts.servers)}: ${msg}`,
        { cause: e },
      );
    }
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

  private readonly streams = new Map<string, Promise<void>>();

  /** Create the work-queue stream once (it may exist already, made by another process), with `jsReplicas` replicas. */
  ensureDurableStream(s: DurableStream): Promise<void> {
    let p = this.streams.get(s.name);
    if (!p) {
      p = (async () => {
        const jsm = await this.connection.jetstreamManager(this.jsOpts);
        try {
          await jsm.streams.info(s.name);
        } catch {
          await jsm.streams.add({
            name: s.name,
            subjects: [...s.subjects],
            retention: RetentionPolicy.Workqueue,
            storage: StorageType.File,
            num_replicas: this.jsReplicas,
            ...(this.jsCluster ? { placement: { cluster: this.jsCluster, tags: [] } } : {}),
          });
        }
      })();
      this.streams.set(s.name, p);
      p.catch(() => this.streams.delete(s.name));
    }
    return p;
  }

  /**
   * Publish to a JetStream stream and wait for its acknowledgement. A stream without a leader for a
   * while (a clustered server died and the stream elects another, 4–10 s on nats-server 2.9) or a
   * connection failing over is retried, with one message id so the stream stores the message once, for
   * up to `durablePublishBudgetMs`; only then, or on an error retrying cannot fix, does it reject.
   */
  async durablePublish(stream: DurableStream, subject: string, data: unknown): Promise<void> {
    const bytes = this.encode(data, subject);
    const msgID = `${this.name}-${randomUUID()}`;
    const deadline = Date.now() + this.durablePublishBudgetMs;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.ensureDurableStream(stream);
        await this.connection.jetstream(this.jsOpts).publish(subject, bytes, { msgID, timeout: 2_000 });
        return;
      } catch (e) {
        const err = mapError(e, subject);
        const fatal = err.code === "AUTH" || err.code === "TOO_LARGE" || this.connection.isClosed();
        if (fatal || Date.now() >= deadline) throw err;
        await new Promise((r) => setTimeout(r, Math.min(2_000, 100 * 2 ** attempt)));
      }
    }
  }

  async durableConsume(
    stream: DurableStream,
    consumer: string,
    filter: string,
    handler: (msg: DurableMessage) => void,
    opts: { ackWaitMs?: number } = {},
  ): Promise<Subscription> {
    await this.ensureDurableStream(stream);
    const jsm = await this.connection.jetstreamManager(this.jsOpts);
    try {
      await jsm.consumers.info(stream.name, consumer);
    } catch {
      await jsm.consumers.add(stream.name, {
        durable_name: consumer,
        ack_policy: AckPolicy.Explicit,
        filter_subject: filter,
        ack_wait: nanos(opts.ackWaitMs ?? 60_000),
        max_ack_pending: 100_000,
      });
    }
    const c = await this.connection.jetstream(this.jsOpts).consumers.get(stream.name, consumer);
    // Pulls expire every 5 s (idle heartbeats every 2.5 s): when the consumer's leader moves to another
    // server of a cluster, two missed heartbeats re-issue the pull within ~5 s instead of the default 30.
    const messages = await c.consume({ max_messages: 512, expires: 5_000 });
    let received = 0;
    let active = true;
    const maxPayload = this.maxPayload;
    void (async () => {
      for await (const m of messages) {
        if (!active) break;
        received++;
        try {
          handler({
            subject: m.subject,
            data: () => decode(m.data, maxPayload),
            ack: () => m.ack(),
            nak: (delayMs) => m.nak(delayMs),
            working: () => m.working(),
          });
        } catch {
          m.nak(1_000); // a failing handler must not lose the message
        }
      }
    })().catch(() => {});
    return {
      subject: filter,
      queue: consumer,
      get received() {
        return received;
      },
      unsubscribe: () => {
        active = false;
        void messages.close();
      },
    };
  }

  private readonly buckets = new Map<string, Promise<KV>>();

  private bucket(name: string, ttlMs?: number): Promise<KV> {
    let b = this.buckets.get(name);
    if (!b) {
      b = this.cacheBucket(
        name,
        this.connection.jetstream(this.jsOpts).views.kv(name, {
          history: 1,
          replicas: this.jsReplicas,
          ...(this.jsCluster ? { placementCluster: this.jsCluster } : {}),
          ...(ttlMs ? { ttl: ttlMs } : {}),
        }),
      );
    }
    return b;
  }

  /** Keep a bucket handle for the next call; a failed one is forgotten so the next call tries again. */
  private cacheBucket(name: string, b: Promise<KV>): Promise<KV> {
    this.buckets.set(name, b);
    b.catch(() => this.buckets.delete(name));
    return b;
  }

  /**
   * Put `value`. "No responders" right after the bucket was created is retried (bounded, ~5 s): across a
   * supercluster the new stream's interest reaches other clusters on its own connection, after the
   * create's reply, so the first put from another region can find no one listening yet. A put is the
   * last value of its key, so a retry cannot duplicate anything.
   */
  async kvPut(bucket: string, key: string, value: unknown, opts: KvPutOptions = {}): Promise<void> {
    const deadline = Date.now() + KV_PUT_RETRY_MS;
    for (let attempt = 0; ; attempt++) {
      try {
        await (await this.bucket(bucket, opts.bucketTtlMs)).put(
          kvKey(key),
          this.encode(value, `$KV.${bucket}`),
        );
        return;
      } catch (e) {
        const err = mapError(e, `$KV.${bucket}.${key}`);
        if (err.code !== "NO_RESPONDERS" || this.connection.isClosed() || Date.now() >= deadline) throw err;
        await new Promise((r) => setTimeout(r, Math.min(500, 25 * 2 ** attempt)));
      }
    }
  }

  /**
   * A reader binds to an existing bucket and never creates one: created here without the writer's TTL, the
   * writer's own create would then fail ("stream name already in use with a different configuration") — a
   * race seen across a leaf node. `undefined` while the bucket does not exist yet (not cached, so the next
   * read binds once the writer has made it).
   */
  private async readBucket(name: string): Promise<KV | undefined> {
    const cached = this.buckets.get(name);
    if (cached) return cached;
    try {
      await (await this.connection.jetstreamManager(this.jsOpts)).streams.info(`KV_${name}`);
    } catch (e) {
      if ((e as Error).message === "stream not found") return undefined;
      throw e;
    }
    return this.cacheBucket(name, this.connection.jetstream(this.jsOpts).views.kv(name, { bindOnly: true }));
  }

  /** Run a KV read, retrying transient JetStream errors (a leaderless bucket after a server loss) for a bound. */
  private async kvRead<T>(subject: string, read: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + KV_READ_RETRY_MS;
    for (let attempt = 0; ; attempt++) {
      try {
        return await read();
      } catch (e) {
        const err = mapError(e, subject);
        if (!transient(err) || this.connection.isClosed() || Date.now() >= deadline) throw err;
        await new Promise((r) => setTimeout(r, Math.min(1_000, 50 * 2 ** attempt)));
      }
    }
  }

  async kvGet(bucket: string, key: string): Promise<unknown | undefined> {
    return this.kvRead(`$KV.${bucket}.${key}`, async () => {
      const kv = await this.readBucket(bucket);
      if (!kv) return undefined;
      const e = await kv.get(kvKey(key));
      if (!e || e.operation !== "PUT" || e.value.length === 0) return undefined;
      const d = decode(e.value, this.maxPayload);
      return d.ok ? d.value : undefined;
    });
  }

  /** Every live entry of a bucket, by key. A bucket that does not exist lists nothing. */
  /**
   * The encoded keys under `prefix` from the bucket's stream info (subjects and counts, paged by the
   * client): one API call, no consumer. `kv.keys()` (an ordered consumer) now and then never finished
   * while the bucket was being written (seen listing batch results as nodes stored them). Deleted keys
   * are still subjects here (their delete marker): readers skip them.
   */
  private async rawKeys(bucket: string, prefix?: string): Promise<string[]> {
    if (prefix !== undefined && prefix !== "" && !prefix.endsWith("."))
      throw new SageError("CONFIG", `a KV key prefix is whole tokens ending in ".", not '${prefix}'`);
    const jsm = await this.connection.jetstreamManager(this.jsOpts);
    const base = `$KV.${bucket}.`;
    const info = await jsm.streams.info(`KV_${bucket}`, {
      subjects_filter: prefix ? `${base}${kvKey(prefix.slice(0, -1))}.>` : `${base}>`,
    });
    return Object.keys(info.state.subjects ?? {})
      .map((subject) => subject.slice(base.length))
      .sort((x, y) => (kvKeyDecode(x) < kvKeyDecode(y) ? -1 : 1));
  }

  async kvKeys(bucket: string, prefix?: string): Promise<string[]> {
    return this.kvRead(`$KV.${bucket}`, async () => {
      if (!(await this.readBucket(bucket))) return [];
      return (await this.rawKeys(bucket, prefix)).map(kvKeyDecode);
    });
  }

  async kvEntries(bucket: string, prefix?: string): Promise<Map<string, unknown>> {
    return this.kvRead(`$KV.${bucket}`, async () => {
      const out = new Map<string, unknown>();
      // Bind, never create (readBucket).
      const kv = await this.readBucket(bucket);
      if (!kv) return out;
      for (const k of await this.rawKeys(bucket, prefix)) {
        const e = await kv.get(k);
        if (!e || e.operation !== "PUT" || e.value.length === 0) continue;
        const d = decode(e.value, this.maxPayload);
        if (d.ok) out.set(kvKeyDecode(k), d.value);
      }
      return out;
    });
  }

  async kvDelete(bucket: string, key: string): Promise<void> {
    const kv = await this.readBucket(bucket);
    if (kv) await kv.delete(kvKey(key));
  }

  private readonly objectStores = new Map<string, Promise<ObjectStore>>();

  /** An object store bucket (created on first use, with the connection's JetStream replicas). */
  private objectStore(name: string): Promise<ObjectStore> {
    let b = this.objectStores.get(name);
    if (!b) {
      b = this.connection.jetstream(this.jsOpts).views.os(name, {
        replicas: this.jsReplicas,
        ...(this.jsCluster ? { placement: { cluster: this.jsCluster, tags: [] } } : {}),
      });
      this.objectStores.set(name, b);
      b.catch(() => this.objectStores.delete(name));
    }
    return b;
  }

  async objPut(bucket: string, name: string, data: Uint8Array): Promise<void> {
    try {
      await (await this.objectStore(bucket)).putBlob({ name }, data);
    } catch (e) {
      throw mapError(e, `$O.${bucket}.${name}`);
    }
  }

  async objGet(bucket: string, name: string): Promise<Uint8Array | undefined> {
    return this.kvRead(`$O.${bucket}.${name}`, async () => {
      const blob = await (await this.objectStore(bucket)).getBlob(name);
      return blob ?? undefined;
    });
  }

  async objDelete(bucket: string, name: string): Promise<void> {
    const os = await this.objectStore(bucket);
    if (await os.info(name)) await os.delete(name);
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
    const bytes = encode(data);
    if (bytes.byteLength > this.maxPayload) {
      throw new SageError("TOO_LARGE", `payload of ${bytes.byteLength} bytes exceeds ${this.maxPayload}`, {
        subject,
      });
    }
    return bytes;
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

/** `servers` as the client takes them: a comma-separated string becomes a list. */
export function natsServerList(servers: string | string[]): string | string[] {
  if (Array.isArray(servers))
    return servers
      .flatMap((s) => s.split(","))
      .map((s) => s.trim())
      .filter(Boolean);
  return servers.includes(",") ? natsServerList([servers]) : servers;
}

/**
 * Replicas for new JetStream assets: the option, else `SAGE_JS_REPLICAS`, else 3 when the server says it
 * is in a cluster (`cluster`) that has 3 or more servers (its `connect_urls`), else 1.
 */
export function resolveJsReplicas(
  option: number | undefined,
  env: string | undefined,
  info: { cluster?: string; connect_urls?: string[] } | undefined,
): number {
  const explicit = option ?? (env ? Number(env) : undefined);
  if (explicit !== undefined) {
    if (!Number.isInteger(explicit) || explicit < 1 || explicit > 5)
      throw new SageError("CONFIG", `JetStream replicas must be an integer from 1 to 5, not '${explicit}'`);
    return explicit;
  }
  return info?.cluster && (info.connect_urls?.length ?? 0) >= 3 ? 3 : 1;
}

/** NATS KV keys allow only [-/_=.a-zA-Z0-9]: anything else is escaped as =xx per UTF-8 byte. */
export function kvKey(key: string): string {
  let out = "";
  for (const ch of key) {
    if (/[-/_.a-zA-Z0-9]/.test(ch)) out += ch;
    else for (const b of new TextEncoder().encode(ch)) out += `=${b.toString(16).padStart(2, "0")}`;
  }
  return out || "=";
}

/** The inverse of `kvKey`. */
export function kvKeyDecode(key: string): string {
  if (key === "=") return "";
  const bytes: number[] = [];
  for (let i = 0; i < key.length; i++) {
    if (key[i] === "=" && /^[0-9a-f]{2}$/.test(key.slice(i + 1, i + 3))) {
      bytes.push(Number.parseInt(key.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(key.charCodeAt(i));
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

function invoke(handler: MessageHandler, msg: InboundMessage): void {
  try {
    const r = handler(msg);
    if (r && typeof (r as Promise<void>).then === "function") (r as Promise<void>).catch(() => {});
  } catch {
    // The actor runtime wraps handlers and counts failures; raw users must not crash the client.
  }
}

function mapError(e: unknown, subject: string, timeoutMs?: number): SageError {
  if (e instanceof SageError) return e;
  const ne = e as NatsError;
  switch (ne?.code) {
    case ErrorCode.Timeout:
      return new SageError(
        "TIMEOUT",
        `request on ${subject} timed out${timeoutMs === undefined ? "" : ` after ${timeoutMs} ms`}`,
        {
          subject,
          cause: e,
        },
      );
    case ErrorCode.NoResponders:
      return new SageError("NO_RESPONDERS", `no responders on ${subject}`, { subject, cause: e });
    case ErrorCode.ConnectionClosed:
    case ErrorCode.ConnectionDraining:
      return new SageError("CLOSED", `connection closed while using ${subject}`, { subject, cause: e });
    case ErrorCode.PermissionsViolation:
      return new SageError("AUTH", `NATS permissions violation on ${subject}: ${(e as Error).message}`, {
        subject,
        cause: e,
      });
    case ErrorCode.MaxPayloadExceeded:
      return new SageError("TOO_LARGE", `payload too large for ${subject}`, { subject, cause: e });
    default:
      return new SageError("CLOSED", `NATS error on ${subject}: ${(e as Error)?.message ?? String(e)}`, {
        subject,
        cause: e,
      });
  }
}
