import { z } from "zod";

/** Shared vocabulary of the control plane; every message schema is built from these. */

export const TIERS = ["iw-fast", "iw-normal", "niw"] as const;
export const Tier = z.enum(TIERS);
export type Tier = z.output<typeof Tier>;

/**
 * Default SLOs (paper v3): time to first token for the interactive tiers; NIW work must finish by
 * its deadline. The simulator, the dashboard and `sageserve status` judge attainment by these.
 */
export const DEFAULT_SLO_TTFT_MS: Readonly<Record<"iw-fast" | "iw-normal", number>> = {
  "iw-fast": 1_000,
  "iw-normal": 60_000,
};

/** The forecast-driven plan strategies (the paper's LT-I, LT-U, LT-UA): what a region agent follows. */
export const PLAN_STRATEGIES = ["lt-i", "lt-u", "lt-ua"] as const;
export type PlanStrategy = (typeof PLAN_STRATEGIES)[number];

/**
 * How long a batch (NIW) request has when it names no deadline: 24 hours from its arrival (the paper's
 * batch SLO). The gateway, the router, trace files and scenarios default to it.
 */
export const DEFAULT_NIW_DEADLINE_MS = 86_400_000;

/** The id of the NIW queue job that carries request `requestId` (the router names it, the region agent finds it). */
export function niwJobId(requestId: string): string {
  return `j-${requestId}`;
}

/** Region, node and instance ids: short, printable, no whitespace. */
export const Id = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[^\s]+$/, "must not contain whitespace");
/** Where a Batch API request's result is stored: `<batch id>.<line index>` (a KV key of `sage-batch-out`). */
export const BatchResultKey = z
  .string()
  .max(160)
  .regex(/^batch_[A-Za-z0-9_-]+\.[0-9]+$/, "must be <batch id>.<line>");
export const ModelId = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[^\s]+$/, "must not contain whitespace");
export const GpuType = z.string().min(1).max(64);
export const EpochMs = z.number().int().nonnegative();
export const Fraction = z.number().min(0).max(1);
export const Count = z.number().int().nonnegative();
export const TokenCount = z.number().int().nonnegative().max(10_000_000);

export const INSTANCE_STATES = [
  "booting",
  "loading",
  "serving",
  "draining",
  "spot",
  "swapping",
  "failed",
  "stopped",
] as const;
export const InstanceState = z.enum(INSTANCE_STATES);
export type InstanceState = z.output<typeof InstanceState>;

/** States whose GPU time is paid for (spot VMs are lent out; stopped and failed ones are released). */
export const PAID_STATES: ReadonlySet<InstanceState> = new Set([
  "booting",
  "loading",
  "swapping",
  "serving",
  "draining",
]);

/** What a load report says of an instance's load (LoadReport's fields of the same names). */
export interface LoadSignals {
  kvUtilization: number;
  /** Sequences running and queued, and the engine's limit (absent = KV alone decides). */
  running: number;
  waiting: number;
  maxRunning?: number | undefined;
  /** The oldest interactive request's wait for its first token, per tier (ms). */
  iwFastWaitMs?: number | undefined;
  iwNormalWaitMs?: number | undefined;
  /** Interactive arrivals and SLO capacity (req/s). */
  iwRps?: number | undefined;
  iwCapacityRps?: number | undefined;
}

/**
 * Load of one instance as a fraction of whichever limit binds first: its KV cache, or its
 * concurrent-sequence slots (running plus waiting over max running). Small models on big GPUs fill
 * their slots long before their KV cache (a 3B model on 8×H100 holds ~5M KV tokens but runs ≤ 512
 * sequences), so KV alone would never show them as full while requests queue for minutes.
 * Above 1 = requests are queueing.
 *
 * A prefill-bound engine (long prompts, a bounded token budget per step) queues requests while both of
 * those look idle: at 10× `day`, llama3.1-8b instances ran ~70 of 512 sequences at 12 % KV with 150–650
 * requests waiting seconds for their first token. So the load is also the oldest interactive request's
 * wait for its first token as a fraction of its tier's TTFT target (`iwFastWaitMs`, `iwNormalWaitMs`): 0.5 = the oldest IW-fast
 * request has waited half a second. And where the instance's SLO capacity is known (`iwCapacityRps`,
 * the knee of the engine load sweep), the load is also its interactive arrivals over that capacity:
 * 0.5 = half of the rate at which its TTFT SLOs stop holding.
 */
export function instanceLoad(
  r: LoadSignals,
  ttftMs: Readonly<Record<"iw-fast" | "iw-normal", number>> = DEFAULT_SLO_TTFT_MS,
): number {
  return instanceLoadWith(r, r.kvUtilization, r.waiting, ttftMs);
}

/**
 * {@link instanceLoad} with the KV utilisation and queue length given apart (a router adds what it
 * routed since the report), without building a new signals object on the routing hot path.
 */
export function instanceLoadWith(
  r: LoadSignals,
  kvUtilization: number,
  waiting: number,
  ttftMs: Readonly<Record<"iw-fast" | "iw-normal", number>> = DEFAULT_SLO_TTFT_MS,
): number {
  let load = r.maxRunning ? Math.max(kvUtilization, (r.running + waiting) / r.maxRunning) : kvUtilization;
  if (r.iwRps !== undefined && r.iwCapacityRps) load = Math.max(load, r.iwRps / r.iwCapacityRps);
  if (r.iwFastWaitMs) load = Math.max(load, r.iwFastWaitMs / ttftMs["iw-fast"]);
  if (r.iwNormalWaitMs) load = Math.max(load, r.iwNormalWaitMs / ttftMs["iw-normal"]);
  return load;
}

export const TierCounts = z.object({
  requests: Count,
  inputTokens: Count,
  outputTokens: Count,
});
export type TierCounts = z.output<typeof TierCounts>;
