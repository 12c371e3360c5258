import { z } from "zod";
import {
  BatchResultKey,
  Count,
  EpochMs,
  Fraction,
  GpuType,
  Id,
  InstanceState,
  ModelId,
  Tier,
  TokenCount,
} from "./domain.js";
import { defineMessage } from "./message.js";

/**
 * Every subject and message type of SageServe, declared once. `docs/subjects.md`
 * is generated from this list (`npm run docs:subjects`) and a test keeps the two
 * in sync. Payloads travel as msgpack maps with a `v` version field added by the
 * runtime.
 */

const now = 1_700_000_000_000;

// ---------------------------------------------------------------- requests

const RequestFields = {
  requestId: Id,
  model: ModelId,
  tier: Tier,
  originRegion: Id,
  inputTokens: TokenCount,
  maxOutputTokens: TokenCount,
  arrivalMs: EpochMs,
  deadlineMs: EpochMs.optional(),
  stream: z.boolean().default(false),
  /** Re-routing attempt (absent on first arrival): a request handed back by an instance that could not serve it. */
  attempt: z.number().int().min(1).max(100).optional(),
  /** Nodes this request already failed on (a re-route after a lost node or engine): not routed there again. */
  avoidNodes: z.array(Id).max(16).optional(),
  /** OpenAI-style request body forwarded to the engine (absent in simulation). */
  body: z.record(z.string(), z.unknown()).optional(),
  /**
   * Who relays the tokens (a gateway's id): InferenceChunk goes to `sage.stream.{streamTo}.{request}`, a
   * subject its listener subscribed to once, long before the request (see InferenceChunk). Absent: `direct`.
   */
  streamTo: Id.optional(),
  /**
   * A Batch API request (`POST /v1/batches`): the node stores the request's outcome under this key of KV
   * `sage-batch-out` (`<batch id>.<line>`) before it reports the request done, and only then is the
   * queued job acknowledged — a job whose node dies runs again, its result replacing any partial one.
   */
  resultKey: BatchResultKey.optional(),
};

/** The `{listener}` of a request that names none (`streamTo` absent): simulator and direct callers. */
export const DIRECT_LISTENER = "direct";

/** The subject a request's tokens stream on. */
export function streamSubjectOf(r: { requestId: string; streamTo?: string | undefined }): string {
  return InferenceChunk.subject.build({ listener: r.streamTo ?? DIRECT_LISTENER, request: r.requestId });
}

/** The params of that subject, for `publish(InferenceChunk, …)`. */
export function streamParams(r: { requestId: string; streamTo?: string | undefined }) {
  return { listener: r.streamTo ?? DIRECT_LISTENER, request: r.requestId };
}

export const RouteRequest = defineMessage({
  name: "RouteRequest",
  kind: "request",
  version: 1,
  subject: "sage.route.{region}.{model}",
  schema: z.object(RequestFields),
  reply: z.object({
    requestId: Id,
    decision: z.enum(["instance", "queued"]),
    region: Id,
    instanceId: Id.optional(),
    nodeId: Id.optional(),
    jobId: Id.optional(),
  }),
  publishers: ["gateway", "simulator"],
  listeners: ["router"],
  queueGroup: "router",
  doc: "Where should this request run? The router answers with an instance (interactive) or a queued job (NIW).",
}).withSample(
  () => ({
    requestId: "r-1",
    model: "llama-3.1-8b",
    tier: "iw-fast",
    originRegion: "westus",
    inputTokens: 512,
    maxOutputTokens: 128,
    arrivalMs: now,
    stream: true,
  }),
  () => ({
    requestId: "r-1",
    decision: "instance",
    region: "westus",
    instanceId: "westus-n1-i0",
    nodeId: "westus-n1",
  }),
);

