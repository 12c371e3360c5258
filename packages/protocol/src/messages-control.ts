import { z } from "zod";
import {
  BatchResultKey,
  Count,
  EpochMs,
  GpuType,
  Id,
  InstanceState,
  ModelId,
  Tier,
  TierCounts,
  TokenCount,
} from "./domain.js";
import { defineMessage } from "./message.js";
import { InferenceChunk } from "./messages.js";

/** Commands, plans, demand and the NIW queue: the slower control loops. */

const now = 1_700_000_000_000;

export const NODE_ACTIONS = ["load", "unload", "swap", "drain", "make-spot", "reclaim"] as const;

export const NodeCommand = defineMessage({
  name: "NodeCommand",
  kind: "request",
  version: 1,
  subject: "sage.node.{node}.cmd",
  schema: z.object({
    commandId: Id,
    action: z.enum(NODE_ACTIONS),
    model: ModelId.optional(),
    instanceId: Id.optional(),
    /** Pool the instance joins after load/swap/reclaim (siloed deployments). */
    pool: z.string().max(32).optional(),
    reason: z.string().max(512).optional(),
    issuedAtMs: EpochMs,
  }),
  reply: z.object({
    commandId: Id,
    accepted: z.boolean(),
    state: InstanceState.optional(),
    etaMs: z.number().nonnegative().optional(),
    message: z.string().max(1024).optional(),
  }),
  publishers: ["region-agent", "cli"],
  listeners: ["node-agent"],
  doc: "Load, unload or swap a model (warm migration), drain, lend as spot, or reclaim from spot.",
}).withSample(
  () => ({ commandId: "c-1", action: "swap", model: "llama-3.1-70b", issuedAtMs: now }),
  () => ({ commandId: "c-1", accepted: true, state: "swapping", etaMs: 150_000 }),
);

export const VmCommand = defineMessage({
  name: "VmCommand",
  kind: "request",
  version: 1,
  subject: "sage.vm.{region}.cmd",
  schema: z.object({
    commandId: Id,
    action: z.enum(["boot", "release"]),
    gpuType: GpuType,
    nodeId: Id.optional(),
    model: ModelId.optional(),
    pool: z.string().max(32).optional(),
    issuedAtMs: EpochMs,
  }),
  reply: z.object({
    commandId: Id,
    accepted: z.boolean(),
    nodeId: Id.optional(),
    etaMs: z.number().nonnegative().optional(),
    message: z.string().max(1024).optional(),
  }),
  publishers: ["region-agent"],
  listeners: ["vm-provider"],
  queueGroup: "vm-provider",
  doc: "Boot a new VM of a GPU type (optionally with a model to load) or release one back to the cloud.",
}).withSample(
  () => ({ commandId: "c-2", action: "boot", gpuType: "H100", model: "llama-3.1-8b", issuedAtMs: now }),
  () => ({ commandId: "c-2", accepted: true, nodeId: "westus-n7", etaMs: 155_000 }),
);

const PlanTarget = z.object({
  model: ModelId,
  region: Id,
  gpuType: GpuType,
  instances: Count,
  delta: z.number().int(),
});

export const Plan = defineMessage({
  name: "Plan",
  kind: "event",
  version: 1,
  subject: "sage.plan",
  schema: z.object({
    planId: Id,
    createdAtMs: EpochMs,
    windowStartMs: EpochMs,
    windowEndMs: EpochMs,
    strategy: z.string().max(64),
    targets: z.array(PlanTarget).max(100_000),
    routing: z
      .array(z.object({ model: ModelId, from: Id, to: Id, fraction: z.number().min(0).max(1) }))
      .max(100_000),
    forecast: z
      .array(
        z.object({
          model: ModelId,
          region: Id,
          tier: Tier.optional(),
          tokensPerSecond: z.number().nonnegative(),
          /**
           * Forecast interactive demand over the window in bins of `binMinutes` (each bin's peak minute,
           * tokens/s): when in the window the plan's capacity is needed, so agents bring it up ahead.
           */
          profile: z.array(z.number().nonnegative()).max(1_000).optional(),
          binMinutes: z.number().int().positive().optional(),
        }),
      )
      .max(100_000),
    /** Batch capacity the plan reserves per (model, region): what the NIW backlog needs to meet its deadlines. */
    niw: z
      .array(z.object({ model: ModelId, region: Id, tokensPerSecond: z.number().nonnegative() }))
      .max(100_000)
      .optional(),
    solver: z.object({
      status: z.enum(["optimal", "feasible", "relaxed", "infeasible", "timeout"]),
      objective: z.number(),
      gap: z.number().nonnegative().optional(),
      solveMs: z.number().nonnegative(),
    }),
    notes: z.array(z.string().max(1024)).max(1000),
  }),
  publishers: ["planner"],
  listeners: ["region-agent", "router", "dashboard"],
  doc: "The hourly capacity plan: instances per model × region × GPU type, routing fractions and the forecast behind them.",
}).withSample(() => ({
  planId: "p-1",
  createdAtMs: now,
  windowStartMs: now,
  windowEndMs: now + 3_600_000,
  strategy: "lt-ua",
  targets: [{ model: "llama-3.1-8b", region: "westus", gpuType: "A100", instances: 4, delta: 1 }],
  routing: [{ model: "llama-3.1-8b", from: "westus", to: "eastus", fraction: 0.1 }],
  forecast: [{ model: "llama-3.1-8b", region: "westus", tokensPerSecond: 52_000 }],
  solver: { status: "optimal", objective: 123.4, gap: 0, solveMs: 420 },
  notes: [],
}));

