import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import {
  BATCH_RESULTS_BUCKET,
  BatchLineResult,
  DEFAULT_NIW_DEADLINE_MS,
  Heartbeat,
  QuotaUsage,
  RequestCancel,
  RouteRequest,
} from "@sageserve/protocol";
import { Actor, type ActorContext, closeServer, listenUrl } from "@sageserve/runtime";
import { Counter, Histogram, Registry } from "prom-client";
import { type ApiKey, authenticate, RateLimiter } from "./auth.js";
import { answerBatchApi } from "./batch-routes.js";
import { Batches } from "./batches.js";
import { FileStore } from "./files.js";
import { regionOf, tierOf } from "./headers.js";
import { answerClientError, CORS_HEADERS, checkContent, fail, json, ROUTES } from "./http.js";
import { StreamInbox } from "./inbox.js";
import { BatchJobs, jobResultKey } from "./jobs.js";
import { NodeLiveness } from "./liveness.js";
import { answerModels } from "./models.js";
import { estimateTokens, readRequest } from "./openai.js";
import { type Admission, SharedQuotas } from "./quota.js";
import { type RelayPorts, type RelaySettings, relay } from "./relay.js";
import { checkBody, readJsonBody } from "./validate.js";

export interface GatewayOptions {
  region: string;
  /** Actor id, unique per replica (default `gateway-<region>-<random>`). */
  id?: string;
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
  apiKeys?: Record<string, ApiKey>;
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
  /** Largest `POST /v1/files` upload (default 100 MiB). */
  maxFileBytes?: number;
  /** How often this gateway moves the batches it runs along (default 2 s). */
  batchTickMs?: number;
  /** A batch whose gateway has not moved it for this long is taken over by another (default 15 s). */
  batchOwnerTtlMs?: number;
}

/** A batch tick running this long is presumed stuck and another starts. */
const BATCH_TICK_STUCK_MS = 60_000;
/** How long job views stay in KV `sage-jobs` (the default batch deadline is a day). */
const JOB_TTL_MS = 7 * 86_400_000;
/** A batch job id as the router makes it: `j-` and the request id (`r-` and a UUID). */
const JOB_ID = /^j-r-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Distinct unknown model names labelled in metrics before the rest count as "other". */
const MAX_MODEL_LABELS = 100;

