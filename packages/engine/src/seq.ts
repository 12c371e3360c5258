/**
 * A request's state on an Instance (`Seq`, after vLLM's sequence): where it is, how much of its prompt
 * is computed, how many tokens it has generated and how many KV blocks it holds. One object per request,
 * created with every field set (one shape for the hot loops); shared by the Instance and its helpers.
 */
import type { Tier } from "@sageserve/protocol";
import type { InstanceRequest } from "./instance-types.js";

/** Waiting queue of each tier under priority scheduling. */
export const TIER_ORDER: Record<Tier, number> = { "iw-fast": 0, "iw-normal": 1, niw: 2 };

export interface Seq {
  req: InstanceRequest;
  /** The request's prompt and output tokens and whether it is NIW, copied here: the hot loops then
   * touch one object per request, not two. */
  input: number;
  output: number;
  niw: boolean;
  /** Waiting queue (tier order under priority scheduling, 0 under fcfs). */
  prio: number;
  /** Arrival order on this instance (ties between equal arrival times). */
  order: number;
  /** Tokens whose KV is computed in the current (re)prefill. */
  computed: number;
  /** Tokens to prefill before the next token: prompt + tokens generated before a preemption. */
  target: number;
  /** Output tokens generated as of `iter0` (decoding) or in total (waiting / prefilling). */
  gen0: number;
  /** Iteration counter when `gen0` was taken (decoding). */
  iter0: number;
  /** Iteration at which the last output token is produced (decoding). */
  finishIter: number;
  blocks: number;
  decoding: boolean;
  /** Decoding: its index in the instance's `dec` / `decAt` arrays (-1 otherwise). */
  decIdx: number;
  /** Decoding and its next token opens a KV block: in `openList`, at `openIdx`. */
  open: boolean;
  openIdx: number;
  /** Holds the block the last `plan` reserved for that token (given back at the next sync). */
  reserved: boolean;
  /** Prefill tokens scheduled in the current step. */
  chunk: number;
  /** Bumped when the request leaves the decode heap, so stale heap entries are skipped. */
  version: number;
  /** Where it is. */
  where: "waiting" | "running" | "gone";
}

/** A request as it arrives: waiting, nothing computed, no blocks. */
export function newSeq(r: InstanceRequest, prio: number, order: number): Seq {
  return {
    req: r,
    input: r.inputTokens,
    output: r.outputTokens,
    niw: r.tier === "niw",
    prio,
    order,
    computed: 0,
    target: Math.max(1, r.inputTokens),
    gen0: 0,
    iter0: 0,
    finishIter: 0,
    decIdx: -1,
    open: false,
    openIdx: -1,
    reserved: false,
    blocks: 0,
    decoding: false,
    chunk: 0,
    version: 0,
    where: "waiting",
  };
}
