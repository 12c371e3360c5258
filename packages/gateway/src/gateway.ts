import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import {
  Heartbeat,
  InferenceChunk,
  type Payload,
  RouteRequest,
  type SageError,
  type Tier,
  validatePayload,
} from "@sageserve/protocol";
import {
  Actor,
  type ActorContext,
  closeServer,
  listenUrl,
  readBodyLimited,
  type Subscription,
} from "@sageserve/runtime";
import { Counter, Histogram, Registry } from "prom-client";

export interface GatewayOptions {
  region: string;
  /**
   * Further home regions this front door accepts in `x-sage-region` (a global gateway behind a
   * geo-aware load balancer, or the laptop cluster); requests without the header are `region`'s.
   */
  regions?: string[];
  /** Models offered on /v1/models (the router decides what is actually served). */
  models: string[];
  host?: string;
  port?: number;
  /** API keys, their default tier and optional rate limit; when empty, no key is required. */
  apiKeys?: Record<
    string,
    { name: string; tier?: "fast" | "normal" | "batch"; requestsPerSecond?: number; burst?: number }
  >;
  /** Batch jobs remembered for the status endpoint (oldest forgotten first). */
  maxJobs?: number;
  maxBodyBytes?: number;
  /** How long to wait for routing, and for the first token. */
  routeTimeoutMs?: number;
  firstTokenTimeoutMs?: number;
  defaultMaxTokens?: number;
  /** NIW deadline when a batch request names none (ms). */
  batchDeadlineMs?: number;
  /**
   * Routing attempts per interactive request (default 3): a request whose node or engine is lost before
   * anything reached the client (before its first token, or a response not streamed) is routed again,
   * away from that node.
   */
  maxAttempts?: number;
}

const TIERS: Record<string, Tier> = { fast: "iw-fast", normal: "iw-normal", batch: "niw" };

/** Deepest JSON nesting a request body may have (an OpenAI body nests a handful of levels). */
export const MAX_BODY_DEPTH = 64;
/** Distinct unknown model names labelled in metrics before the rest count as "other". */
const MAX_MODEL_LABELS = 100;
const ROUTES: Record<string, string> = {
  "/v1/chat/completions": "POST",
  "/v1/completions": "POST",
  "/v1/models": "GET",
  "/health": "GET",
  "/metrics": "GET",
};

interface BatchJob {
  id: string;
  model: string;
  status: "queued" | "running" | "completed" | "failed";
  created: number;
  output: string;
  finish: string | undefined;
  unsubscribe?: () => void;
}

interface HttpError {
  status: number;
  message: string;
  type: string;
  code: string;
  param?: string;
  retryAfterS?: number;
}

/**
 * The OpenAI-compatible front door of a region. It authenticates the caller,
 * decides the tier (`x-sage-tier: fast|normal|batch`, else the API key's
 * default), asks the routers where the request runs, and relays the node's
 * token stream back as OpenAI SSE chunks (or one JSON response). Batch (NIW)
 * requests are queued and answered 202 with a job id. Bad input gets an
 * OpenAI-format 4xx naming the problem; overload gets 503 with Retry-After.
 */
