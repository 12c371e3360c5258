import { randomUUID } from "node:crypto";
import {
  BATCH_RESULTS_BUCKET,
  BatchLineResult,
  type PayloadIn,
  type ReplyOf,
  type Result,
  type RouteRequest,
} from "@sageserve/protocol";
import type { Bus, Clock, Logger } from "@sageserve/runtime";
import {
  BATCH_ENDPOINTS,
  type BatchEndpoint,
  type BatchLine,
  type BatchLineError,
  outputLine,
  parseBatchInput,
  windowMs,
} from "./batch-format.js";
import type { FileStore } from "./files.js";
import type { HttpError } from "./http.js";

/** KV bucket of batches: the OpenAI Batch object plus what the runners need (`sage`). */
export const BATCHES_BUCKET = "sage-batches";

type Status =
  | "validating"
  | "failed"
  | "in_progress"
  | "finalizing"
  | "completed"
  | "expired"
  | "cancelling"
  | "cancelled";

const TERMINAL = new Set<Status>(["failed", "completed", "expired", "cancelled"]);

/** The OpenAI Batch object, as `GET /v1/batches/{id}` returns it. */
export interface BatchObject {
  id: string;
  object: "batch";
  endpoint: BatchEndpoint;
  errors: { object: "list"; data: BatchLineError[] } | null;
  input_file_id: string;
  completion_window: string;
  status: Status;
  output_file_id: string | null;
  error_file_id: string | null;
  created_at: number;
  in_progress_at: number | null;
  expires_at: number;
  finalizing_at: number | null;
  completed_at: number | null;
  failed_at: number | null;
  expired_at: number | null;
  cancelling_at: number | null;
  cancelled_at: number | null;
  request_counts: { total: number; completed: number; failed: number };
  metadata: Record<string, string> | null;
}

/** A batch as stored: the object and the runners' state. */
export interface StoredBatch extends BatchObject {
  sage: {
    /** Lines handed to the routers so far (a runner taking the batch over resumes here). */
    submitted: number;
    /** The gateway running the batch, and when it last said so (a runner silent for OWNER_TTL_MS is replaced). */
    owner: string;
    ownerAtMs: number;
    /** Home region of the batch's requests (the gateway's it was created on). */
    region: string;
    /** Cancels sent for the unfinished lines (cancel or expiry). */
    cancelSentAtMs?: number;
    /** Past its window: closed as `expired` once its unfinished lines are cancelled. */
    expiring?: boolean;
  };
}

/** What the batch API needs from the gateway: the bus's KV, the routers, cancels, time. */
export interface BatchPorts {
  bus: Pick<Bus, "kvPut" | "kvGet" | "kvUpdate" | "kvEntries" | "kvKeys">;
  files: FileStore;
  clock: Clock;
  log: Logger;
  /** This gateway's id (the owner of the batches it runs). */
  self: string;
  region: string;
  models: readonly string[];
  defaultMaxTokens: number;
  route(payload: PayloadIn<typeof RouteRequest>): Promise<Result<ReplyOf<typeof RouteRequest>>>;
  cancel(requestId: string): void;
  /** A runner silent this long is replaced by another gateway (default OWNER_TTL_MS). */
  ownerTtlMs?: number;
}

/** A runner that has not touched its batch for this long is presumed gone; another gateway takes over. */
const OWNER_TTL_MS = 15_000;
/** Lines routed at once while submitting a batch. */
const SUBMIT_CONCURRENCY = 16;
/** After cancels went out, how long running lines get to report before the batch is closed. */
const CANCEL_GRACE_MS = 5_000;
/** How long a batch is kept after its last change (its results live 8 days, its files until deleted). */
const BATCH_TTL_MS = 30 * 86_400_000;
const BATCH_ID = /^batch_[0-9a-f]{32}$/;

const badRequest = (message: string, param?: string, code = "invalid_value"): HttpError => ({
  status: 400,
  message,
  type: "invalid_request_error",
  code,
  ...(param ? { param } : {}),
});

export const lineRequestId = (batchId: string, i: number): string => `rb-${batchId.slice(6)}-${i}`;

/** The public view: the stored batch without the runners' state. */
export function batchView(b: StoredBatch): BatchObject {
  const { sage: _sage, ...view } = b;
  return view;
}

/**
 * The OpenAI Batch API. A batch's requests go to the routers as NIW (batch tier) requests with the
 * batch's deadline (created + completion_window) and a result key; the region agents release them
 * into spare capacity; each node stores its request's result in KV `sage-batch-out` before the queued
 * job is acknowledged. Every gateway runs `tick()`: it keeps the batches it owns moving (submission,
 * counts, cancel, expiry, the output and error files) and takes over a batch whose owner went silent.
 */
