/**
 * The two ports every actor is written against. Live: NATS + wall clock.
 * Simulated: in-memory bus + discrete-event virtual clock. Actor code never
 * touches Date.now(), setTimeout or Math.random() directly.
 */
import type { Result, SageError } from "@sageserve/protocol";

// ------------------------------------------------------------------ Bus

export interface InboundMessage {
  readonly subject: string;
  /** Reply subject when the sender expects an answer. */
  readonly reply: string | undefined;
  /**
   * The payload is an in-process value from a publisher in the same build (the
   * in-memory bus without a codec): it already passed its schema on the way out,
   * so receivers may skip re-validation. Never set for bytes from the network.
   */
  readonly trusted?: boolean;
  /** With `trusted`: the in-process value itself (what `data()` would return), read without a copy. */
  readonly value?: unknown;
  /** The decoded payload; a DECODE/TOO_LARGE error value for garbage. Never throws. */
  data(): Result<unknown>;
  /** Answer a request; false when there is no reply subject. */
  respond(data: unknown): boolean;
}

export type MessageHandler = (msg: InboundMessage) => void | Promise<void>;

export interface Subscription {
  readonly subject: string;
  readonly queue: string | undefined;
  unsubscribe(): void;
  /** Messages delivered so far. */
  readonly received: number;
}

export interface SubscribeOptions {
  /** Queue group: each message goes to one member of the group. */
  queue?: string;
}

export interface RequestOptions {
  timeoutMs: number;
}

/** A service as `nats micro ls/info/stats` shows it. */
export interface ServiceSpec {
  /** Service type name, e.g. "planner", "router", "region-agent". */
  name: string;
  version: string;
  description: string;
  /** Unique per running actor; also used as the default (broadcast) queue name. */
  instanceId: string;
  metadata?: Record<string, string>;
  /** Extra data shown in each endpoint's stats (e.g. rejected-message counters). */
  stats?: () => unknown;
}

export interface ServiceHandle {
  /** Add an endpoint: a subscription visible in the service's info and stats. */
  addEndpoint(name: string, subject: string, handler: MessageHandler, opts?: SubscribeOptions): Subscription;
  stop(): Promise<void>;
}

export interface ServiceInfo {
  name: string;
  id: string;
  version: string;
  description: string;
  metadata: Record<string, string>;
  endpoints: { name: string; subject: string; queue: string | undefined }[];
}

/** A message held in a durable queue: it stays there until acknowledged. */
export interface DurableMessage {
  readonly subject: string;
  /** As InboundMessage's: an in-process value its publisher checked (never set for network bytes). */
  readonly trusted?: boolean;
  readonly value?: unknown;
  data(): Result<unknown>;
  /** Done with it: remove it from the queue. */
  ack(): void;
  /** Give it back for redelivery (after `delayMs`). */
  nak(delayMs?: number): void;
  /** Still holding it: postpone redelivery (live: resets JetStream's ack timer). */
  working(): void;
}

export interface DurableStream {
  /** Stream name, e.g. "SAGE_NIW". */
  name: string;
  /** Subjects it captures, e.g. ["sage.niw.>"]. */
  subjects: readonly string[];
}

export interface KvPutOptions {
  /**
   * Entries of this bucket expire this long after their last write (set when the bucket is first
   * used; NATS KV bucket max age), so a writer that stops — a dead node — disappears.
   */
  bucketTtlMs?: number;
}

