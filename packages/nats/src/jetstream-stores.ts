/**
 * The key-value and object stores of a NatsBus (JetStream KV buckets and object store buckets): buckets
 * created by writers and only bound by readers, reads retried while a stream has no leader, and keys
 * escaped to what NATS KV allows. Separate from the bus's messaging: state, not messages.
 */
import { decode, errorMessage, SageError } from "@sageserve/protocol";
import type { KvPutOptions } from "@sageserve/runtime";
import type { KV, NatsConnection, ObjectStore } from "nats";
import type { NatsBusSettings } from "./nats-options.js";
import { encodePayload, mapError, transient } from "./nats-wire.js";

/** How long a KV put keeps retrying "no responders" (a bucket just created in another cluster). */
const KV_PUT_RETRY_MS = 5_000;
/**
 * How long a KV read keeps retrying a timeout or "no responders": when a server of a cluster dies, the
 * bucket's stream has no leader for a few seconds (5–10 s measured, `bench/nats-cluster.ts`) and its reads
 * time out meanwhile; `sageserve status` right after a server loss failed on that.
 */
const KV_READ_RETRY_MS = 20_000;
/** How many times a compare-and-set update is tried again after another writer changed the key first. */
const KV_UPDATE_ATTEMPTS = 30;

/**
 * The JetStream API error of a bucket create that lost a race with another client's identical create
 * ("subjects overlap with an existing stream"). Not 10058 ("stream name already in use"): that is a
 * bucket made with another configuration (another TTL), which must not be bound to silently.
 */
const CREATE_RACE_LOST = 10065;

export class JetStreamStores {
  constructor(
    private readonly connection: NatsConnection,
    private readonly settings: NatsBusSettings,
  ) {}

  private readonly buckets = new Map<string, Promise<KV>>();