export class Batches {
  private readonly submitting = new Set<string>();
  /** Batches seen closed (they never change again): not read on later ticks. */
  private readonly closed = new Set<string>();
  /** Results already read, per open batch (results are final once stored). */
  private readonly seenResults = new Map<string, Map<number, BatchLineResult>>();

  constructor(private readonly p: BatchPorts) {}

  private nowS(): number {
    return Math.floor(this.p.clock.now() / 1000);
  }

  async create(body: Record<string, unknown>): Promise<{ status: number; body: unknown } | HttpError> {
    const endpoint = body.endpoint;
    if (!BATCH_ENDPOINTS.includes(endpoint as BatchEndpoint))
      return badRequest(`endpoint must be one of ${BATCH_ENDPOINTS.join(", ")}`, "endpoint");
    const window = windowMs(body.completion_window);
    if (window === undefined)
      return badRequest("completion_window must be '<hours>h', 1 to 168 (e.g. '24h')", "completion_window");
    if (typeof body.input_file_id !== "string")
      return badRequest("input_file_id is required", "input_file_id", "missing_required_parameter");
    const metadata = body.metadata ?? null;
    if (metadata !== null && (typeof metadata !== "object" || Array.isArray(metadata)))
      return badRequest("metadata must be an object of strings", "metadata");
    const file = await this.p.files.get(body.input_file_id);
    if (!file)
      return {
        status: 404,
        message: `no file ${body.input_file_id}`,
        type: "invalid_request_error",
        code: "file_not_found",
        param: "input_file_id",
      };
    if (file.purpose !== "batch")
      return badRequest(`file ${file.id} has purpose '${file.purpose}', not 'batch'`, "input_file_id");
    const parsed = await this.readInput(file.id, endpoint as BatchEndpoint);
    const now = this.p.clock.now();
    const created = this.nowS();
    const id = `batch_${randomUUID().replace(/-/g, "")}`;
    const failed = "errors" in parsed;
    const batch: StoredBatch = {
      id,
      object: "batch",
      endpoint: endpoint as BatchEndpoint,
      errors: failed ? { object: "list", data: parsed.errors } : null,
      input_file_id: file.id,
      completion_window: String(body.completion_window),
      status: failed ? "failed" : "in_progress",
      output_file_id: null,
      error_file_id: null,
      created_at: created,
      in_progress_at: failed ? null : created,
      expires_at: Math.floor((now + window) / 1000),
      finalizing_at: null,
      completed_at: null,
      failed_at: failed ? created : null,
      expired_at: null,
      cancelling_at: null,
      cancelled_at: null,
      request_counts: { total: failed ? 0 : parsed.lines.length, completed: 0, failed: 0 },
      metadata: metadata as Record<string, string> | null,
      sage: { submitted: 0, owner: this.p.self, ownerAtMs: now, region: this.p.region },
    };
    await this.save(batch);
    if (!failed) void this.submit(batch, parsed.lines);
    return { status: 200, body: batchView(batch) };
  }

  async get(id: string): Promise<StoredBatch | undefined> {
    if (!BATCH_ID.test(id)) return undefined;
    const v = await this.p.bus.kvGet(BATCHES_BUCKET, id);
    return typeof v === "object" && v !== null ? (v as StoredBatch) : undefined;
  }

  async list(
    limit: number,
    after?: string,
  ): Promise<{
    object: "list";
    data: BatchObject[];
    has_more: boolean;
    first_id: string | null;
    last_id: string | null;
  }> {
    const all = ([...(await this.p.bus.kvEntries(BATCHES_BUCKET)).values()] as StoredBatch[]).sort(
      (a, b) => b.created_at - a.created_at || (a.id < b.id ? 1 : -1),
    );
    const start = after ? all.findIndex((b) => b.id === after) + 1 : 0;
    const page = all.slice(start, start + limit).map(batchView);
    return {
      object: "list",
      data: page,
      has_more: start + limit < all.length,
      first_id: page[0]?.id ?? null,
      last_id: page[page.length - 1]?.id ?? null,
    };
  }

  /** `POST /v1/batches/{id}/cancel`: unfinished requests are cancelled; done ones stay in the output. */
  async cancel(id: string): Promise<StoredBatch | undefined | HttpError> {
    const b = await this.get(id);
    if (!b) return undefined;
    if (b.status === "cancelling" || b.status === "cancelled") return b;
    if (TERMINAL.has(b.status) || b.status === "finalizing")
      return {
        status: 409,
        message: `batch ${id} is ${b.status}: it cannot be cancelled`,
        type: "invalid_request_error",
        code: "batch_not_cancellable",
      };
    return this.update(id, (fresh) => {
      if (fresh.status !== "in_progress" && fresh.status !== "validating") return;
      fresh.status = "cancelling";
      fresh.cancelling_at = this.nowS();
    });
  }

