import { randomUUID } from "node:crypto";
import type { ServerResponse } from "node:http";
import {
  InferenceChunk,
  type Payload,
  type PayloadIn,
  type ReplyOf,
  type Result,
  type RouteRequest,
  type Tier,
  validatePayload,
} from "@sageserve/protocol";
import type { Bus, Clock, Logger, Subscription } from "@sageserve/runtime";
import { fail, json, routeError } from "./http.js";
import {
  completion,
  errorEvent,
  estimateTokens,
  finishChunk,
  type OpenAiRequest,
  responseMeta,
  sse,
  tokenChunk,
  usage,
} from "./openai.js";
import { type AttemptEnd, afterLoss, attemptEnd, nodeLostEnd } from "./retry.js";

/** What the relay loop needs from its gateway: a narrow set of ports, no actor. */
export interface RelayPorts {
  clock: Clock;
  log: Logger;
  subscribe: Bus["subscribe"];
  route(payload: PayloadIn<typeof RouteRequest>): Promise<Result<ReplyOf<typeof RouteRequest>>>;
  /** Has `nodeId` been silent past its heartbeat TTL since `sinceMs`? */
  nodeLost(nodeId: string, sinceMs: number): boolean;
  trackJob(jobId: string, requestId: string, model: string): void;
  onRetry(): void;
  /** Count the request under its final HTTP status. */
  count(status: number): void;
  observeTtft(seconds: number): void;
  observeTbt(seconds: number): void;
}

export interface RelaySettings {
  firstTokenTimeoutMs: number;
  maxAttempts: number;
  batchDeadlineMs: number;
}

/** One request on its way: the client's request, where and how it runs. */
export interface RelayJob {
  req: OpenAiRequest;
  body: Record<string, unknown>;
  tier: Tier;
  region: string;
}

type Chunk = Payload<typeof InferenceChunk>;

/**
 * The relay loop of one request: route it, relay its node's chunks to the client as OpenAI SSE (or
 * collect them into one answer), watch the node's heartbeats, and route again by the retry rule
 * (`retry.ts`) when the node or engine is lost before anything reached the client.
 */