export class GatewayActor extends Actor {
  private server: Server | undefined;
  readonly registry = new Registry();
  private readonly requests = new Counter({
    name: "sage_gateway_requests_total",
    help: "Requests by model, tier and HTTP status.",
    labelNames: ["model", "tier", "status"],
    registers: [this.registry],
  });
  private readonly ttft = new Histogram({
    name: "sage_gateway_ttft_seconds",
    help: "Time to first token seen by the client.",
    labelNames: ["model", "tier"],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120],
    registers: [this.registry],
  });
  private readonly tbt = new Histogram({
    name: "sage_gateway_tbt_seconds",
    help: "Time between tokens seen by the client.",
    labelNames: ["model", "tier"],
    buckets: [0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.25, 0.5, 1, 2],
    registers: [this.registry],
  });
  url = "";
  private readonly buckets = new Map<string, { tokens: number; atMs: number }>();
  private readonly jobs = new Map<string, BatchJob>();
  /** Node liveness from heartbeats: when each was last heard and its TTL. */
  private readonly nodes = new Map<string, { atMs: number; ttlMs: number }>();
  /** Requests routed again after their node or engine was lost before their first token. */
  retried = 0;
  private readonly modelLabels = new Set<string>();

  constructor(
    ctx: ActorContext,
    private readonly opts: GatewayOptions,
  ) {
    super(ctx, { role: "gateway", id: `gateway-${opts.region}`, metadata: { region: opts.region } });
  }

  protected async setup(): Promise<void> {
    this.on(
      Heartbeat,
      {},
      (hb) => {
        this.nodes.set(hb.nodeId, { atMs: this.clock.now(), ttlMs: hb.ttlMs });
      },
      { broadcast: true },
    );
    this.server = createServer((req, res) => {
      this.serve(req, res).catch((e) =>
        this.fail(res, { status: 500, message: String(e), type: "internal_server_error", code: "internal" }),
      );
    });
    // Requests Node's HTTP parser refuses (oversized headers, malformed lines) get the OpenAI error
    // shape too, instead of a bare status line.
    this.server.on("clientError", (err: NodeJS.ErrnoException, socket) => {
      // As Node's own handler: never write into a response already under way on this socket.
      const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
      if (!socket.writable || err.code === "ECONNRESET" || inFlight?.headersSent)
        return void socket.destroy();
      const status = err.code === "HPE_HEADER_OVERFLOW" ? 431 : 400;
      const body = JSON.stringify({
        error: {
          message:
            status === 431
              ? "request headers too large"
              : `malformed HTTP request (${err.code ?? "parse error"})`,
          type: "invalid_request_error",
          param: null,
          code: status === 431 ? "headers_too_large" : "bad_request",
        },
      });
      socket.end(
        `HTTP/1.1 ${status} ${status === 431 ? "Request Header Fields Too Large" : "Bad Request"}\r\n` +
          `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    });
    this.url = await listenUrl(this.server, this.opts.port ?? 0, this.opts.host ?? "127.0.0.1", "gateway");
  }

  protected override teardown(): Promise<void> {
    return closeServer(this.server);
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<unknown> {
    let path: string;
    try {
      path = new URL(req.url ?? "/", "http://x").pathname;
    } catch {
      return this.fail(res, {
        status: 400,
        message: "request target is not a valid URL",
        type: "invalid_request_error",
        code: "invalid_url",
      });
    }
    if (req.method === "GET" && path === "/health") return void res.writeHead(200).end();
    if (req.method === "GET" && path === "/metrics") {
      res.writeHead(200, { "content-type": this.registry.contentType }).end(await this.registry.metrics());
      return;
    }
    const auth = this.authenticate(req);
    if ("status" in auth) return this.fail(res, auth);
    const limited = this.rateLimit(auth.key);
    if (limited) return this.fail(res, limited);
    const job = /^\/v1\/sage\/jobs\/([^/]+)$/.exec(path);
    if (req.method === "GET" && job) {
      let id: string | undefined;
      try {
        id = decodeURIComponent(job[1]!);
      } catch {
        // malformed percent-encoding: no such job (decodeURIComponent threw a URIError → 500)
      }
      const j = id === undefined ? undefined : this.jobs.get(id);
      if (!j)
        return this.fail(res, {
          status: 404,
          message: `no job ${job[1]}`,
          type: "invalid_request_error",
          code: "job_not_found",
        });
      json(res, 200, {
        id: j.id,
        object: "sage.batch_job",
        status: j.status,
        model: j.model,
        created: j.created,
        ...(j.status === "completed" || j.status === "failed"
          ? { output: j.output, finish_reason: j.finish }
          : {}),
      });
      return;
    }
    if (req.method === "GET" && path === "/v1/models") {
      json(res, 200, {
        object: "list",
        data: this.opts.models.map((id) => ({ id, object: "model", created: 0, owned_by: "sageserve" })),
      });
      return;
    }
    const chat = path === "/v1/chat/completions";
    const allowed = job ? "GET" : ROUTES[path];
    if (allowed !== undefined && req.method !== allowed) {
      res.setHeader("allow", allowed);
      return this.fail(res, {
        status: 405,
        message: `${req.method} is not allowed on ${path} (allowed: ${allowed})`,
        type: "invalid_request_error",
        code: "method_not_allowed",
      });
    }
    if (req.method !== "POST" || (!chat && path !== "/v1/completions")) {
      return this.fail(res, {
        status: 404,
        message: `no route for ${req.method} ${path}`,
        type: "invalid_request_error",
        code: "not_found",
      });
    }
    const header = req.headers["x-sage-tier"];
    const tierName = (Array.isArray(header) ? header[0] : header) ?? auth.tier ?? "fast";
    // Own keys only: `x-sage-tier: constructor` found Object's constructor on the prototype.
    const tier = Object.hasOwn(TIERS, tierName) ? TIERS[tierName] : undefined;
    if (!tier) {
      return this.fail(res, {
        status: 400,
        message: `x-sage-tier must be fast, normal or batch, got '${tierName}'`,
        type: "invalid_request_error",
        code: "invalid_tier",
        param: "x-sage-tier",
      });
    }
    const regionHeader = req.headers["x-sage-region"];
    const region = (Array.isArray(regionHeader) ? regionHeader[0] : regionHeader) ?? this.opts.region;
    if (region !== this.opts.region && !this.opts.regions?.includes(region)) {
      return this.fail(res, {
        status: 400,
        message: `x-sage-region '${region}' is not served here (regions: ${[this.opts.region, ...(this.opts.regions ?? [])].join(", ")})`,
        type: "invalid_request_error",
        code: "invalid_region",
        param: "x-sage-region",
      });
    }
    // The body travels on in a RouteRequest: past NATS' 1 MiB max_payload it could not be routed.
    const raw = await readBody(req, this.opts.maxBodyBytes ?? 1024 * 1024 - 16 * 1024);
    if (typeof raw !== "string") return this.fail(res, raw);
    let body: Record<string, unknown>;
    try {
      const v = JSON.parse(raw) as unknown;
      if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("expected a JSON object");
      body = v as Record<string, unknown>;
    } catch (e) {
      return this.fail(res, {
        status: 400,
        message: `request body is not valid JSON: ${(e as Error).message}`,
        type: "invalid_request_error",
        code: "invalid_json",
      });
    }
    if (depthExceeds(body, MAX_BODY_DEPTH)) {
      // Deeper bodies overflowed the stack when encoded for NATS (a 503) or stringified (a 500).
      return this.fail(res, {
        status: 400,
        message: `request body nests deeper than ${MAX_BODY_DEPTH} levels`,
        type: "invalid_request_error",
        code: "invalid_json",
      });
    }
    const problem = checkBody(body, chat);
    if (problem) return this.fail(res, problem);
    await this.relay(res, body, chat, tier, tierName, region);
  }

  /** Token bucket per API key: over the rate, 429 with the seconds until a request fits again. */
  private rateLimit(key: string | undefined): HttpError | undefined {
    const entry =
      key && this.opts.apiKeys && Object.hasOwn(this.opts.apiKeys, key) ? this.opts.apiKeys[key] : undefined;
    if (!key || !entry?.requestsPerSecond) return undefined;
    const rate = entry.requestsPerSecond;
    const burst = entry.burst ?? Math.max(1, rate);
    const now = this.clock.now();
    const b = this.buckets.get(key) ?? { tokens: burst, atMs: now };
    b.tokens = Math.min(burst, b.tokens + ((now - b.atMs) / 1000) * rate);
    b.atMs = now;
    this.buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return undefined;
    }
    return {
      status: 429,
      message: `rate limit of ${rate} requests/s for this key exceeded`,
      type: "rate_limit_exceeded",
      code: "rate_limit_exceeded",
      retryAfterS: Math.max(1, Math.ceil((1 - b.tokens) / rate)),
    };
  }

  private authenticate(req: IncomingMessage): { tier?: string; key?: string } | HttpError {
    const keys = this.opts.apiKeys;
    if (!keys || Object.keys(keys).length === 0) return {};
    const h = req.headers.authorization ?? "";
    const key = h.startsWith("Bearer ") ? h.slice(7).trim() : "";
    // Own keys only: `Bearer constructor` (or toString, __proto__…) found a function on the
    // prototype and was let in without a key (found by test/fuzz-gateway).
    const entry = Object.hasOwn(keys, key) ? keys[key] : undefined;
    if (!key)
      return {
        status: 401,
        message: "missing API key: send 'Authorization: Bearer <key>'",
        type: "invalid_request_error",
        code: "missing_api_key",
      };
    if (!entry)
      return {
        status: 401,
        message: "invalid API key",
        type: "invalid_request_error",
        code: "invalid_api_key",
      };
    return entry.tier ? { tier: entry.tier, key } : { key };
  }

  private async relay(
    res: ServerResponse,
    body: Record<string, unknown>,
    chat: boolean,
    tier: Tier,
    tierName: string,
    region: string,
  ): Promise<void> {
    const model = String(body.model);
    const requestId = `r-${randomUUID()}`;
    const stream = body.stream === true;
    const maxTokens = Number(
      body.max_completion_tokens ?? body.max_tokens ?? this.opts.defaultMaxTokens ?? 256,
    );
    const promptText = chat
      ? (body.messages as { content?: unknown }[])
          .map((m) => (typeof m.content === "string" ? m.content : JSON.stringify(m.content ?? "")))
          .join(" ")
      : [body.prompt as string | string[]].flat().join(" ");
    const arrivalMs = this.clock.now();
    const started = this.clock.now();
    const label = this.modelLabel(model);
    const count = (status: number) =>
      this.requests.inc({ model: label, tier: tierName, status: String(status) });
    const maxAttempts = Math.max(1, this.opts.maxAttempts ?? 3);

    // Each attempt streams on its own subject (`<request>-a<n>` after the first), so a node wrongly
    // given up for lost can never interleave its tokens with the retry's.
    let chunks: Payload<typeof InferenceChunk>[] = [];
    let wake: (() => void) | undefined;
    let sub: Subscription | undefined;
    const listen = (rid: string): void => {
      sub?.unsubscribe();
      const mine: Payload<typeof InferenceChunk>[] = [];
      chunks = mine;
      sub = this.bus.subscribe(InferenceChunk.subject.build({ request: rid }), (m) => {
        const d = m.data();
        const c = d.ok ? validatePayload(InferenceChunk, d.value) : d;
        if (!c.ok) return;
        mine.push(c.value);
        wake?.();
      });
    };
    res.on("close", () => sub?.unsubscribe());
    const id = `${chat ? "chatcmpl" : "cmpl"}-${requestId.slice(2)}`;
    const created = Math.floor(this.clock.now() / 1000);
    const object = chat ? (stream ? "chat.completion.chunk" : "chat.completion") : "text_completion";
    let text = "";
    let index = 0;
    let finish = "stop";
    let lastTokenMs = started;
    const avoid: string[] = [];
    try {
      for (let attempt = 0; ; attempt++) {
        const rid = attempt === 0 ? requestId : `${requestId}-a${attempt}`;
        // Subscribe before routing: the node may start streaming before the router's reply arrives.
        listen(rid);
        const reply = await this.request(
          RouteRequest,
          { region, model },
          {
            requestId: rid,
            model,
            tier,
            originRegion: region,
            inputTokens: Math.max(1, Math.ceil(promptText.length / 4)),
            maxOutputTokens: maxTokens,
            arrivalMs,
            ...(tier === "niw" ? { deadlineMs: arrivalMs + (this.opts.batchDeadlineMs ?? 86_400_000) } : {}),
            stream,
            ...(attempt > 0 ? { attempt, avoidNodes: avoid } : {}),
            body: { ...body, stream: true },
          },
          this.opts.routeTimeoutMs ?? 5_000,
        );
        if (!reply.ok) {
          count(this.fail(res, routeError(reply.error, model)));
          return;
        }
        if (reply.value.decision === "queued" && reply.value.jobId) {
          count(202);
          this.trackJob(reply.value.jobId, requestId, model);
          json(res, 202, {
            id: reply.value.jobId,
            object: "sage.batch_job",
            status: "queued",
            model,
            region: reply.value.region,
          });
          return;
        }
        // Relay the stream, watching the node's heartbeats: a node that dies says nothing more.
        const nodeId = reply.value.nodeId;
        const dispatchedMs = this.clock.now();
        const deadline = this.clock.now() + (this.opts.firstTokenTimeoutMs ?? 120_000);
        let lost: { code: string; message: string } | undefined;
        for (;;) {
          const c = chunks.shift();
          if (!c) {
            if (res.destroyed) return;
            const left = deadline - this.clock.now();
            if (index === 0 && left <= 0) {
              count(
                this.fail(res, {
                  status: 504,
                  message: "no token within the first-token timeout",
                  type: "timeout",
                  code: "first_token_timeout",
                }),
              );
              return;
            }
            if (nodeId !== undefined && this.nodeLost(nodeId, dispatchedMs)) {
              lost = {
                code: "NODE_LOST",
                message: `node ${nodeId} stopped sending heartbeats while serving the request`,
              };
              break;
            }
            await new Promise<void>((r) => {
              wake = r;
              this.clock.setTimer(Math.max(10, Math.min(left > 0 ? left : 1_000, 1_000)), r);
            });
            wake = undefined;
            continue;
          }
          if (c.done) {
            if (c.error && index === 0 && c.error.code === "INVALID_REQUEST") {
              // The engine refused the request itself (e.g. prompt + max_tokens over the context length).
              count(
                this.fail(res, {
                  status: 400,
                  message: c.error.message,
                  type: "invalid_request_error",
                  code: "invalid_value",
                }),
              );
              return;
            }
            if (c.error)
              lost = {
                code: c.error.code,
                message:
                  c.error.code === "NO_CAPACITY" ? c.error.message : `engine failed: ${c.error.message}`,
              };
            else finish = c.finishReason ?? "stop";
            break;
          }
          const nowMs = this.clock.now();
          if (index > 0) this.tbt.observe({ model, tier: tierName }, (nowMs - lastTokenMs) / 1000);
          lastTokenMs = nowMs;
          if (index === 0) {
            this.ttft.observe({ model, tier: tierName }, (this.clock.now() - started) / 1000);
            if (stream)
              res.writeHead(200, {
                "content-type": "text/event-stream",
                "cache-control": "no-cache",
                connection: "keep-alive",
              });
          }
          if (stream) {
            const choice = chat
              ? {
                  index: 0,
                  delta:
                    index === 0 ? { role: "assistant", content: c.text ?? "" } : { content: c.text ?? "" },
                  finish_reason: null,
                }
              : { index: 0, text: c.text ?? "", finish_reason: null };
            res.write(`data: ${JSON.stringify({ id, object, created, model, choices: [choice] })}\n\n`);
          } else text += c.text ?? "";
          index++;
        }
        if (!lost) break;
        // The instance failed or its node is gone. Nothing reached the client yet (before the first
        // token, or a response not streamed): route again, away from that node. Else end with an error.
        const clientSawNothing = !stream || index === 0;
        // NO_CAPACITY: the router already waited for an instance; another attempt would wait again.
        const noCapacity = lost.code === "NO_CAPACITY";
        if (clientSawNothing && !noCapacity && attempt + 1 < maxAttempts) {
          if (nodeId !== undefined && !avoid.includes(nodeId)) avoid.push(nodeId);
          this.retried++;
          this.log.warn(
            { requestId, attempt: attempt + 1, node: nodeId, code: lost.code },
            "request lost before its first token reached the client: routing it again",
          );
          text = "";
          index = 0;
          continue;
        }
        const code = lost.code.toLowerCase();
        if (clientSawNothing) {
          count(
            this.fail(
              res,
              noCapacity
                ? {
                    status: 503,
                    message: `no capacity for ${model} right now (${lost.message})`,
                    type: "service_unavailable",
                    code: "overloaded",
                    retryAfterS: 2,
                  }
                : { status: 502, message: lost.message, type: "server_error", code, retryAfterS: 1 },
            ),
          );
          return;
        }
        // Mid-stream: an OpenAI error event (the SDKs raise it as an APIError), then the stream ends,
        // without [DONE], so no client mistakes the truncated answer for a complete one.
        count(502);
        res.end(
          `data: ${JSON.stringify({ error: { message: lost.message, type: "server_error", param: null, code } })}\n\n`,
        );
        return;
      }
      count(200);
      const usage = {
        prompt_tokens: Math.max(1, Math.ceil(promptText.length / 4)),
        completion_tokens: index,
        total_tokens: Math.max(1, Math.ceil(promptText.length / 4)) + index,
      };
      if (stream) {
        if (index === 0) res.writeHead(200, { "content-type": "text/event-stream" });
        const last = chat
          ? { index: 0, delta: {}, finish_reason: finish }
          : { index: 0, text: "", finish_reason: finish };
        res.write(`data: ${JSON.stringify({ id, object, created, model, choices: [last] })}\n\n`);
        res.end("data: [DONE]\n\n");
      } else {
        const choice = chat
          ? { index: 0, message: { role: "assistant", content: text }, finish_reason: finish }
          : { index: 0, text, finish_reason: finish };
        json(res, 200, { id, object, created, model, choices: [choice], usage });
      }
    } finally {
      sub?.unsubscribe();
    }
  }

  /**
   * Is `nodeId` gone? Silent for its heartbeat TTL since the later of its last heartbeat and the
   * dispatch (a node never heard from gets the default TTL of three 5-second heartbeats).
   */
  private nodeLost(nodeId: string, sinceMs: number): boolean {
    const seen = this.nodes.get(nodeId);
    const from = Math.max(sinceMs, seen?.atMs ?? 0);
    return this.clock.now() > from + (seen?.ttlMs ?? 15_000);
  }

  /**
   * A batch job's output arrives on its request's stream subject when the region agent releases it to
   * an instance: collect it for GET /v1/sage/jobs/{id}.
   */
  private trackJob(id: string, requestId: string, model: string): void {
    const job: BatchJob = {
      id,
      model,
      status: "queued",
      created: Math.floor(this.clock.now() / 1000),
      output: "",
      finish: undefined,
    };
    this.jobs.set(id, job);
    while (this.jobs.size > (this.opts.maxJobs ?? 10_000)) {
      const oldest = this.jobs.keys().next().value!;
      this.jobs.get(oldest)?.unsubscribe?.();
      this.jobs.delete(oldest);
    }
    const sub = this.bus.subscribe(InferenceChunk.subject.build({ request: requestId }), (m) => {
      const d = m.data();
      const c = d.ok ? validatePayload(InferenceChunk, d.value) : d;
      if (!c.ok) return;
      if (c.value.done) {
        job.status = c.value.error ? "failed" : "completed";
        job.finish = c.value.error ? "error" : (c.value.finishReason ?? "stop");
        if (c.value.error) job.output = c.value.error.message;
        sub.unsubscribe();
        return;
      }
      job.status = "running";
      job.output += c.value.text ?? "";
    });
    job.unsubscribe = () => sub.unsubscribe();
  }

  /**
   * Metric label for a model: served models and the first few unknown names by name, the rest as
   * "other" — every random name a client sends would otherwise become a time series of its own.
   */
  private modelLabel(model: string): string {
    if (this.opts.models.includes(model) || this.modelLabels.has(model)) return model;
    if (this.modelLabels.size >= MAX_MODEL_LABELS) return "other";
    this.modelLabels.add(model);
    return model;
  }

  private fail(res: ServerResponse, e: HttpError): number {
    if (res.headersSent) {
      res.destroy();
      return e.status;
    }
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (e.retryAfterS !== undefined) headers["retry-after"] = String(e.retryAfterS);
    res
      .writeHead(e.status, headers)
      .end(
        JSON.stringify({ error: { message: e.message, type: e.type, param: e.param ?? null, code: e.code } }),
      );
    return e.status;
  }
}

function routeError(e: SageError, model: string): HttpError {
  const code = (e.details as { code?: string } | undefined)?.code ?? e.code;
  if (code === "UNKNOWN_MODEL")
    return {
      status: 404,
      message: `The model \`${model}\` does not exist.`,
      type: "invalid_request_error",
      code: "model_not_found",
      param: "model",
    };
  if (code === "INVALID_REQUEST" || code === "SCHEMA" || code === "SUBJECT")
    return { status: 400, message: e.message, type: "invalid_request_error", code: "invalid_value" };
  if (code === "TOO_LARGE")
    return { status: 413, message: e.message, type: "invalid_request_error", code: "request_too_large" };
  // No router answered, or no capacity: the client should come back shortly.
  return {
    status: 503,
    message: `no capacity for ${model} right now (${code})`,
    type: "service_unavailable",
    code: "overloaded",
    retryAfterS: 2,
  };
}

const isMap = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

const ROLES = new Set(["system", "developer", "user", "assistant", "tool", "function"]);

/**
 * The OpenAI request fields the gateway reads or the engine would refuse, checked before anything
 * is routed: a body that passes is one an engine accepts (unknown fields pass through untouched).
 * Items of `messages` and `prompt` used to go unchecked: `messages: [null]` was a 500.
 */
function checkBody(body: Record<string, unknown>, chat: boolean): HttpError | undefined {
  const bad = (param: string, message: string): HttpError => ({
    status: 400,
    message: `${param}: ${message}`,
    type: "invalid_request_error",
    code: "invalid_value",
    param,
  });
  if (typeof body.model !== "string" || !body.model) return bad("model", "required string");
  if (chat) {
    if (!Array.isArray(body.messages) || body.messages.length === 0)
      return bad("messages", "a non-empty array is required");
    for (const [i, m] of body.messages.entries()) {
      if (!isMap(m)) return bad(`messages.${i}`, "must be an object");
      if (typeof m.role !== "string" || !ROLES.has(m.role))
        return bad(`messages.${i}.role`, `one of ${[...ROLES].join(", ")}`);
      const c = m.content;
      if (Array.isArray(c)) {
        for (const [j, part] of c.entries()) {
          if (!isMap(part) || typeof part.type !== "string")
            return bad(`messages.${i}.content.${j}`, "a content part object with a string type");
          if (part.text !== undefined && typeof part.text !== "string")
            return bad(`messages.${i}.content.${j}.text`, "must be a string");
        }
      } else if (c !== null && c !== undefined && typeof c !== "string")
        return bad(`messages.${i}.content`, "a string, an array of content parts, or null");
    }
  } else if (typeof body.prompt !== "string") {
    if (!Array.isArray(body.prompt) || body.prompt.length === 0)
      return bad("prompt", "a string or a non-empty array of strings is required");
    if (body.prompt.some((p) => typeof p !== "string")) return bad("prompt", "every item must be a string");
  }
  for (const k of ["max_tokens", "max_completion_tokens"]) {
    const v = body[k];
    if (
      v !== undefined &&
      v !== null &&
      (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > 1_000_000)
    )
      return bad(k, "an integer from 1 to 1,000,000");
  }
  const ranges: [string, number, number][] = [
    ["temperature", 0, 2],
    ["top_p", 0, 1],
    ["presence_penalty", -2, 2],
    ["frequency_penalty", -2, 2],
  ];
  for (const [k, lo, hi] of ranges) {
    const v = body[k];
    if (v !== undefined && v !== null && (typeof v !== "number" || !Number.isFinite(v) || v < lo || v > hi))
      return bad(k, `a number from ${lo} to ${hi}`);
  }
  if (body.n !== undefined && body.n !== null && body.n !== 1) return bad("n", "only n = 1 is supported");
  if (body.seed !== undefined && body.seed !== null && !Number.isSafeInteger(body.seed))
    return bad("seed", "an integer");
  if (body.stream !== undefined && body.stream !== null && typeof body.stream !== "boolean")
    return bad("stream", "a boolean");
  if (body.stream_options !== undefined && body.stream_options !== null && !isMap(body.stream_options))
    return bad("stream_options", "an object");
  const stop = body.stop;
  if (
    stop !== undefined &&
    stop !== null &&
    typeof stop !== "string" &&
    !(Array.isArray(stop) && stop.length <= 4 && stop.every((x) => typeof x === "string"))
  )
    return bad("stop", "a string or up to 4 strings");
  if (body.user !== undefined && typeof body.user !== "string") return bad("user", "a string");
  return undefined;
}

/** Is `v` nested deeper than `max` arrays/objects? Iterative: the check itself must not overflow. */
export function depthExceeds(v: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[v, 1]];
  while (stack.length > 0) {
    const [x, d] = stack.pop()!;
    if (typeof x !== "object" || x === null) continue;
    if (d > max) return true;
    for (const child of Array.isArray(x) ? x : Object.values(x)) {
      if (typeof child === "object" && child !== null) stack.push([child, d + 1]);
    }
  }
  return false;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage, limit: number): Promise<string | HttpError> {
  const r = await readBodyLimited(req, limit);
  if (r.ok) return r.body;
  return {
    status: r.status,
    message: r.message,
    type: "invalid_request_error",
    code: r.status === 413 ? "request_too_large" : "bad_body",
  };
}