export interface Bus {
  readonly kind: "nats" | "memory";
  /**
   * Whether a durable message a consumer holds unacknowledged is delivered again after its ack wait
   * (JetStream: yes, unless `working()` resets the timer). The in-memory queue leaves a held message with
   * its consumer until it is acknowledged or given back, so there `working()` does nothing and a holder
   * of millions of batch jobs (a simulated paper-scale day) need not call it on each of them.
   */
  readonly durableRedelivery: boolean;
  /**
   * Every receiver trusts what is published here as it is (the simulator's in-process bus without
   * validation): actors skip the envelope version, which only a validating receiver reads.
   */
  readonly versionless?: boolean;
  /** `validated`: the caller checked the payload against its schema (lets in-process receivers trust it). */
  publish(subject: string, data: unknown, opts?: { reply?: string; validated?: boolean }): void;
  /** Publish already-encoded bytes (bridges, replay, fuzzing). */
  publishRaw(subject: string, bytes: Uint8Array, opts?: { reply?: string }): void;
  subscribe(subject: string, handler: MessageHandler, opts?: SubscribeOptions): Subscription;
  /** Resolves with the reply, or rejects with a SageError (TIMEOUT, NO_RESPONDERS, CLOSED). */
  request(subject: string, data: unknown, opts: RequestOptions): Promise<InboundMessage>;
  registerService(spec: ServiceSpec): Promise<ServiceHandle>;
  /** Services currently registered anywhere on the bus. */
  discover(opts?: { name?: string; timeoutMs?: number }): Promise<ServiceInfo[]>;
  /**
   * Key-value state shared through the bus (NATS KV live, a map in memory): the latest plan, node
   * liveness. Values are encoded like messages; `kvGet` of a missing key is undefined.
   */
  kvPut(bucket: string, key: string, value: unknown, opts?: KvPutOptions): Promise<void>;
  kvGet(bucket: string, key: string): Promise<unknown | undefined>;
  /**
   * Read, change and write one key as one step against every other writer: a compare-and-set on the
   * key's revision (NATS KV), retried on a conflict with the value read again. `change` gets the current
   * value (undefined: no such key) and returns the value to store, or undefined to leave the key as it
   * is; it may run more than once. Resolves with the value stored, or the current one when left.
   */
  kvUpdate(
    bucket: string,
    key: string,
    change: (current: unknown | undefined) => unknown | undefined,
    opts?: KvPutOptions,
  ): Promise<unknown | undefined>;
  /**
   * Every live entry of a bucket (empty when the bucket does not exist; never creates it); with `prefix`
   * (whole key tokens, ending in "."), only the keys under it.
   */
  kvEntries(bucket: string, prefix?: string): Promise<Map<string, unknown>>;
  /**
   * The keys of a bucket (as `kvEntries`, without reading a value: one call live). A key deleted by
   * `kvDelete` may still be listed (its delete marker); `kvGet` of it is undefined.
   */
  kvKeys(bucket: string, prefix?: string): Promise<string[]>;
  /** Remove a key (nothing when the bucket or key does not exist). */
  kvDelete(bucket: string, key: string): Promise<void>;
  /**
   * Blobs too large for a message — batch input and output files (the JetStream object store live, a
   * map in memory). `objGet` of a missing name is undefined.
   */
  objPut(bucket: string, name: string, data: Uint8Array): Promise<void>;
  objGet(bucket: string, name: string): Promise<Uint8Array | undefined>;
  objDelete(bucket: string, name: string): Promise<void>;
  /**
   * Durable work queue (JetStream work-queue stream live; an in-memory queue in simulation). A message
   * published here is kept until a consumer acknowledges it — whoever published it may restart freely.
   * The promise resolves when the server has stored it.
   */
  durablePublish(stream: DurableStream, subject: string, data: unknown): Promise<void>;
  /**
   * Consume a durable stream under a durable consumer name, messages matching `filter` only. Messages
   * not acknowledged within `ackWaitMs` (unless `working()` is called) are delivered again — to this
   * consumer or to its successor after a restart.
   */
  durableConsume(
    stream: DurableStream,
    consumer: string,
    filter: string,
    handler: (msg: DurableMessage) => void,
    opts?: { ackWaitMs?: number },
  ): Promise<Subscription>;
  /** Wait until everything published so far has reached the server (live) or been delivered (memory). */
  flush(): Promise<void>;
  /** Stop accepting new messages, deliver what is in flight, then close. */
  close(): Promise<void>;
  readonly closed: boolean;
}

export type BusError = SageError;

// ------------------------------------------------------------------ Clock

export interface Timer {
  cancel(): void;
}

export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [min, max] (inclusive). */
  int(min: number, max: number): number;
  /** Exponential with the given mean. */
  exponential(mean: number): number;
  pick<T>(items: readonly T[]): T;
}

export interface Clock {
  readonly kind: "wall" | "virtual";
  /** Milliseconds since the Unix epoch (virtual time in simulation). */
  now(): number;
  setTimer(delayMs: number, fn: () => void): Timer;
  every(intervalMs: number, fn: () => void): Timer;
  /**
   * Run fn on a cron schedule (5 fields, or 6 with seconds first), in UTC unless a
   * timezone is given. Throws SageError CONFIG on an invalid expression.
   */
  schedule(cron: string, fn: (firedAtMs: number) => void, opts?: { timezone?: string }): Timer;
  sleep(ms: number): Promise<void>;
  /** A seeded random stream; the same name and seed always give the same sequence. */
  rng(stream: string): Rng;
}
