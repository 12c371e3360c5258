import { randomUUID } from "node:crypto";
import type { ServerResponse } from "node:http";
import type { PayloadIn, ReplyOf, Result, RouteRequest, Tier } from "@sageserve/protocol";
import type { Clock, Logger } from "@sageserve/runtime";
import { fail, json, routeError } from "./http.js";
import type { Chunk } from "./inbox.js";
import { jobResultKey } from "./jobs.js";
import {
  type Collected,
  collect,
  completion,
  emptyCollected,
  errorEvent,
  estimateTokens,
  finishChunk,
  type OpenAiRequest,
  type ResponseMeta,
  responseMeta,
  sse,
  tokenChunk,
  usage,
  usageChunk,
} from "./openai.js";
import { type AttemptEnd, afterLoss, attemptEnd, nodeLostEnd } from "./retry.js";

/** What the relay loop needs from its gateway: a narrow set of ports, no actor. */
export interface RelayPorts {
  clock: Clock;
  log: Logger;
  /** Chunks of one attempt (by its request id), from the gateway's standing stream subscription. */
  listen(requestId: string, handler: (c: Chunk) => void): { unsubscribe(): void };
  /** The `streamTo` every route request carries: the gateway's listener token. */
  streamTo: string;
  route(payload: PayloadIn<typeof RouteRequest>): Promise<Result<ReplyOf<typeof RouteRequest>>>;
  /** The client went away: tell the router and the node running `requestId` to stop. */
  cancel(requestId: string): void;
  /** Has `nodeId` been silent past its heartbeat TTL since `sinceMs`? */
  nodeLost(nodeId: string, sinceMs: number): boolean;
  trackJob(jobId: string, requestId: string, model: string): void;
  onRetry(): void;
  /** The request ended having used `tokens` (prompt + output; 0 when nothing ran): its quota is settled. */
  settle(tokens: number): void;
  /** Count the request under its final HTTP status (499: the client went away first). */
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

/** nginx's "client closed request": the status under which requests the client abandoned are counted. */
export const CLIENT_CLOSED = 499;

/**
 * The relay loop of one request: route it, relay its node's chunks to the client as OpenAI SSE (or
 * collect them into one answer), watch the node's heartbeats, and route again by the retry rule
 * (`retry.ts`) when the node or engine is lost before anything reached the client. A client that goes
 * away cancels the request where it is (router or node).
 */
export function relay(
  ports: RelayPorts,
  s: RelaySettings,
  res: ServerResponse,
  job: RelayJob,
): Promise<void> {
  return new Relay(ports, s, res, job).run();
}

class Relay {
  private readonly requestId = `r-${randomUUID()}`;
  private readonly arrivalMs: number;
  private readonly meta: ResponseMeta;
  /** The current attempt's request id and its chunks not yet relayed. */
  private rid: string;
  private chunks: Chunk[] = [];
  private sub: { unsubscribe(): void } | undefined;
  private wake: (() => void) | undefined;
  /** Tokens of the current attempt so far (streamed: sent to the client). */
  private index = 0;
  /** Per choice index: what was collected (not streamed), whether its first token went out, its finish. */
  private collected = new Map<number, Collected>();
  private readonly started = new Set<number>();
  private readonly finishes = new Map<number, string>();
  private lastTokenMs: number;
  private counted = false;
  /** The answer's total tokens (usage), once answered. */
  private tokensUsed: number | undefined;
  private answered = false;

  constructor(
    private readonly ports: RelayPorts,
    private readonly s: RelaySettings,
    private readonly res: ServerResponse,
    private readonly job: RelayJob,
  ) {
    this.arrivalMs = ports.clock.now();
    this.lastTokenMs = this.arrivalMs;
    this.rid = this.requestId;
    this.meta = responseMeta(job.req, this.requestId, Math.floor(this.arrivalMs / 1000));
  }

  private count(status: number): void {
    if (this.counted) return;
    this.counted = true;
    this.ports.count(status);
  }