/**
 * The OpenAI-compatible front door of a region. It authenticates the caller (`auth.ts`), decides the
 * tier (`x-sage-tier: fast|normal|batch`, else the API key's default), validates the body
 * (`validate.ts`) and hands it to the relay loop (`relay.ts`), which asks the routers where the request
 * runs and relays the node's token stream back as OpenAI SSE chunks or one JSON response
 * (`openai.ts`). Batch (NIW) requests are queued and answered 202 with a job id (`jobs.ts`). Bad input
 * gets an OpenAI-format 4xx naming the problem; overload gets 503 with Retry-After.
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
  private readonly limiter: RateLimiter;
  private readonly jobs: BatchJobs;
  /** Every token stream this gateway relays, on one standing subscription. */
  private readonly inbox: StreamInbox;
  /** Node liveness from heartbeats: silence past the TTL, or a restart, loses a node's requests. */
  private readonly nodes = new NodeLiveness();
  /** Requests routed again after their node or engine was lost before their first token. */
  retried = 0;
  private readonly modelLabels = new Set<string>();
  private readonly relaySettings: RelaySettings;
  private readonly quotas: SharedQuotas;
  private readonly files: FileStore;
  readonly batches: Batches;
  /** When the batch tick running now started (undefined: none running). */
  private batchTickSince: number | undefined;

  constructor(
    ctx: ActorContext,
    private readonly opts: GatewayOptions,
  ) {
    // Unique per replica: broadcast subscriptions (heartbeats, quota usage) are queue groups named after
    // the actor id, so replicas sharing `gateway-<region>` each got only part of them.
    super(ctx, {
      role: "gateway",
      id: opts.id ?? `gateway-${opts.region}-${randomUUID().slice(0, 8)}`,
      metadata: { region: opts.region },
    });
    this.limiter = new RateLimiter(opts.apiKeys);
    const keys = opts.apiKeys ?? {};
    this.quotas = new SharedQuotas(
      (key) => (Object.hasOwn(keys, key) ? keys[key] : undefined),
      this.identity.id,
      (u) => {
        this.publish(QuotaUsage, { key: u.key }, u);
      },
    );
    this.inbox = new StreamInbox(this.bus, this.identity.id);
    this.jobs = new BatchJobs(this.inbox, opts.maxJobs ?? 10_000, {
      put: (id, view) => void this.kvPut("sage-jobs", id, view, { bucketTtlMs: JOB_TTL_MS }),
      get: async (id) => {
        // Only ids of the shape gateways hand out reach NATS: any other string a client sends is no job.
        if (!JOB_ID.test(id)) return undefined;
        const r = await this.kvGet("sage-jobs", id);
        // An id that is no valid KV key (any string a client sends) is no job either.
        return r.ok && typeof r.value === "object" && r.value !== null ? (r.value as object) : undefined;
      },
      result: async (requestId) => {
        const r = await this.kvGet(BATCH_RESULTS_BUCKET, jobResultKey(requestId));
        const v = r.ok ? BatchLineResult.safeParse(r.value) : undefined;
        return v?.success ? v.data : undefined;
      },
    });
    this.files = new FileStore(this.bus, () => Math.floor(this.clock.now() / 1000));
    this.batches = new Batches({
      bus: this.bus,
      files: this.files,
      clock: this.clock,
      log: this.log,
      self: this.identity.id,
      region: opts.region,
      models: opts.models,
      defaultMaxTokens: opts.defaultMaxTokens ?? 256,
      ...(opts.batchOwnerTtlMs === undefined ? {} : { ownerTtlMs: opts.batchOwnerTtlMs }),
      route: (payload) =>
        this.request(
          RouteRequest,
          { region: payload.originRegion, model: payload.model },
          payload,
          opts.routeTimeoutMs ?? 5_000,
        ),
      cancel: (requestId) => {
        this.publish(
          RequestCancel,
          { request: requestId },
          { requestId, reason: "client-closed", atMs: this.clock.now() },
        );
      },
    });
    this.relaySettings = {
      firstTokenTimeoutMs: opts.firstTokenTimeoutMs ?? 120_000,
      maxAttempts: opts.maxAttempts ?? 3,
      batchDeadlineMs: opts.batchDeadlineMs ?? DEFAULT_NIW_DEADLINE_MS,
    };
  }

  protected async setup(): Promise<void> {
    this.inbox.start();
    this.on(QuotaUsage, {}, (u) => this.quotas.record(u), { broadcast: true });
    // The job bucket exists with its TTL before any gateway reads it (a read first would create it
    // without one); the entry says which gateways ran.
    await this.kvPut(
      "sage-jobs",
      this.identity.id,
      { startedAtMs: this.clock.now() },
      { bucketTtlMs: JOB_TTL_MS },
    );
    this.on(
      Heartbeat,
      {},
      (hb) => {
        this.nodes.heard(hb, this.clock.now());
      },
      { broadcast: true },
    );
    // Every gateway runs the batches it owns, and takes over those whose runner went silent.
    this.every(this.opts.batchTickMs ?? 2_000, async () => {
      const now = this.clock.now();
      if (this.batchTickSince !== undefined) {
        // One tick at a time; one stuck on a NATS call that never answers is given up after a minute.
        if (now - this.batchTickSince < BATCH_TICK_STUCK_MS) return;
        this.log.warn(
          { sinceMs: this.batchTickSince },
          "batch tick did not finish in a minute: starting another",
        );
      }
      const since = now;
      this.batchTickSince = since;
      try {
        await this.batches.tick();
      } finally {
        if (this.batchTickSince === since) this.batchTickSince = undefined;
      }
    });
    this.server = createServer((req, res) => {
      this.serve(req, res).catch((e) =>
        fail(res, { status: 500, message: String(e), type: "internal_server_error", code: "internal" }),
      );
    });
    // Idle keep-alive connections live 65 s (Node's default is 5 s), longer than the 60 s idle timeout of
    // common load balancers in front of it, and the client's pool (which closes a socket a little before
    // the server's Keep-Alive hint) closes first: a request sent on a socket the server is closing in the
    // same moment fails with "other side closed" — seen from the compose test on a busy machine.
    this.server.keepAliveTimeout = 65_000;
    this.server.headersTimeout = 66_000;
    this.server.on("clientError", (err: NodeJS.ErrnoException, socket) =>
      answerClientError(err, socket as Socket),
    );
    this.url = await listenUrl(this.server, this.opts.port ?? 0, this.opts.host ?? "127.0.0.1", "gateway");
  }

  protected override async teardown(): Promise<void> {
    await closeServer(this.server);
    this.inbox.stop();
  }

  /**
   * A request answered before it was relayed (a 4xx for the request itself, `/v1/models`): counted
   * under model and tier "-", as neither is known yet or the request has none.
   */
  private countEarly(status: number, tier = "-"): number {
    this.requests.inc({ model: "-", tier, status: String(status) });
    return status;
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<unknown> {
    const r = await this.answer(req, res);
    if (typeof r === "number") this.countEarly(r);
    return r;
  }

  /** Answer one request; a number = answered here with that status (not relayed). */
  private async answer(req: IncomingMessage, res: ServerResponse): Promise<number | undefined> {
    let path: string;
    try {
      path = new URL(req.url ?? "/", "http://x").pathname;
    } catch {
      return fail(res, {
        status: 400,
        message: "request target is not a valid URL",
        type: "invalid_request_error",
        code: "invalid_url",
      });
    }
    // Browsers may call the API (the SDKs' dangerouslyAllowBrowser): a preflight is answered here, and
    // every answer allows any origin.
    res.setHeader("access-control-allow-origin", "*");
    if (req.method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined) {
      res.writeHead(204, CORS_HEADERS).end();
      return;
    }
    // Probes and scrapes are not API requests: not counted.
    if (req.method === "GET" && path === "/health") return void json(res, 200, { status: "ok" });
    if (req.method === "GET" && path === "/metrics") {
      res.writeHead(200, { "content-type": this.registry.contentType }).end(await this.registry.metrics());
      return;
    }
    const auth = authenticate(this.opts.apiKeys, req.headers.authorization);
    if ("status" in auth) return fail(res, auth);
    const limited = this.limiter.take(auth.key, this.clock.now());
    if (limited) return fail(res, limited);
    if (req.method === "POST" && (path === "/v1/chat/completions" || path === "/v1/completions"))
      return this.complete(req, res, path === "/v1/chat/completions", auth);
    const batchApi = await answerBatchApi(req, res, path, {
      files: this.files,
      batches: this.batches,
      maxFileBytes: this.opts.maxFileBytes ?? 100 * 1024 * 1024,
      readJson: (r) => this.readJson(r),
    });
    if (batchApi !== undefined) return batchApi;
    return this.resource(req, res, path);
  }

  /** The GET resources (batch jobs, models), and 405/404 for everything else. */
  private async resource(req: IncomingMessage, res: ServerResponse, path: string): Promise<number> {
    const job = /^\/v1\/sage\/jobs\/([^/]+)$/.exec(path);
    if (req.method === "GET" && job) {
      let id: string | undefined;
      try {
        id = decodeURIComponent(job[1]!);
      } catch {
        // malformed percent-encoding: no such job (decodeURIComponent threw a URIError → 500)
      }
      const view = id === undefined ? undefined : await this.jobs.view(id);
      if (!view)
        return fail(res, {
          status: 404,
          message: `no job ${job[1]}`,
          type: "invalid_request_error",
          code: "job_not_found",
        });
      json(res, 200, view);
      return 200;
    }
    const models = answerModels(req, res, path, this.opts.models);
    if (models !== undefined) return models;
    const allowed = job ? "GET" : ROUTES[path];
    if (allowed !== undefined && req.method !== allowed) {
      res.setHeader("allow", allowed);
      return fail(res, {
        status: 405,
        message: `${req.method} is not allowed on ${path} (allowed: ${allowed})`,
        type: "invalid_request_error",
        code: "method_not_allowed",
      });
    }
    return fail(res, {
      status: 404,
      message: `no route for ${req.method} ${path}`,
      type: "invalid_request_error",
      code: "not_found",
    });
  }

  /** A chat or legacy completion: tier and region from the headers, the body checked, then relayed. */
  private async complete(
    req: IncomingMessage,
    res: ServerResponse,
    chat: boolean,
    auth: { tier?: string; key?: string },
  ): Promise<number | undefined> {
    const tier = tierOf(req.headers["x-sage-tier"], auth.tier);
    if ("status" in tier) return fail(res, tier);
    const region = regionOf(req.headers["x-sage-region"], this.opts.region, this.opts.regions ?? []);
    if (typeof region !== "string") return fail(res, region);
    const content = checkContent(req.headers);
    if (content) return fail(res, content);
    const body = await this.readJson(req);
    if ("status" in body) return fail(res, body);
    const problem = checkBody(body.value, chat);
    if (problem) return fail(res, problem);
    const request = readRequest(body.value, chat, this.opts.defaultMaxTokens ?? 256);
    if (tier.tier === "niw" && request.stream)
      // A batch request is answered later (202 + a job): a stream would end empty, which the SDKs take
      // for a complete answer.
      return fail(res, {
        status: 400,
        message:
          "batch requests (x-sage-tier: batch) cannot be streamed: send stream: false and poll the job",
        type: "invalid_request_error",
        code: "stream_not_supported",
        param: "stream",
      });
    const quota = this.takeQuota(res, auth.key, body.value, request);
    if (quota?.refused) return fail(res, quota.refused);
    await relay(this.relayPorts(request.model, tier.name, quota), this.relaySettings, res, {
      req: request,
      body: body.value,
      tier: tier.tier,
      region,
    });
    return undefined;
  }

  /**
   * The key's shared quota: the request reserves its prompt estimate and its maximum output (every
   * choice), and every answer carries OpenAI's `x-ratelimit-*` headers. Undefined: no quota.
   */
  private takeQuota(
    res: ServerResponse,
    key: string | undefined,
    body: Record<string, unknown>,
    request: { promptText: string; maxTokens: number },
  ): Admission | undefined {
    const choices =
      (typeof body.n === "number" ? body.n : 1) * (Array.isArray(body.prompt) ? body.prompt.length : 1);
    const reserve = estimateTokens(request.promptText) + request.maxTokens * choices;
    const quota = this.quotas.take(key, reserve, this.clock.now());
    for (const [h, v] of Object.entries(quota?.headers ?? {})) res.setHeader(h, v);
    return quota;
  }

  /** The relay loop's ports for one request: the bus, the clock, this gateway's metrics and jobs. */
  private relayPorts(model: string, tierName: string, quota?: Admission): RelayPorts {
    const label = this.modelLabel(model);
    return {
      clock: this.clock,
      log: this.log,
      listen: (requestId, handler) => this.inbox.listen(requestId, handler),
      streamTo: this.inbox.listener,
      cancel: (requestId) => {
        this.publish(
          RequestCancel,
          { request: requestId },
          { requestId, reason: "client-closed", atMs: this.clock.now() },
        );
      },
      route: (payload) =>
        this.request(
          RouteRequest,
          { region: payload.originRegion, model },
          payload,
          this.opts.routeTimeoutMs ?? 5_000,
        ),
      nodeLost: (nodeId, sinceMs) => this.nodeLost(nodeId, sinceMs),
      trackJob: (jobId, requestId) =>
        this.jobs.track(jobId, requestId, model, Math.floor(this.clock.now() / 1000)),
      settle: (tokens) => quota?.settle(tokens),
      onRetry: () => {
        this.retried++;
      },
      count: (status) => this.requests.inc({ model: label, tier: tierName, status: String(status) }),
      observeTtft: (s) => this.ttft.observe({ model, tier: tierName }, s),
      observeTbt: (s) => this.tbt.observe({ model, tier: tierName }, s),
    };
  }

  /** The body as a JSON object (`readJsonBody`), within this gateway's size limit. */
  private readJson(req: IncomingMessage) {
    // The body travels on in a RouteRequest: past NATS' 1 MiB max_payload it could not be routed.
    return readJsonBody(req, this.opts.maxBodyBytes ?? 1024 * 1024 - 16 * 1024);
  }

  /** A key's usage over the last minute as this gateway sees it (all replicas): for operators and tests. */
  quotaUsed(apiKey: string): { requests: number; tokens: number } {
    const { requests, tokens } = this.quotas.used(apiKey, this.clock.now());
    return { requests, tokens };
  }

  /** Is `nodeId` gone for a request dispatched at `sinceMs`? (`NodeLiveness`: silent past its TTL or restarted.) */
  private nodeLost(nodeId: string, sinceMs: number): boolean {
    return this.nodes.lost(nodeId, sinceMs, this.clock.now());
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
}
