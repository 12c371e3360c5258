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
  /** Found while loading, worth telling the user before the run (e.g. requests that can never fit). */
  readonly warnings?: readonly string[];
}

/** Every request of a workload, in order: for tests and small tools (a 10 M-request week does not fit). */
export function drain(w: Workload): SimRequest[] {
  const out: SimRequest[] = [];
  for (let b = w.next(); b.length; b = w.next()) for (const r of b) out.push(r);
  return out;
}

export class TraceError extends Error {
  constructor(
    readonly source: string,
    readonly line: number,
    readonly field: string,
    message: string,
  ) {
    // Line 0: about the whole file (unreadable, empty, unknown layout).
    super(line > 0 ? `${source}:${line}: ${field}: ${message}` : `${source}: ${field}: ${message}`);
    this.name = "TraceError";
  }
}