export const InferenceRequest = defineMessage({
  name: "InferenceRequest",
  kind: "request",
  version: 1,
  subject: "sage.node.{node}.infer",
  schema: z.object({
    ...RequestFields,
    instanceId: Id,
  }),
  reply: z.object({ requestId: Id, accepted: z.boolean(), streamSubject: z.string() }),
  publishers: ["router", "region-agent"],
  listeners: ["node-agent"],
  doc: "Run this request on an instance of the node. Tokens come back as InferenceChunk on the returned stream subject. A node answers (and does not run again) a request id it is already running.",
}).withSample(
  () => ({
    ...RouteRequest.sample(),
    instanceId: "westus-n1-i0",
  }),
  () => ({ requestId: "r-1", accepted: true, streamSubject: "sage.stream.gateway-westus-1.r-1" }),
);

export const RunCheck = defineMessage({
  name: "RunCheck",
  kind: "request",
  version: 1,
  subject: "sage.node.{node}.runs",
  schema: z.object({ requestIds: z.array(Id).max(4096) }),
  reply: z.object({
    /** Of the ids asked about, those the node is running now. */
    running: z.array(Id).max(4096),
    /** Those it finished lately (the last 15 minutes), with the outcome its RequestDone carried. */
    done: z
      .array(z.object({ requestId: Id, outcome: z.enum(["ok", "failed", "cancelled", "rejected"]) }))
      .max(4096),
  }),
  publishers: ["region-agent"],
  listeners: ["node-agent"],
  doc: "Which of these requests is the node running, or has it finished lately? A region agent asks about the NIW jobs it released there that are neither done nor confirmed after 10 s (confirmed ones every 5 minutes): a job in neither list never arrived (core NATS lost the hand-off, e.g. inside a server that died) and is queued again; one done lately whose RequestDone was lost is settled.",
}).withSample(
  () => ({ requestIds: ["r-1", "r-2"] }),
  () => ({ running: ["r-1"], done: [{ requestId: "r-2", outcome: "ok" }] }),
);

export const InferenceChunk = defineMessage({
  name: "InferenceChunk",
  kind: "stream",
  version: 1,
  subject: "sage.stream.{listener}.{request}",
  schema: z.object({
    requestId: Id,
    seq: Count,
    text: z.string().max(1_000_000).optional(),
    tokens: Count,
    done: z.boolean(),
    finishReason: z.enum(["stop", "length", "tool_calls", "content_filter", "error", "cancelled"]).optional(),
    error: z.object({ code: z.string(), message: z.string() }).optional(),
    /** The choice this token belongs to (`n` > 1, or a batch of prompts); absent = 0. */
    index: Count.optional(),
    /** Tool-call deltas of this chunk, as the engine streamed them (OpenAI `delta.tool_calls`). */
    toolCalls: z.array(z.record(z.string(), z.unknown())).max(128).optional(),
    /** Log probabilities of this chunk's tokens, as the engine sent them (OpenAI `choices[].logprobs`). */
    logprobs: z.record(z.string(), z.unknown()).optional(),
    /** On the last chunk: the engine's own token counts (its `usage`), when it reported them. */
    usage: z.object({ promptTokens: Count, completionTokens: Count }).optional(),
  }),
  publishers: ["node-agent", "router"],
  listeners: ["gateway"],
  doc: "Streamed output of one request, in order; a token chunk that ends its choice carries the choice's finishReason; the last chunk has done=true (with the engine's usage when it counted). A router that gives up on a request it held (no instance in time) sends the final chunk with error NO_CAPACITY. `{listener}` is the request's `streamTo` (the relaying gateway's id, `direct` when absent): a gateway subscribes to `sage.stream.<its id>.*` once at start, because across a supercluster a subscription made per request can be announced to the serving region after its first chunks were published there.",
}).withSample(() => ({ requestId: "r-1", seq: 0, text: "Hello", tokens: 1, done: false }));