  async run(): Promise<void> {
    const { res } = this;
    res.on("close", () => {
      this.sub?.unsubscribe();
      this.wake?.();
      // Closed before the whole answer was written: the client aborted or disconnected.
      if (!res.writableFinished && !this.answered) {
        this.ports.cancel(this.rid);
        this.count(CLIENT_CLOSED);
      }
    });
    try {
      await this.attempts();
    } finally {
      this.sub?.unsubscribe();
      this.ports.settle(
        this.tokensUsed ?? (this.index ? estimateTokens(this.job.req.promptText) + this.index : 0),
      );
    }
  }

  /** Route, relay, and route again while the retry rule says so. */
  private async attempts(): Promise<void> {
    const { ports, job, res } = this;
    const { model, stream } = job.req;
    const maxAttempts = Math.max(1, this.s.maxAttempts);
    const avoid: string[] = [];
    for (let attempt = 0; ; attempt++) {
      this.rid = attempt === 0 ? this.requestId : `${this.requestId}-a${attempt}`;
      // Subscribe before routing: the node may start streaming before the router's reply arrives.
      this.listen(this.rid);
      const reply = await ports.route(this.routePayload(attempt, avoid));
      if (res.destroyed) return ports.cancel(this.rid);
      if (!reply.ok) return this.count(fail(res, routeError(reply.error, model)));
      if (reply.value.decision === "queued" && reply.value.jobId) {
        this.count(202);
        ports.trackJob(reply.value.jobId, this.requestId, model);
        return json(res, 202, {
          id: reply.value.jobId,
          object: "sage.batch_job",
          status: "queued",
          model,
          region: reply.value.region,
        });
      }
      const nodeId = reply.value.nodeId;
      const end = await this.pump(nodeId, ports.clock.now() + this.s.firstTokenTimeoutMs);
      if (!end) return;
      if (end.kind === "refused")
        return this.count(
          fail(res, {
            status: 400,
            message: end.message,
            type: "invalid_request_error",
            code: "invalid_value",
          }),
        );
      if (end.kind === "finished") return this.answer(end.finish, end.usage);
      const next = afterLoss(end, { stream, tokensSent: this.index, attempt, maxAttempts, model });
      if (next.kind === "retry") {
        // The instance failed or its node is gone before anything reached the client: route again,
        // away from that node.
        if (nodeId !== undefined && !avoid.includes(nodeId)) avoid.push(nodeId);
        ports.onRetry();
        ports.log.warn(
          { requestId: this.requestId, attempt: attempt + 1, node: nodeId, code: end.code },
          "request lost before its first token reached the client: routing it again",
        );
        this.collected.clear();
        this.finishes.clear();
        this.index = 0;
        continue;
      }
      if (next.kind === "fail") return this.count(fail(res, next.error));
      this.count(502);
      this.answered = true;
      res.end(sse(errorEvent(next.message, next.code)));
      return;
    }
  }

  private routePayload(attempt: number, avoid: string[]): PayloadIn<typeof RouteRequest> {
    const { req, body, tier, region } = this.job;
    return {
      requestId: this.rid,
      model: req.model,
      tier,
      originRegion: region,
      inputTokens: estimateTokens(req.promptText),
      maxOutputTokens: req.maxTokens,
      arrivalMs: this.arrivalMs,
      // A batch job's result is stored by its node too: any gateway answers for it, also after the
      // gateway that queued it stopped.
      ...(tier === "niw"
        ? { deadlineMs: this.arrivalMs + this.s.batchDeadlineMs, resultKey: jobResultKey(this.requestId) }
        : {}),
      stream: req.stream,
      ...(attempt > 0 ? { attempt, avoidNodes: avoid } : {}),
      body: { ...body, stream: true },
      streamTo: this.ports.streamTo,
    };
  }

  /** Each attempt streams on its own subject, so a node wrongly given up for lost never interleaves. */
  private listen(rid: string): void {
    this.sub?.unsubscribe();
    const mine: Chunk[] = [];
    this.chunks = mine;
    this.sub = this.ports.listen(rid, (c) => {
      mine.push(c);
      this.wake?.();
    });
  }