export const PlanRequest = defineMessage({
  name: "PlanRequest",
  kind: "request",
  version: 1,
  subject: "sage.plan.request",
  schema: z.object({ reason: z.string().max(512), requestedBy: Id.optional() }),
  reply: z.object({
    planId: Id,
    status: z.enum(["optimal", "feasible", "relaxed", "infeasible", "timeout"]),
    targets: Count,
    solveMs: z.number().nonnegative(),
  }),
  publishers: ["cli"],
  listeners: ["planner"],
  queueGroup: "planner",
  doc: "Re-plan now (outside the hourly schedule); the reply names the plan that was published on sage.plan.",
}).withSample(
  () => ({ reason: "traffic surge in eastus", requestedBy: "cli" }),
  () => ({ planId: "p-2", status: "optimal", targets: 12, solveMs: 85 }),
);

export const DemandReport = defineMessage({
  name: "DemandReport",
  kind: "event",
  version: 1,
  subject: "sage.demand.{region}.{model}",
  schema: z.object({
    region: Id,
    model: ModelId,
    windowStartMs: EpochMs,
    windowMs: z.number().int().positive(),
    byTier: z.object({ "iw-fast": TierCounts, "iw-normal": TierCounts, niw: TierCounts }),
    /** Who counted it (each router reports its own share; listeners sum by window). */
    source: Id.optional(),
    instancesByGpu: z.record(GpuType, Count).optional(),
    spotInstances: Count.optional(),
  }),
  publishers: ["router"],
  listeners: ["planner", "region-agent"],
  doc: "Per-minute demand of one model by origin region and tier (counted by the routers at arrival): the planner's history.",
}).withSample(() => ({
  region: "westus",
  model: "llama-3.1-8b",
  windowStartMs: now,
  windowMs: 60_000,
  byTier: {
    "iw-fast": { requests: 100, inputTokens: 51_200, outputTokens: 12_800 },
    "iw-normal": { requests: 20, inputTokens: 10_000, outputTokens: 2_000 },
    niw: { requests: 40, inputTokens: 80_000, outputTokens: 4_000 },
  },
  instancesByGpu: { A100: 4 },
  spotInstances: 1,
}));

export const CapacityWanted = defineMessage({
  name: "CapacityWanted",
  kind: "event",
  version: 1,
  subject: "sage.wanted.{region}.{model}",
  schema: z.object({
    region: Id,
    model: ModelId,
    /** Requests this router holds for the endpoint right now. */
    held: Count,
    /** Arrival of the oldest one. */
    oldestMs: EpochMs,
    atMs: EpochMs,
    source: Id.optional(),
  }),
  publishers: ["router"],
  listeners: ["region-agent", "dashboard"],
  doc: "A router holds requests for an endpoint with no serving instance (scaled to zero, or every instance lost): the region agent brings one up. Sent when a request is first held and every 5 s while any is.",
}).withSample(() => ({
  region: "westus",
  model: "llama-3.1-8b",
  held: 3,
  oldestMs: now - 2_000,
  atMs: now,
  source: "router-1",
}));