export const RequestCancel = defineMessage({
  name: "RequestCancel",
  kind: "event",
  version: 1,
  subject: "sage.cancel.{request}",
  schema: z.object({
    requestId: Id,
    /** Why: the client closed the connection or aborted. */
    reason: z.enum(["client-closed"]),
    atMs: EpochMs,
  }),
  publishers: ["gateway"],
  listeners: ["router", "node-agent", "region-agent"],
  doc: "The client went away: the router drops the request if it still holds it, the node agent running it aborts the engine request (its KV cache is freed). Node agents remember cancels for a minute, so one that overtakes its InferenceRequest still counts.",
}).withSample(() => ({ requestId: "r-1", reason: "client-closed", atMs: now }));

export const QuotaUsage = defineMessage({
  name: "QuotaUsage",
  kind: "event",
  version: 1,
  subject: "sage.quota.{key}",
  schema: z.object({
    /** The API key's hash (never the key itself). */
    key: Id,
    /** The gateway instance that counted it (each ignores its own, which it counted already). */
    gateway: Id,
    /** Requests admitted (1), or 0 for a correction. */
    requests: z.number().int().min(0).max(1),
    /** Tokens reserved at admission (prompt estimate + max output), or the correction when it ended. */
    tokens: z.number().int().min(-10_000_000).max(10_000_000),
    /** When the request was admitted: a correction counts in the same second of the window. */
    atMs: EpochMs,
  }),
  publishers: ["gateway"],
  listeners: ["gateway"],
  doc: "A gateway admitted a request under an API key with a per-minute quota, or corrected its tokens when it ended: every gateway adds it to the key's sliding minute, so replicas enforce one limit.",
}).withSample(() => ({
  key: "3f2a9c0d1e4b5a6978877665",
  gateway: "gateway-westus-1a2b",
  requests: 1,
  tokens: 640,
  atMs: now,
}));

export const RequestDone = defineMessage({
  name: "RequestDone",
  kind: "event",
  version: 1,
  subject: "sage.done.{region}.{model}",
  schema: z.object({
    requestId: Id,
    model: ModelId,
    tier: Tier,
    region: Id,
    instanceId: Id,
    /**
     * ok; failed (the system's fault: no capacity, a lost node or engine); cancelled (the client went
     * away); rejected (the engine refused the request as invalid, e.g. past its context: the client's
     * mistake). Cancelled and rejected requests are no SLO misses.
     */
    outcome: z.enum(["ok", "failed", "cancelled", "rejected"]),
    inputTokens: TokenCount,
    outputTokens: TokenCount,
    arrivalMs: EpochMs,
    ttftMs: z.number().nonnegative(),
    tbtMs: z.number().nonnegative(),
    e2eMs: z.number().nonnegative(),
    deadlineMs: EpochMs.optional(),
  }),
  publishers: ["node-agent", "router"],
  listeners: ["region-agent", "dashboard", "router"],
  doc: "One finished request with its latencies: the source of SLO attainment and demand history (live routers correct their demand counts with the engine's prompt tokens).",
}).withSample(() => ({
  requestId: "r-1",
  model: "llama-3.1-8b",
  tier: "iw-fast",
  region: "westus",
  instanceId: "westus-n1-i0",
  outcome: "ok",
  inputTokens: 512,
  outputTokens: 128,
  arrivalMs: now,
  ttftMs: 180,
  tbtMs: 22,
  e2eMs: 3000,
}));

// ---------------------------------------------------------------- load and liveness

