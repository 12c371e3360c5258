import type { Tier } from "@sageserve/protocol";

/** One request of a workload, times in ms since the start of the run. */
export interface SimRequest {
  id: number;
  arrivalMs: number;
  model: string;
  region: string;
  tier: Tier;
  inputTokens: number;
  outputTokens: number;
  /** Absolute deadline (ms since start); NIW only. */
  deadlineMs?: number;
}

/** A workload is consumed in arrival order, in batches, so a 10M-request week never sits in memory at once. */
export interface Workload {
  readonly name: string;
  readonly durationMs: number;
  readonly models: readonly string[];
  readonly regions: readonly string[];
  /** Next requests in arrival order (non-decreasing arrivalMs); empty when exhausted. */
  next(): SimRequest[];
}

export class TraceError extends Error {
  constructor(
    readonly source: string,
    readonly line: number,
    readonly field: string,
    message: string,
  ) {
    super(`${source}:${line}: ${field}: ${message}`);
    this.name = "TraceError";
  }
}