  /**
   * Relay one attempt's chunks until its final chunk, its node's loss or the first-token timeout.
   * Undefined: the client is gone or has been answered.
   */
  private async pump(
    nodeId: string | undefined,
    deadline: number,
  ): Promise<(AttemptEnd & { usage?: Chunk["usage"] }) | undefined> {
    const { clock } = this.ports;
    const dispatchedMs = clock.now();
    for (;;) {
      const c = this.chunks.shift();
      if (!c) {
        if (this.res.destroyed) return undefined;
        const left = deadline - clock.now();
        if (this.index === 0 && left <= 0) {
          this.count(
            fail(this.res, {
              status: 504,
              message: "no token within the first-token timeout",
              type: "timeout",
              code: "first_token_timeout",
            }),
          );
          return undefined;
        }
        // A node that dies says nothing more: watch its heartbeats.
        if (nodeId !== undefined && this.ports.nodeLost(nodeId, dispatchedMs)) return nodeLostEnd(nodeId);
        await new Promise<void>((r) => {
          this.wake = r;
          clock.setTimer(Math.max(10, Math.min(left > 0 ? left : 1_000, 1_000)), r);
        });
        this.wake = undefined;
        continue;
      }
      if (c.done) return { ...attemptEnd(c, this.index), ...(c.usage ? { usage: c.usage } : {}) };
      this.token(c);
    }
  }

  /** One token: to the client (streamed) or into the answer. */
  private token(c: Chunk): void {
    const { ports, res } = this;
    const { chat, stream } = this.job.req;
    const nowMs = ports.clock.now();
    if (this.index > 0) ports.observeTbt((nowMs - this.lastTokenMs) / 1000);
    this.lastTokenMs = nowMs;
    if (this.index === 0) {
      ports.observeTtft((nowMs - this.arrivalMs) / 1000);
      if (stream)
        res.writeHead(200, {
          "content-type": "text/event-stream",
          "cache-control": "no-cache",
          connection: "keep-alive",
        });
    }
    const choice = c.index ?? 0;
    const piece = { index: choice, text: c.text ?? "", toolCalls: c.toolCalls, logprobs: c.logprobs };
    if (c.finishReason) this.finishes.set(choice, c.finishReason);
    if (stream) {
      res.write(sse(tokenChunk(this.meta, chat, piece, !this.started.has(choice))));
      this.started.add(choice);
    } else this.collected.set(choice, collect(this.collected.get(choice) ?? emptyCollected(), piece));
    this.index++;
  }

  /** The request finished: the last chunks (and usage) of a stream, or the whole answer. */
  private answer(finish: string, engineUsage: Chunk["usage"]): void {
    const { res, meta } = this;
    const { chat, stream, includeUsage, promptText } = this.job.req;
    this.count(200);
    this.answered = true;
    // The engine's own counts when it reported them; else the estimate and the tokens relayed.
    const u = usage(
      engineUsage?.promptTokens || estimateTokens(promptText),
      engineUsage?.completionTokens ?? this.index,
    );
    this.tokensUsed = u.total_tokens;
    // Each choice ends with its own finish reason (the engine's for it, else the request's).
    const choices = [...new Set([0, ...this.collected.keys(), ...this.started])].sort((a, b) => a - b);
    const finishOf = (i: number) => this.finishes.get(i) ?? finish;
    if (!stream) {
      const answer = choices.map((i) => ({
        index: i,
        out: this.collected.get(i) ?? emptyCollected(),
        finish: finishOf(i),
      }));
      json(res, 200, completion(meta, chat, answer, u));
      return;
    }
    if (this.index === 0) res.writeHead(200, { "content-type": "text/event-stream" });
    for (const i of choices) res.write(sse(finishChunk(meta, chat, finishOf(i), i)));
    if (includeUsage) res.write(sse(usageChunk(meta, u)));
    res.end(sse("[DONE]"));
  }
}