  /** One pass over the batches: each unfinished one this gateway owns (or takes over) moves on. */
  async tick(): Promise<void> {
    const now = this.p.clock.now();
    // Keys in one call; only batches not known to be closed are read.
    for (const id of await this.p.bus.kvKeys(BATCHES_BUCKET)) {
      if (this.closed.has(id)) continue;
      const b = await this.get(id);
      if (!b) continue;
      if (TERMINAL.has(b.status)) {
        this.closed.add(id);
        this.seenResults.delete(id);
        continue;
      }
      if (b.sage.owner !== this.p.self) {
        if (now - b.sage.ownerAtMs < (this.p.ownerTtlMs ?? OWNER_TTL_MS)) continue;
        this.p.log.warn({ batch: b.id, from: b.sage.owner }, "batch runner silent: taking the batch over");
      }
      try {
        await this.advance(b);
      } catch (e) {
        this.p.log.warn({ batch: b.id, error: String(e) }, "batch not advanced (next tick retries)");
      }
    }
  }

  private async advance(seen: StoredBatch): Promise<void> {
    const now = this.p.clock.now();
    const results = await this.results(seen.id);
    let completed = 0;
    let failed = 0;
    for (const r of results.values()) r.outcome === "ok" ? completed++ : failed++;
    // Changes go onto the latest stored batch (a cancel may have landed since it was listed).
    let close: "completed" | "cancelled" | "expired" | undefined;
    let cancelLines = false;
    const b = await this.update(seen.id, (fresh) => {
      close = undefined;
      cancelLines = false;
      fresh.sage.owner = this.p.self;
      fresh.sage.ownerAtMs = now;
      fresh.request_counts = { total: fresh.request_counts.total, completed, failed };
      if (fresh.status === "in_progress" && now >= fresh.expires_at * 1000) {
        fresh.status = "cancelling";
        fresh.cancelling_at = this.nowS();
        fresh.sage.expiring = true;
      }
      if (fresh.status === "cancelling") {
        if (fresh.sage.cancelSentAtMs === undefined) {
          cancelLines = true;
          fresh.sage.cancelSentAtMs = now;
        }
        if (results.size >= fresh.request_counts.total || now - fresh.sage.cancelSentAtMs >= CANCEL_GRACE_MS)
          close = fresh.sage.expiring ? "expired" : "cancelled";
      } else if (results.size >= fresh.request_counts.total) close = "completed";
    });
    if (!b || TERMINAL.has(b.status)) return;
    if (cancelLines)
      for (let i = 0; i < b.request_counts.total; i++)
        if (!results.has(i)) this.p.cancel(lineRequestId(b.id, i));
    if (close) return this.finalize(b, results, close);
    if (
      b.status === "in_progress" &&
      b.sage.submitted < b.request_counts.total &&
      !this.submitting.has(b.id)
    ) {
      const parsed = await this.readInput(b.input_file_id, b.endpoint);
      if ("lines" in parsed) void this.submit(b, parsed.lines);
    }
  }

  /**
   * Apply `change` to the latest stored batch and store it as one compare-and-set (undefined: no such
   * batch). Two gateways write a batch — its runner on every tick, any gateway on a cancel — and a plain
   * read-then-write let a tick that read before a cancel store its stale copy over it: the cancel was
   * lost and the batch ran to `completed`. `change` runs again on the batch read anew when another
   * write came between, so it must set everything it reports from scratch.
   */
  private async update(id: string, change: (b: StoredBatch) => void): Promise<StoredBatch | undefined> {
    if (!BATCH_ID.test(id)) return undefined;
    const stored = await this.p.bus.kvUpdate(
      BATCHES_BUCKET,
      id,
      (v) => {
        if (typeof v !== "object" || v === null) return undefined;
        change(v as StoredBatch);
        return v;
      },
      { bucketTtlMs: BATCH_TTL_MS },
    );
    return typeof stored === "object" && stored !== null ? (stored as StoredBatch) : undefined;
  }

