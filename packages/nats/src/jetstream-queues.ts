/**
 * The durable work queues of a NatsBus: JetStream work-queue streams created on first use, publishes
 * retried until the stream acknowledges them, and pull consumers whose messages are acked or given back.
 * Separate from the bus's core pub/sub because JetStream brings its own retries and failure modes.
 */
import { randomUUID } from "node:crypto";
import { decode } from "@sageserve/protocol";
import type { DurableMessage, DurableStream, Subscription } from "@sageserve/runtime";
import { AckPolicy, type NatsConnection, nanos, RetentionPolicy, StorageType } from "nats";
import type { NatsBusSettings } from "./nats-options.js";
import { encodePayload, mapError } from "./nats-wire.js";

export class JetStreamQueues {
  constructor(
    private readonly connection: NatsConnection,
    private readonly settings: NatsBusSettings,
  ) {}

  private readonly streams = new Map<string, Promise<void>>();

  /** Create the work-queue stream once (it may exist already, made by another process), with `jsReplicas` replicas. */
  ensureDurableStream(s: DurableStream): Promise<void> {
    let p = this.streams.get(s.name);
    if (!p) {
      p = (async () => {
        const jsm = await this.connection.jetstreamManager(this.settings.jsOpts);
        try {
          await jsm.streams.info(s.name);
        } catch {
          await jsm.streams.add({
            name: s.name,
            subjects: [...s.subjects],
            retention: RetentionPolicy.Workqueue,
            storage: StorageType.File,
            num_replicas: this.settings.jsReplicas,
            ...(this.settings.jsCluster ? { placement: { cluster: this.settings.jsCluster, tags: [] } } : {}),
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
    const bytes = encodePayload(data, subject, this.settings.maxPayload);
    const msgID = `${this.settings.name}-${randomUUID()}`;
    const deadline = Date.now() + this.settings.durablePublishBudgetMs;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.ensureDurableStream(stream);
        await this.connection
          .jetstream(this.settings.jsOpts)
          .publish(subject, bytes, { msgID, timeout: 2_000 });
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
    const jsm = await this.connection.jetstreamManager(this.settings.jsOpts);
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
    const c = await this.connection.jetstream(this.settings.jsOpts).consumers.get(stream.name, consumer);
    // Pulls expire every 5 s (idle heartbeats every 2.5 s): when the consumer's leader moves to another
    // server of a cluster, two missed heartbeats re-issue the pull within ~5 s instead of the default 30.
    const messages = await c.consume({ max_messages: 512, expires: 5_000 });
    let received = 0;
    let active = true;
    const maxPayload = this.settings.maxPayload;
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
}
