/**
 * The Instance's public types — the request it serves, a completion, the step timing it is given — and
 * its options, with their defaults applied once (`resolveInstanceOptions`) in one place. Separate from
 * the Instance so the engine's state machine reads without its configuration surface.
 */
import type { Tier } from "@sageserve/protocol";

export interface InstanceRequest {
  id: string;
  seq: number;
  tier: Tier;
  arrivalMs: number;
  inputTokens: number;
  outputTokens: number;
  deadlineMs?: number | undefined;
  /** When the instance received it (after the router's hold and the hop). */
  receivedMs?: number | undefined;
  /** Set by the instance: first admission (its prefill started). */
  admittedMs?: number | undefined;
  /** Set by the instance. */
  firstTokenMs?: number | undefined;
  /** Set by the instance: times it was preempted (and recomputed). */
  preemptions?: number | undefined;
}

export interface Completion {
  req: InstanceRequest;
  doneMs: number;
}

export interface InstanceTiming {
  prefillMs(promptTokens: number, batch: number): number;
  decodeIterMs(batchSize: number): number;
}

export type SchedulingPolicy = "priority" | "fcfs";

export interface InstanceOptions {
  kvCapacityTokens: number;
  timing: InstanceTiming;
  nowMs: number;
  /** vLLM's `max_num_seqs`: requests running at once (default 512). */
  maxNumSeqs?: number;
  /** vLLM's `max_num_batched_tokens`: tokens one step computes (default 8,192). */
  maxBatchedTokens?: number;
  /** Tokens per KV block (vLLM's `block_size`, default 16). */
  blockSize?: number;
  /**
   * Most prompt tokens one request may prefill in one step (vLLM's `long_prefill_token_threshold`;
   * 0 = no limit, vLLM's default): a long prompt then leaves room in every step for others.
   */
  longPrefillTokenThreshold?: number;
  /** Waiting-queue order (default priority: iw-fast > iw-normal > niw). */
  scheduling?: SchedulingPolicy;
  /**
   * Most of the KV blocks NIW (batch) requests may take at admission, as a fraction: the rest stays free
   * for interactive arrivals. 1 = no limit (vLLM has no such knob; an optional SageServe one).
   */
  niwKvShare?: number;
  /**
   * Keep an index from request id to request (default true) so `cancel` and `generated` are O(1); the
   * simulated fleet, which calls neither, turns it off (a string-keyed map insert and delete per request
   * was ~4 % of a paper-scale run) and the two then search the instance's queues.
   */
  indexIds?: boolean;
  /**
   * Count every decoding request's KV blocks at every scheduling decision instead of only when a bound
   * says the count could matter (the tests compare the two: same steps, same completions).
   */
  alwaysSync?: boolean;
}

export const DEFAULT_BLOCK_SIZE = 16;
export const DEFAULT_MAX_BATCHED_TOKENS = 8_192;
export const DEFAULT_MAX_NUM_SEQS = 512;

/** `InstanceOptions` with every default applied and the KV cache counted in whole blocks. */
export interface ResolvedInstanceOptions {
  blockSize: number;
  numBlocks: number;
  /** KV capacity in tokens, rounded down to whole blocks. */
  kvCapacity: number;
  maxBatch: number;
  maxBatchedTokens: number;
  scheduling: SchedulingPolicy;
  niwKvShare: number;
  /** `longPrefillTokenThreshold`, Infinity when there is no limit. */
  longPrefill: number;
  timing: InstanceTiming;
  nowMs: number;
  indexIds: boolean;
  alwaysSync: boolean;
}

/** Apply the defaults and check the options (a RangeError names the bad one). */
export function resolveInstanceOptions(o: InstanceOptions): ResolvedInstanceOptions {
  const blockSize = o.blockSize ?? DEFAULT_BLOCK_SIZE;
  const numBlocks = Math.floor(o.kvCapacityTokens / blockSize);
  const maxBatch = o.maxNumSeqs ?? DEFAULT_MAX_NUM_SEQS;
  const maxBatchedTokens = o.maxBatchedTokens ?? DEFAULT_MAX_BATCHED_TOKENS;
  if (!(blockSize >= 1) || !Number.isInteger(blockSize))
    throw new RangeError(`blockSize must be a positive integer, got ${o.blockSize}`);
  if (!(maxBatch >= 1)) throw new RangeError(`maxNumSeqs must be ≥ 1, got ${o.maxNumSeqs}`);
  if (!(maxBatchedTokens >= maxBatch))
    throw new RangeError(
      `maxBatchedTokens (${maxBatchedTokens}) must be ≥ maxNumSeqs (${maxBatch}): every running request decodes each step`,
    );
  return {
    blockSize,
    numBlocks,
    kvCapacity: numBlocks * blockSize,
    maxBatch,
    maxBatchedTokens,
    scheduling: o.scheduling ?? "priority",
    niwKvShare: o.niwKvShare ?? 1,
    longPrefill:
      o.longPrefillTokenThreshold && o.longPrefillTokenThreshold > 0
        ? o.longPrefillTokenThreshold
        : Number.POSITIVE_INFINITY,
    timing: o.timing,
    nowMs: o.nowMs,
    indexIds: o.indexIds !== false,
    alwaysSync: o.alwaysSync === true,
  };
}