export const RegionStatus = defineMessage({
  name: "RegionStatus",
  kind: "event",
  version: 1,
  subject: "sage.region.{region}.status",
  schema: z.object({
    region: Id,
    atMs: EpochMs,
    endpoints: z
      .array(
        z.object({
          model: ModelId,
          instances: z.partialRecord(InstanceState, Count),
          memoryUtilization: z.number().min(0).max(1),
          niwQueueDepth: Count,
          /** The NIW queue by deadline, cumulative: jobs and prompt + output tokens due within each bound. */
          niwBacklog: z
            .array(z.object({ withinMinutes: z.number().int().positive(), jobs: Count, tokens: Count }))
            .max(32)
            .optional(),
          /**
           * The agent releases a queued job whatever the load once its deadline is this close (minutes): the
           * planner paces the backlog to be released before then, so escalation stays an emergency path.
           */
          niwEscalateBeforeMinutes: z.number().min(0).optional(),
          /**
           * Under a plan: the SLO feedback's factor on the capacity model for this model here (absent: 1) —
           * above 1 the instances deliver the IW-fast SLO on less capacity than the model's knee says.
           */
          capacityFactor: z.number().positive().optional(),
          /**
           * Under a plan with a capacity model: the instances the measured interactive demand here needs by
           * it (the demand floor the agent scales up to at once; absent without a model yet).
           */
          demandNeed: Count.optional(),
        }),
      )
      .max(10_000),
  }),
  publishers: ["region-agent"],
  listeners: ["dashboard", "cli", "planner"],
  doc: "A region's summary every few seconds: instances by state, utilisation, NIW queue depth and its deadlines per model (the planner plans batch capacity from them).",
}).withSample(() => ({
  region: "westus",
  atMs: now,
  endpoints: [
    {
      model: "llama-3.1-8b",
      instances: { serving: 4, spot: 1 },
      memoryUtilization: 0.55,
      niwQueueDepth: 12,
    },
  ],
}));

export const NiwJob = defineMessage({
  name: "NiwJob",
  kind: "event",
  version: 1,
  subject: "sage.niw.{region}.{model}",
  durable: true,
  schema: z.object({
    jobId: Id,
    requestId: Id,
    model: ModelId,
    originRegion: Id,
    inputTokens: TokenCount,
    maxOutputTokens: TokenCount,
    arrivalMs: EpochMs,
    deadlineMs: EpochMs,
    enqueuedAtMs: EpochMs,
    /** The request's re-routing attempt (absent the first time): a job handed back after its release. */
    attempt: z.number().int().min(1).max(100).optional(),
    /** The client's OpenAI request body, forwarded to the engine when the job is released. */
    body: z.record(z.string(), z.unknown()).optional(),
    /** Who collects the job's output (the queuing gateway's id): see RouteRequest `streamTo`. */
    streamTo: Id.optional(),
    /** A Batch API request's result key: see RouteRequest `resultKey`. */
    resultKey: BatchResultKey.optional(),
  }),
  publishers: ["router"],
  listeners: ["region-agent"],
  doc: "A queued non-interactive request, held durably (JetStream) until the region has spare capacity or its deadline nears.",
}).withSample(() => ({
  jobId: "j-1",
  requestId: "r-2",
  model: "llama-3.1-8b",
  originRegion: "westus",
  inputTokens: 2048,
  maxOutputTokens: 256,
  arrivalMs: now,
  deadlineMs: now + 86_400_000,
  enqueuedAtMs: now,
}));

/** The JetStream work-queue stream that holds NiwJobs until a region agent has released them. */
export const NIW_STREAM = { name: "SAGE_NIW", subjects: ["sage.niw.>"] } as const;

/** KV bucket of Batch API results: key `<batch id>.<line>` (RouteRequest `resultKey`), value BatchLineResult. */
export const BATCH_RESULTS_BUCKET = "sage-batch-out";
/** How long stored batch results live (a batch's window is at most a week). */
export const BATCH_RESULT_TTL_MS = 8 * 86_400_000;

/**
 * Runs of one Batch API request before its failure is final: a run the engine failed (or whose node was
 * lost) is queued again with the next `attempt`; the last run stores its failure for the error file.
 */
export const BATCH_MAX_ATTEMPTS = 3;

/** What a node stores for one Batch API request: its outcome and the chunks it streamed. */
export const BatchLineResult = z.object({
  requestId: Id,
  outcome: z.enum(["ok", "failed", "rejected"]),
  chunks: z.array(InferenceChunk.schema.omit({ requestId: true, seq: true })).max(100_000),
  atMs: EpochMs,
});
export type BatchLineResult = z.infer<typeof BatchLineResult>;

export const JobUpdate = defineMessage({
  name: "JobUpdate",
  kind: "event",
  version: 1,
  subject: "sage.job.{job}",
  schema: z.object({
    jobId: Id,
    state: z.enum(["queued", "escalated", "running", "completed", "failed", "expired"]),
    region: Id.optional(),
    instanceId: Id.optional(),
    atMs: EpochMs,
    message: z.string().max(1024).optional(),
  }),
  publishers: ["region-agent", "node-agent"],
  listeners: ["gateway", "dashboard"],
  doc: "Lifecycle of one NIW job, for the batch API's status endpoint.",
}).withSample(() => ({
  jobId: "j-1",
  state: "running",
  region: "westus",
  instanceId: "westus-n1-i0",
  atMs: now,
}));
