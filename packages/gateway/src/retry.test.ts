import { describe, expect, it } from "vitest";
import { afterLoss, attemptEnd, nodeLostEnd } from "./retry.js";

describe("the retry rule", () => {
  it("reads a final chunk without error as finished, stop by default", () => {
    expect(attemptEnd({ finishReason: "length" }, 3)).toEqual({ kind: "finished", finish: "length" });
    expect(attemptEnd({}, 0)).toEqual({ kind: "finished", finish: "stop" });
  });

  it("reads an engine's refusal before any token as the client's mistake, after one as a failure", () => {
    const refusal = { finishReason: "error", error: { code: "INVALID_REQUEST", message: "too long" } };
    expect(attemptEnd(refusal, 0)).toEqual({ kind: "refused", message: "too long" });
    expect(attemptEnd(refusal, 2)).toEqual({
      kind: "lost",
      code: "INVALID_REQUEST",
      message: "engine failed: too long",
    });
  });

  it("keeps the router's NO_CAPACITY message as it is", () => {
    expect(attemptEnd({ error: { code: "NO_CAPACITY", message: "none in 60 s" } }, 0)).toEqual({
      kind: "lost",
      code: "NO_CAPACITY",
      message: "none in 60 s",
    });
  });

  const lost = { code: "ENGINE_UNAVAILABLE", message: "engine failed: refused" };
  const base = { stream: true, tokensSent: 0, attempt: 0, maxAttempts: 3, model: "m" };

  it("routes again while nothing reached the client and attempts remain", () => {
    expect(afterLoss(lost, base)).toEqual({ kind: "retry" });
    expect(afterLoss(lost, { ...base, attempt: 1 })).toEqual({ kind: "retry" });
    // Not streamed: tokens collected so far never reached the client.
    expect(afterLoss(nodeLostEnd("n1"), { ...base, stream: false, tokensSent: 40 })).toEqual({
      kind: "retry",
    });
  });

  it("answers 502 naming the cause when the attempts are spent", () => {
    expect(afterLoss(lost, { ...base, attempt: 2 })).toEqual({
      kind: "fail",
      error: {
        status: 502,
        message: lost.message,
        type: "server_error",
        code: "engine_unavailable",
        retryAfterS: 1,
      },
    });
  });

  it("never retries NO_CAPACITY: 503 overloaded with Retry-After", () => {
    const r = afterLoss({ code: "NO_CAPACITY", message: "none" }, base);
    expect(r).toMatchObject({ kind: "fail", error: { status: 503, code: "overloaded", retryAfterS: 2 } });
  });

  it("ends a stream under way with an error event, whatever attempts remain", () => {
    expect(afterLoss(nodeLostEnd("n1"), { ...base, tokensSent: 5 })).toEqual({
      kind: "error-event",
      message: "node n1 stopped sending heartbeats while serving the request",
      code: "node_lost",
    });
  });
});
