/**
 * The messages the router builds from a RouteRequest: the InferenceRequest that hands it to an instance,
 * the durable NIW job, and the RequestDone of a held request that never ran. Field-by-field copying of
 * message shapes lives here, apart from the routing decisions in `router.ts`.
 */
import {
  DEFAULT_NIW_DEADLINE_MS,
  type InferenceRequest,
  type NiwJob,
  type Payload,
  type PayloadIn,
  type RouteRequest,
} from "@sageserve/protocol";

export type Route = Payload<typeof RouteRequest>;

/**
 * The InferenceRequest that hands `req` to an instance: every RouteRequest field (optional ones only when
 * set) and the instance. Written out rather than `{ ...req, instanceId }`, which was ~3 % of a paper-scale
 * simulation; router.test checks that no RouteRequest field is left behind.
 */
export function toInference(req: Route, instanceId: string): Payload<typeof InferenceRequest> {
  const out: Payload<typeof InferenceRequest> = {
    requestId: req.requestId,
    model: req.model,
    tier: req.tier,
    originRegion: req.originRegion,
    inputTokens: req.inputTokens,
    maxOutputTokens: req.maxOutputTokens,
    arrivalMs: req.arrivalMs,
    stream: req.stream,
    instanceId,
  };
  if (req.deadlineMs !== undefined) out.deadlineMs = req.deadlineMs;
  if (req.attempt !== undefined) out.attempt = req.attempt;
  if (req.avoidNodes !== undefined) out.avoidNodes = req.avoidNodes;
  if (req.body !== undefined) out.body = req.body;
  if (req.streamTo !== undefined) out.streamTo = req.streamTo;
  if (req.resultKey !== undefined) out.resultKey = req.resultKey;
  return out;
}

/** The queued job of an NIW request, enqueued at `nowMs` (its deadline defaults from its arrival). */
export function toNiwJob(req: Route, jobId: string, nowMs: number): PayloadIn<typeof NiwJob> {
  return {
    jobId,
    requestId: req.requestId,
    model: req.model,
    originRegion: req.originRegion,
    inputTokens: req.inputTokens,
    maxOutputTokens: req.maxOutputTokens,
    arrivalMs: req.arrivalMs,
    deadlineMs: req.deadlineMs ?? req.arrivalMs + DEFAULT_NIW_DEADLINE_MS,
    enqueuedAtMs: nowMs,
    ...(req.attempt === undefined ? {} : { attempt: req.attempt }),
    ...(req.body === undefined ? {} : { body: req.body }),
    ...(req.streamTo === undefined ? {} : { streamTo: req.streamTo }),
    ...(req.resultKey === undefined ? {} : { resultKey: req.resultKey }),
  };
}

/** The RequestDone of a held request that never reached an instance (its outcome to be set). */
export function finished(req: Route, nowMs: number) {
  return {
    requestId: req.requestId,
    model: req.model,
    tier: req.tier,
    region: req.originRegion,
    instanceId: "-",
    inputTokens: req.inputTokens,
    outputTokens: 0,
    arrivalMs: req.arrivalMs,
    ttftMs: 0,
    tbtMs: 0,
    e2eMs: nowMs - req.arrivalMs,
  };
}