  /** Route every line not yet routed (from `sage.submitted` on), a few at a time, checkpointing progress. */
  private async submit(b: StoredBatch, lines: BatchLine[]): Promise<void> {
    if (this.submitting.has(b.id)) return;
    this.submitting.add(b.id);
    try {
      const deadlineMs = b.expires_at * 1000;
      let next = b.sage.submitted;
      while (next < lines.length) {
        const upto = Math.min(lines.length, next + SUBMIT_CONCURRENCY);
        const replies = await Promise.all(
          lines.slice(next, upto).map((line, k) => this.p.route(this.payload(b, line, next + k, deadlineMs))),
        );
        const refused = replies.find((r) => !r.ok);
        if (refused && !refused.ok) {
          this.p.log.warn(
            { batch: b.id, line: next, error: refused.error.message },
            "batch lines not routed yet (retried)",
          );
          return;
        }
        next = upto;
        const fresh = await this.update(b.id, (f) => {
          f.sage.submitted = Math.max(f.sage.submitted, upto);
          f.sage.owner = this.p.self;
          f.sage.ownerAtMs = this.p.clock.now();
        });
        if (fresh?.status !== "in_progress") return;
      }
    } finally {
      this.submitting.delete(b.id);
    }
  }

  private payload(
    b: StoredBatch,
    line: BatchLine,
    i: number,
    deadlineMs: number,
  ): PayloadIn<typeof RouteRequest> {
    return {
      requestId: lineRequestId(b.id, i),
      model: line.model,
      tier: "niw",
      originRegion: b.sage.region,
      inputTokens: line.promptTokens,
      maxOutputTokens: line.maxTokens,
      arrivalMs: b.created_at * 1000,
      deadlineMs,
      stream: false,
      body: { ...line.body, stream: true },
      resultKey: `${b.id}.${i}`,
    };
  }

  /**
   * The stored results of a batch's lines, by line index. A result is stored once, when final (the node
   * agent writes it before its RequestDone and only for the last attempt), so each tick lists the keys in
   * one call and reads only the results it has not seen — not every result of every open batch again.
   */
  private async results(id: string): Promise<Map<number, BatchLineResult>> {
    let known = this.seenResults.get(id);
    if (!known) {
      known = new Map();
      this.seenResults.set(id, known);
    }
    for (const key of await this.p.bus.kvKeys(BATCH_RESULTS_BUCKET, `${id}.`)) {
      const line = Number(key.slice(id.length + 1));
      if (known.has(line)) continue;
      const r = BatchLineResult.safeParse(await this.p.bus.kvGet(BATCH_RESULTS_BUCKET, key));
      if (r.success) known.set(line, r.data);
    }
    return known;
  }

  /**
   * Write the output file (successes) and the error file (refusals and failures) in input order, then
   * close the batch. File ids are derived from the batch id: two runners finalising at once write the same.
   */
  private async finalize(
    b: StoredBatch,
    results: Map<number, BatchLineResult>,
    status: "completed" | "cancelled" | "expired",
  ): Promise<void> {
    const parsed = await this.readInput(b.input_file_id, b.endpoint);
    const lines = "lines" in parsed ? parsed.lines : [];
    const chat = b.endpoint === "/v1/chat/completions";
    const out: string[] = [];
    const errs: string[] = [];
    lines.forEach((line, i) => {
      const r = results.get(i);
      if (!r) return;
      const o = outputLine(b.id, i, line, chat, r, Math.floor(r.atMs / 1000));
      (o.ok ? out : errs).push(JSON.stringify(o.line));
    });
    const enc = new TextEncoder();
    if (out.length)
      b.output_file_id = (
        await this.p.files.put(
          `${b.id}_output.jsonl`,
          "batch_output",
          enc.encode(`${out.join("\n")}\n`),
          `file-${b.id}-output`,
        )
      ).id;
    if (errs.length)
      b.error_file_id = (
        await this.p.files.put(
          `${b.id}_error.jsonl`,
          "batch_output",
          enc.encode(`${errs.join("\n")}\n`),
          `file-${b.id}-error`,
        )
      ).id;
    const now = this.nowS();
    await this.update(b.id, (f) => {
      if (TERMINAL.has(f.status)) return; // another runner closed it meanwhile
      f.output_file_id = b.output_file_id;
      f.error_file_id = b.error_file_id;
      f.finalizing_at ??= now;
      f.status = status;
      if (status === "completed") f.completed_at = now;
      else if (status === "cancelled") f.cancelled_at = now;
      else f.expired_at = now;
    });
    this.p.log.info(
      { batch: b.id, status, completed: b.request_counts.completed, failed: b.request_counts.failed },
      "batch closed",
    );
  }

  private async readInput(fileId: string, endpoint: BatchEndpoint) {
    const bytes = await this.p.files.content(fileId);
    const text = bytes ? new TextDecoder().decode(bytes) : "";
    return parseBatchInput(text, endpoint, this.p.models, this.p.defaultMaxTokens);
  }

  private save(b: StoredBatch): Promise<void> {
    return this.p.bus.kvPut(BATCHES_BUCKET, b.id, b, { bucketTtlMs: BATCH_TTL_MS });
  }
}
