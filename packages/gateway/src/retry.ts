import type { HttpError } from "./http.js";

/** The final chunk of one attempt, as the node agent or router sent it (`InferenceChunk`, done). */
export interface FinalChunk {
  finishReason?: string | undefined;
  error?: { code: string; message: string } | undefined;
}

/** How one routing attempt ended. */
export type AttemptEnd =
  | { kind: "finished"; finish: string }
  /** The engine refused the request itself (e.g. prompt + max_tokens over its context): a 400. */
  | { kind: "refused"; message: string }
  /** The instance failed, its node went silent, or the router found no capacity in time. */
  | { kind: "lost"; code: string; message: string };

/** What the last chunk of an attempt means; `tokensSeen` = tokens of this attempt before it. */
export function attemptEnd(c: FinalChunk, tokensSeen: number): AttemptEnd {
  if (!c.error) return { kind: "finished", finish: c.finishReason ?? "stop" };
  if (tokensSeen === 0 && c.error.code === "INVALID_REQUEST")
    return { kind: "refused", message: c.error.message };
  return {
    kind: "lost",
    code: c.error.code,
    message: c.error.code === "NO_CAPACITY" ? c.error.message : `engine failed: ${c.error.message}`,
  };
}

/** A node silent past its heartbeat TTL while it served the request. */
export function nodeLostEnd(nodeId: string): AttemptEnd & { kind: "lost" } {
  return {
    kind: "lost",
    code: "NODE_LOST",
    message: `node ${nodeId} stopped sending heartbeats while serving the request`,
  };
}

/** What to do after a lost attempt. */
export type AfterLoss =
  /** Route again, away from the node. */
  | { kind: "retry" }
  /** Nothing reached the client: answer this error. */
  | { kind: "fail"; error: HttpError }
  /** A stream was under way: end it with an OpenAI error event (no `[DONE]`). */
  | { kind: "error-event"; message: string; code: string };

/**
 * The retry rule. A request whose instance failed or whose node is gone is routed again while nothing
 * reached the client (before its first token, or a response not streamed) and attempts remain;
 * NO_CAPACITY is never retried (the router already waited for an instance; another attempt would wait
 * again). Otherwise the client learns why: an HTTP error, or an error event mid-stream.
 */
export function afterLoss(
  lost: { code: string; message: string },
  s: { stream: boolean; tokensSent: number; attempt: number; maxAttempts: number; model: string },
): AfterLoss {
  const clientSawNothing = !s.stream || s.tokensSent === 0;
  const noCapacity = lost.code === "NO_CAPACITY";
  if (clientSawNothing && !noCapacity && s.attempt + 1 < s.maxAttempts) return { kind: "retry" };
  const code = lost.code.toLowerCase();
  if (!clientSawNothing) return { kind: "error-event", message: lost.message, code };
  return {
    kind: "fail",
    error: noCapacity
      ? {
          status: 503,
          message: `no capacity for ${s.model} right now (${lost.message})`,
          type: "service_unavailable",
          code: "overloaded",
          retryAfterS: 2,
        }
      : { status: 502, message: lost.message, type: "server_error", code, retryAfterS: 1 },
  };
}