export async function relay(
  ports: RelayPorts,
  s: RelaySettings,
  res: ServerResponse,
  job: RelayJob,
): Promise<void> {
  const { req, body, tier, region } = job;
  const { clock } = ports;
  const requestId = `r-${randomUUID()}`;
  const { model, stream, chat } = req;
  const promptTokens = estimateTokens(req.promptText);
  const arrivalMs = clock.now();
  const maxAttempts = Math.max(1, s.maxAttempts);

  // Each attempt streams on its own subject (`<request>-a<n>` after the first), so a node wrongly
  // given up for lost can never interleave its tokens with the retry's.
  let chunks: Chunk[] = [];
  let wake: (() => void) | undefined;
  let sub: Subscription | undefined;
  const listen = (rid: string): void => {
    sub?.unsubscribe();
    const mine: Chunk[] = [];
    chunks = mine;
    sub = ports.subscribe(InferenceChunk.subject.build({ request: rid }), (m) => {
      const d = m.data();
      const c = d.ok ? validatePayload(InferenceChunk, d.value) : d;
      if (!c.ok) return;
      mine.push(c.value);
      wake?.();
    });
  };
  res.on("close", () => sub?.unsubscribe());
  const meta = responseMeta(req, requestId, Math.floor(clock.now() / 1000));
  let text = "";
  let index = 0;
  let finish = "stop";
  let lastTokenMs = arrivalMs;
  const avoid: string[] = [];

  /**
   * Relay one attempt's chunks until its final chunk, its node's loss or the first-token timeout.
   * Undefined: the client is gone or has been answered.
   */
  const pump = async (nodeId: string | undefined, deadline: number): Promise<AttemptEnd | undefined> => {
    const dispatchedMs = clock.now();
    for (;;) {
      const c = chunks.shift();
      if (!c) {
        if (res.destroyed) return undefined;
        const left = deadline - clock.now();
        if (index === 0 && left <= 0) {
          ports.count(
            fail(res, {
              status: 504,
              message: "no token within the first-token timeout",
              type: "timeout",
              code: "first_token_timeout",
            }),
          );
          return undefined;
        }
        // A node that dies says nothing more: watch its heartbeats.
        if (nodeId !== undefined && ports.nodeLost(nodeId, dispatchedMs)) return nodeLostEnd(nodeId);
        await new Promise<void>((r) => {
          wake = r;
          clock.setTimer(Math.max(10, Math.min(left > 0 ? left : 1_000, 1_000)), r);
        });
        wake = undefined;
        continue;
      }
      if (c.done) return attemptEnd(c, index);
      const nowMs = clock.now();
      if (index > 0) ports.observeTbt((nowMs - lastTokenMs) / 1000);
      lastTokenMs = nowMs;
      if (index === 0) {
        ports.observeTtft((nowMs - arrivalMs) / 1000);
        if (stream)
          res.writeHead(200, {
            "content-type": "text/event-stream",
            "cache-control": "no-cache",
            connection: "keep-alive",
          });
      }
      if (stream) res.write(sse(tokenChunk(meta, chat, c.text ?? "", index === 0)));
      else text += c.text ?? "";
      index++;
    }
  };
  try {
    for (let attempt = 0; ; attempt++) {
      const rid = attempt === 0 ? requestId : `${requestId}-a${attempt}`;
      // Subscribe before routing: the node may start streaming before the router's reply arrives.
      listen(rid);
      const reply = await ports.route({
        requestId: rid,
        model,
        tier,
        originRegion: region,
        inputTokens: promptTokens,
        maxOutputTokens: req.maxTokens,
        arrivalMs,
        ...(tier === "niw" ? { deadlineMs: arrivalMs + s.batchDeadlineMs } : {}),
        stream,
        ...(attempt > 0 ? { attempt, avoidNodes: avoid } : {}),
        body: { ...body, stream: true },
      });
      if (!reply.ok) return ports.count(fail(res, routeError(reply.error, model)));
      if (reply.value.decision === "queued" && reply.value.jobId) {
        ports.count(202);
        ports.trackJob(reply.value.jobId, requestId, model);
        return json(res, 202, {
          id: reply.value.jobId,
          object: "sage.batch_job",
          status: "queued",
          model,
          region: reply.value.region,
        });
      }
      const nodeId = reply.value.nodeId;
      const end = await pump(nodeId, clock.now() + s.firstTokenTimeoutMs);
      if (!end) return;
      if (end.kind === "refused")
        return ports.count(
          fail(res, {
            status: 400,
            message: end.message,
            type: "invalid_request_error",
            code: "invalid_value",
          }),
        );
      if (end.kind === "finished") {
        finish = end.finish;
        break;
      }
      const next = afterLoss(end, { stream, tokensSent: index, attempt, maxAttempts, model });
      if (next.kind === "retry") {
        // The instance failed or its node is gone before anything reached the client: route again,
        // away from that node.
        if (nodeId !== undefined && !avoid.includes(nodeId)) avoid.push(nodeId);
        ports.onRetry();
        ports.log.warn(
          { requestId, attempt: attempt + 1, node: nodeId, code: end.code },
          "request lost before its first token reached the client: routing it again",
        );
        text = "";
        index = 0;
        continue;
      }
      if (next.kind === "fail") return ports.count(fail(res, next.error));
      ports.count(502);
      res.end(sse(errorEvent(next.message, next.code)));
      return;
    }
    ports.count(200);
    const u = usage(promptTokens, index);
    if (stream) {
      if (index === 0) res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(sse(finishChunk(meta, chat, finish)));
      res.end(sse("[DONE]"));
    } else json(res, 200, completion(meta, chat, text, finish, u));
  } finally {
    sub?.unsubscribe();
  }
}