  private bucket(name: string, ttlMs?: number): Promise<KV> {
    let b = this.buckets.get(name);
    if (!b) {
      const js = this.connection.jetstream(this.settings.jsOpts);
      const opened = js.views
        .kv(name, {
          history: 1,
          replicas: this.settings.jsReplicas,
          ...(this.settings.jsCluster ? { placementCluster: this.settings.jsCluster } : {}),
          ...(ttlMs ? { ttl: ttlMs } : {}),
        })
        // Another client created the same bucket between this one's lookup and its create: use theirs.
        .catch((e: unknown) => {
          if ((e as { api_error?: { err_code?: number } })?.api_error?.err_code === CREATE_RACE_LOST)
            return js.views.kv(name, { bindOnly: true });
          throw e;
        });
      b = this.cacheBucket(name, opened);
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
          encodePayload(value, `$KV.${bucket}`, this.settings.maxPayload),
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
   * Read, change and write a key as one compare-and-set on its revision: a write that another writer
   * beat (JetStream "wrong last sequence", 10071) is retried on the value read again after a jittered
   * backoff, a bounded number of times (then a typed CONFLICT); timeouts and "no responders" are retried
   * for up to 20 s as reads are — after a put whose reply timed out, the key is read first, and holding
   * exactly the bytes written it counts as written (a change is applied again only if another writer
   * changed the key in between).
   */
  async kvUpdate(
    bucket: string,
    key: string,
    change: (current: unknown | undefined) => unknown | undefined,
    opts: KvPutOptions = {},
  ): Promise<unknown | undefined> {
    const deadline = Date.now() + KV_READ_RETRY_MS;
    // A write whose reply was lost (a timeout): it may have landed. If the key then holds exactly these
    // bytes, it did, and the change is not applied a second time.
    let unsure: { bytes: Uint8Array; value: unknown } | undefined;
    let conflicts = 0;
    for (let attempt = 0; ; attempt++) {
      let bytes: Uint8Array | undefined;
      let next: unknown;
      try {
        const kv = await this.bucket(bucket, opts.bucketTtlMs);
        const e = await kv.get(kvKey(key));
        if (
          unsure &&
          e?.operation === "PUT" &&
          Buffer.from(e.value.buffer, e.value.byteOffset, e.value.length).equals(unsure.bytes)
        )
          return unsure.value;
        unsure = undefined;
        let current: unknown;
        if (e?.operation === "PUT" && e.value.length > 0) {
          const d = decode(e.value, this.settings.maxPayload);
          if (d.ok) current = d.value;
        }
        next = change(current);
        if (next === undefined) return current;
        bytes = encodePayload(next, `$KV.${bucket}`, this.settings.maxPayload);
        await kv.put(kvKey(key), bytes, { previousSeq: e ? e.revision : 0 });
        return next;
      } catch (e) {
        if ((e as { api_error?: { err_code?: number } })?.api_error?.err_code === 10071) {
          if (++conflicts > KV_UPDATE_ATTEMPTS)
            throw new SageError(
              "CONFLICT",
              `$KV.${bucket}.${key}: ${KV_UPDATE_ATTEMPTS} writes lost to other writers`,
            );
          // Jittered backoff: writers that collided do not collide again in lockstep.
          await new Promise((r) => setTimeout(r, Math.random() * Math.min(200, 5 * 2 ** conflicts)));
          continue;
        }
        const err = mapError(e, `$KV.${bucket}.${key}`);
        // A timeout or "no responders" (a loaded server, a bucket just created elsewhere, a stream without
        // a leader after a server loss) is tried again, bounded; a put's lost reply is checked first.
        if (!transient(err) || this.connection.isClosed() || Date.now() >= deadline) throw err;
        if (bytes && err.code === "TIMEOUT") unsure = { bytes, value: next };
        await new Promise((r) => setTimeout(r, Math.min(1_000, 50 * 2 ** Math.min(attempt, 5))));
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
      await (await this.connection.jetstreamManager(this.settings.jsOpts)).streams.info(`KV_${name}`);
    } catch (e) {
      if (errorMessage(e) === "stream not found") return undefined;
      throw e;
    }
    return this.cacheBucket(
      name,
      this.connection.jetstream(this.settings.jsOpts).views.kv(name, { bindOnly: true }),
    );
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
      if (e?.operation !== "PUT" || e.value.length === 0) return undefined;
      const d = decode(e.value, this.settings.maxPayload);
      return d.ok ? d.value : undefined;
    });
  }

  /**
   * The encoded keys under `prefix` from the bucket's stream info (subjects and counts, paged by the
   * client): one API call, no consumer. `kv.keys()` (an ordered consumer) now and then never finished
   * while the bucket was being written (seen listing batch results as nodes stored them). Deleted keys
   * are still subjects here (their delete marker): readers skip them.
   */
  private async rawKeys(bucket: string, prefix?: string): Promise<string[]> {
    if (prefix !== undefined && prefix !== "" && !prefix.endsWith("."))
      throw new SageError("CONFIG", `a KV key prefix is whole tokens ending in ".", not '${prefix}'`);
    const jsm = await this.connection.jetstreamManager(this.settings.jsOpts);
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

  /** Every live entry of a bucket, by key. A bucket that does not exist lists nothing. */
  async kvEntries(bucket: string, prefix?: string): Promise<Map<string, unknown>> {
    return this.kvRead(`$KV.${bucket}`, async () => {
      const out = new Map<string, unknown>();
      // Bind, never create (readBucket).
      const kv = await this.readBucket(bucket);
      if (!kv) return out;
      for (const k of await this.rawKeys(bucket, prefix)) {
        const e = await kv.get(k);
        if (e?.operation !== "PUT" || e.value.length === 0) continue;
        const d = decode(e.value, this.settings.maxPayload);
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
      b = this.connection.jetstream(this.settings.jsOpts).views.os(name, {
        replicas: this.settings.jsReplicas,
        ...(this.settings.jsCluster ? { placement: { cluster: this.settings.jsCluster, tags: [] } } : {}),
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