export const LoadReport = defineMessage({
  name: "LoadReport",
  kind: "event",
  version: 1,
  subject: "sage.load.{region}.{model}.{instance}",
  schema: z.object({
    instanceId: Id,
    nodeId: Id,
    region: Id,
    model: ModelId,
    gpuType: GpuType,
    state: InstanceState,
    kvUtilization: Fraction,
    memoryUtilization: Fraction,
    running: Count,
    waiting: Count,
    outstandingTokens: Count,
    tokensPerSecond: z.number().nonnegative(),
    /** KV-cache capacity of the instance in tokens (weights utilisation across GPU types). */
    kvCapacityTokens: Count.optional(),
    /**
     * Most sequences the engine runs at once (vLLM's max_num_seqs, SGLang's max_running_requests): with
     * `running` and `waiting` it says when an instance is full although its KV cache is not.
     */
    maxRunning: Count.optional(),
    /**
     * How long the oldest IW-fast / IW-normal request has waited here for its first token (ms; absent
     * = none waiting). An engine that is prefill-bound queues requests while its KV cache and sequence
     * slots look idle; this is the signal that sees it (instanceLoad compares it with the TTFT target).
     */
    iwFastWaitMs: z.number().nonnegative().optional(),
    iwNormalWaitMs: z.number().nonnegative().optional(),
    /**
     * Interactive requests/s arriving here (smoothed over ~30 s) and the interactive requests/s this
     * instance serves with its TTFT SLOs kept (the engine sweep's knee for its model, GPU type and length
     * mix): their ratio is the share of its SLO capacity in use. Absent when not known.
     */
    iwRps: z.number().nonnegative().optional(),
    iwCapacityRps: z.number().positive().optional(),
    /** Pool the instance serves (siloed deployments: "iw" or "niw"); absent = shared. */
    pool: z.string().max(32).optional(),
    atMs: EpochMs,
  }),
  publishers: ["node-agent"],
  listeners: ["router", "region-agent", "planner", "dashboard"],
  doc: "Per-instance load (KV-cache and memory utilisation, queue, throughput), every few seconds.",
}).withSample(() => ({
  instanceId: "westus-n1-i0",
  nodeId: "westus-n1",
  region: "westus",
  model: "llama-3.1-8b",
  gpuType: "A100",
  state: "serving",
  kvUtilization: 0.42,
  memoryUtilization: 0.61,
  running: 12,
  waiting: 0,
  outstandingTokens: 4200,
  tokensPerSecond: 2100,
  maxRunning: 256,
  iwFastWaitMs: 120,
  iwRps: 1.2,
  iwCapacityRps: 4.9,
  atMs: now,
}));

export const Heartbeat = defineMessage({
  name: "Heartbeat",
  kind: "event",
  version: 1,
  subject: "sage.hb.{region}.{node}",
  schema: z.object({
    nodeId: Id,
    region: Id,
    gpuType: GpuType,
    gpus: z.number().int().min(1).max(64),
    spot: z.boolean(),
    instances: z.array(z.object({ instanceId: Id, model: ModelId, state: InstanceState })).max(64),
    ttlMs: z.number().int().positive(),
    seq: Count,
    atMs: EpochMs,
  }),
  publishers: ["node-agent"],
  listeners: ["router", "gateway", "dashboard"],
  doc: "A node is alive and holds these instances; silence for ttlMs means it is gone. seq counts from 1 in each run of the node agent: a seq that does not grow means the node restarted (requests sent to the run before are lost).",
}).withSample(() => ({
  nodeId: "westus-n1",
  region: "westus",
  gpuType: "A100",
  gpus: 8,
  spot: false,
  instances: [{ instanceId: "westus-n1-i0", model: "llama-3.1-8b", state: "serving" }],
  ttlMs: 15_000,
  seq: 1,
  atMs: now,
}));

export const InstanceTransition = defineMessage({
  name: "InstanceTransition",
  kind: "event",
  version: 1,
  subject: "sage.state.{region}.{instance}",
  schema: z.object({
    instanceId: Id,
    nodeId: Id,
    region: Id,
    model: ModelId,
    from: InstanceState,
    to: InstanceState,
    reason: z.string().max(512).optional(),
    atMs: EpochMs,
  }),
  publishers: ["node-agent"],
  listeners: ["auditor"],
  doc: "An instance changed state (booting → loading → serving → draining/spot/swapping …).",
}).withSample(() => ({
  instanceId: "westus-n1-i0",
  nodeId: "westus-n1",
  region: "westus",
  model: "llama-3.1-8b",
  from: "loading",
  to: "serving",
  atMs: now,
}));
