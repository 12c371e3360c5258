import { DEFAULT_SLO_TTFT_MS, type Tier } from "./domain.js";

/**
 * How SLOs are judged, shared by the simulator's report, the live dashboard and `sageserve status`:
 * whether a finished request met its tier's SLO, and whether it *could* have (SLO feasibility).
 */

/** TTFT targets of the interactive tiers (default {@link DEFAULT_SLO_TTFT_MS}). */
export type SloTtftMs = Readonly<Record<"iw-fast" | "iw-normal", number>>;

/** The fields of a `RequestDone` that decide its SLO. */
export interface FinishedRequest {
  tier: Tier;
  outcome: "ok" | "failed" | "cancelled" | "rejected";
  ttftMs: number;
  arrivalMs: number;
  e2eMs: number;
  deadlineMs?: number | undefined;
}

/**
 * Whether a finished request is judged against its SLO at all: a request the client cancelled, or one
 * the engine rejected as invalid (the client's mistake, e.g. `max_tokens` past the context), is not the
 * system's to meet — it used to count as a miss (6 such requests took IW-fast from 100 % to 81 %).
 */
export function judgedForSlo(d: Pick<FinishedRequest, "outcome">): boolean {
  return d.outcome !== "cancelled" && d.outcome !== "rejected";
}

/**
 * Whether a finished request met its tier's SLO: IW tiers by TTFT within the target, NIW by finishing
 * before its deadline (none = met). A failed or cancelled request never meets it.
 */
export function metSlo(d: FinishedRequest, slo: SloTtftMs = DEFAULT_SLO_TTFT_MS): boolean {
  if (d.outcome !== "ok") return false;
  if (d.tier === "niw") return d.deadlineMs === undefined || d.arrivalMs + d.e2eMs <= d.deadlineMs;
  return d.ttftMs <= slo[d.tier];
}

/**
 * A narrow view of a performance model (the simulator's `PerformanceModel` is one): the time to
 * prefill one prompt alone on an idle instance of a (model, GPU type), and the longest prompt its
 * profile measured.
 */
export interface PromptTiming {
  has(model: string, gpuType: string): boolean;
  /** ms to prefill one prompt of `promptTokens` alone (batch 1) on an idle instance. */
  prefillMs(model: string, gpuType: string, promptTokens: number): number;
  /** The longest prompt the profile of (model, GPU type) measured; beyond it prefill is extrapolated. */
  measuredPromptTokens(model: string, gpuType: string): number;
}

export interface PromptVerdict {
  /** Even an idle instance of this GPU type cannot prefill the prompt within the tier's TTFT target. */
  infeasible: boolean;
  /** The prompt is longer than the profile measured: its timing is an extrapolation. */
  beyondProfile: boolean;
}

/** The four verdicts, shared (judging a request allocates nothing: the simulator judges millions). */
const VERDICTS: readonly PromptVerdict[] = [
  Object.freeze({ infeasible: false, beyondProfile: false }),
  Object.freeze({ infeasible: false, beyondProfile: true }),
  Object.freeze({ infeasible: true, beyondProfile: false }),
  Object.freeze({ infeasible: true, beyondProfile: true }),
];
const UNJUDGED = VERDICTS[0]!;

/**
 * SLO feasibility of one request's prompt on the GPU type that served it. Only the IW tiers have a
 * TTFT target to miss; a request with no known GPU type (failed before an instance took it) or no
 * profile for its (model, GPU type) is judged feasible and within range — it is not excluded from
 * attainment on a guess.
 */
export function promptVerdict(
  timing: PromptTiming | undefined,
  r: { model: string; gpuType: string | undefined; tier: Tier; inputTokens: number },
  slo: SloTtftMs = DEFAULT_SLO_TTFT_MS,
): PromptVerdict {
  if (!timing || r.gpuType === undefined || !timing.has(r.model, r.gpuType)) return UNJUDGED;
  const infeasible = r.tier !== "niw" && timing.prefillMs(r.model, r.gpuType, r.inputTokens) > slo[r.tier];
  const beyondProfile = r.inputTokens > timing.measuredPromptTokens(r.model, r.gpuType);
  return VERDICTS[(infeasible ? 2 : 0) + (beyondProfile ? 1 : 0)]!;
}

/** Per-tier counts behind attainment over all requests and over the feasible ones. */
export interface SloCounts {
  /** Finished requests (completed + failed). */
  requests: number;
  sloMet: number;
  infeasible: number;
  /** Requests that met their SLO among the feasible ones. */
  sloMetFeasible: number;
}

export const emptySloCounts = (): SloCounts => ({ requests: 0, sloMet: 0, infeasible: 0, sloMetFeasible: 0 });

/** Adds one finished request to `c`. */
export function countSlo(c: SloCounts, met: boolean, v: PromptVerdict): void {
  c.requests++;
  if (met) c.sloMet++;
  if (v.infeasible) c.infeasible++;
  else if (met) c.sloMetFeasible++;
}

/**
 * Attainment over all requests (infeasible ones count as misses unless they happened to meet the
 * target), over the feasible ones, and the infeasible share; null before the first request (and
 * `attainmentFeasible` null while every request was infeasible).
 */
export function sloRates(c: SloCounts): {
  attainment: number | null;
  attainmentFeasible: number | null;
  infeasibleShare: number | null;
} {
  const feasible = c.requests - c.infeasible;
  return {
    attainment: c.requests ? c.sloMet / c.requests : null,
    attainmentFeasible: feasible ? c.sloMetFeasible / feasible : null,
    infeasibleShare: c.requests ? c.infeasible / c.requests : null,
  };
}
