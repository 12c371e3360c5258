import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { builtinPerformanceModel, type PerformanceModel } from "@sageserve/engine";
import { listen, readBodyLimited } from "@sageserve/runtime";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { z } from "zod";
import { RealtimeEngine } from "./engine.js";
import { generate } from "./generate.js";
import {
  ChatBody,
  CompletionBody,
  chatPromptTokens,
  estimateTokens,
  type OpenAiError,
  openAiError,
  outputRequest,
  priorityTier,
  type SchedulingPolicy,
} from "./openai.js";
import { planOutput } from "./output.js";

export interface EmulatorOptions {
  /** Model served (a model the performance model knows). */
  model: string;
  gpu: string;
  /** Name clients use in `model` (default: the model id). */
  servedModelName?: string;
  host?: string;
  port?: number;
  /** Time to load the model at start, from the reference's model-load overhead unless set (ms). */
  loadMs?: number;
  /** Context length served (default: 32,768 or the KV capacity, whichever is smaller, as vLLM requires). */
  maxModelLen?: number;
  maxBatch?: number;
  /** KV-cache capacity in tokens (default: what the model leaves free on the GPU type's VM). A small
   * value makes a laptop demo saturate, and scale, at a few requests per second. */
  kvCapacityTokens?: number;
  maxBodyBytes?: number;
  /** Speed multiplier for tests and demos (2 = twice as fast as the measured hardware). */
  speedup?: number;
  /**
   * vLLM's `--scheduling-policy`: `fcfs` (default, as vLLM) schedules every request alike; `priority`
   * gives each the tier of its `priority` (`priorityTier`).
   */
  schedulingPolicy?: SchedulingPolicy;
  perf?: PerformanceModel;
}

export interface EmulatorHandle {
  url: string;
  port: number;
  server: Server;
  engine: RealtimeEngine;
  ready: Promise<void>;
  close(): Promise<void>;
}

const LATENCY_BUCKETS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640,
];

/**
 * An HTTP server that looks like a vLLM OpenAI-compatible server — the same
 * endpoints, response shapes, SSE streaming and Prometheus metric names — with
 * timing from the measured performance model. No GPU needed.
 */
export async function startEmulator(o: EmulatorOptions): Promise<EmulatorHandle> {
  const perf = o.perf ?? builtinPerformanceModel();
  const timing = perf.timingFor(o.model, o.gpu); // throws a typed error for an unknown model/GPU
  const speed = o.speedup ?? 1;
  const name = o.servedModelName ?? o.model;
  const kvTokens = o.kvCapacityTokens ?? perf.kvTokenCapacity(o.model, o.gpu);
  // As vLLM, which will not start with a context longer than its KV cache holds: the advertised context
  // is at most the KV capacity (a laptop engine with 8,000 KV tokens advertised 32,768).
  const maxModelLen = o.maxModelLen ?? Math.min(32_768, kvTokens);
  const engine = new RealtimeEngine(
    {
      prefillMs: (p, b) => timing.prefillMs(p, b) / speed,
      decodeIterMs: (b) => timing.decodeIterMs(b) / speed,
    },
    kvTokens,
    o.maxBatch ?? 256,
    undefined,
    { scheduling: o.schedulingPolicy ?? "fcfs" },
  );
  const registry = new Registry();
  const labels = { model_name: name };
  const labelNames = ["model_name"] as const;
  const g = (n: string, help: string, value: () => number) =>
    new Gauge({
      name: n,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.set(labels, value());
      },
    });
  g(
    "vllm:num_requests_running",
    "Number of requests currently running on GPU.",
    () => engine.stats().running,
  );
  g("vllm:num_requests_waiting", "Number of requests waiting to be processed.", () => engine.stats().waiting);
  g("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", () => engine.stats().kvUsage);
  g(
    "vllm:gpu_cache_usage_perc",
    "GPU KV-cache usage (v0 name). 1 means 100 percent usage.",
    () => engine.stats().kvUsage,
  );
  const c = (n: string, help: string, value: () => number) =>
    new Counter({
      name: n,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(labels, value());
      },
    });
  c("vllm:prompt_tokens_total", "Number of prefill tokens processed.", () => engine.promptTokensTotal);
  c(
    "vllm:generation_tokens_total",
    "Number of generation tokens processed.",
    () => engine.generationTokensTotal,
  );
  c(
    "vllm:num_preemptions_total",
    "Cumulative number of preemption from the engine.",
    () => engine.stats().preemptions,
  );
  c("vllm:request_success_total", "Count of successfully processed requests.", () => engine.requestsFinished);
  // Not a vLLM metric: what the emulator made of each request's priority, so a test or an operator can
  // see the tier a request reached the engine with.
  const byTier = new Counter({
    name: "emulator:requests_by_tier_total",
    help: "Requests handed to the engine, by the tier their priority (or the scheduling policy) gave them.",
    labelNames: ["model_name", "tier"] as const,
    registers: [registry],
  });
  const policy = o.schedulingPolicy ?? "fcfs";
  const h = (n: string, help: string) =>
    new Histogram({ name: n, help, labelNames, buckets: LATENCY_BUCKETS, registers: [registry] });
  const ttft = h("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.");
  const itl = h("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.");
  const e2e = h("vllm:e2e_request_latency_seconds", "Histogram of end to end request latency in seconds.");
  engine.onFirstToken = (s) => ttft.observe(labels, s);
  engine.onInterToken = (s) => itl.observe(labels, s);
  engine.onFinished = (s) => e2e.observe(labels, s);

  let loaded = false;
  const ready = new Promise<void>((resolve) =>
    setTimeout(() => {
      loaded = true;
      resolve();
    }, o.loadMs ?? 0),
  );

  const server = createServer((req, res) => {
    handle(req, res).catch((e) =>
      send(res, openAiError(500, `internal error: ${String(e)}`, "internal_server_error")),
    );
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://x");
    if (req.method === "GET" && url.pathname === "/health") {
      res.writeHead(loaded ? 200 : 503).end();
      return;
    }
    if (req.method === "GET" && url.pathname === "/metrics") {
      res.writeHead(200, { "content-type": registry.contentType }).end(await registry.metrics());
      return;
    }
    if (req.method === "GET" && url.pathname === "/v1/models") {
      json(res, 200, {
        object: "list",
        data: [
          {
            id: name,
            object: "model",
            created: 0,
            owned_by: "sageserve-emulator",
            root: o.model,
            max_model_len: maxModelLen,
          },
        ],
      });
      return;
    }
    const chat = url.pathname === "/v1/chat/completions";
    if (req.method !== "POST" || (!chat && url.pathname !== "/v1/completions")) {
      send(
        res,
        openAiError(404, `no route for ${req.method} ${url.pathname}`, "invalid_request_error", "not_found"),
      );
      return;
    }
    if (!loaded) {
      res.setHeader("retry-after", "1");
      send(res, openAiError(503, "model is loading", "service_unavailable", "model_loading"));
      return;
    }
    const raw = await readBody(req, o.maxBodyBytes ?? 8 * 1024 * 1024);
    if (typeof raw !== "string") {
      send(res, raw);
      return;
    }
    let parsedJson: unknown;
    try {
      parsedJson = JSON.parse(raw);
    } catch (e) {
      send(
        res,
        openAiError(
          400,
          `request body is not valid JSON: ${(e as Error).message}`,
          "invalid_request_error",
          "invalid_json",
        ),
      );
      return;
    }
    const parsed = (chat ? ChatBody : CompletionBody).safeParse(parsedJson);
    if (!parsed.success) {
      const i = parsed.error.issues[0]!;
      send(
        res,
        openAiError(
          400,
          `${i.path.join(".") || "body"}: ${i.message}`,
          "invalid_request_error",
          "invalid_value",
          i.path.join(".") || null,
        ),
      );
      return;
    }
    const body = parsed.data;
    if (body.model !== name) {
      send(
        res,
        openAiError(
          404,
          `The model \`${body.model}\` does not exist.`,
          "NotFoundError",
          "model_not_found",
          "model",
        ),
      );
      return;
    }
    // Each prompt of a completions batch, and each of its `n` choices, is a sequence of its own.
    const prompts = chat
      ? [chatPromptTokens(body as z.output<typeof ChatBody>)]
      : [(body as z.output<typeof CompletionBody>).prompt].flat().map(estimateTokens);
    const prompt = Math.max(...prompts);
    const maxTokens =
      (body as { max_completion_tokens?: number }).max_completion_tokens ?? body.max_tokens ?? 16;
    if (prompt + maxTokens > maxModelLen) {
      send(
        res,
        openAiError(
          400,
          `This model's maximum context length is ${maxModelLen} tokens. However, you requested ${prompt + maxTokens} tokens (${prompt} in the messages, ${maxTokens} in the completion).`,
          "BadRequestError",
          "context_length_exceeded",
          "messages",
        ),
      );
      return;
    }
    const id = `${chat ? "chatcmpl" : "cmpl"}-${randomUUID().replaceAll("-", "")}`;
    const seed = body.seed ?? (Number.parseInt(id.slice(-6), 16) || 1);
    const n = body.n ?? 1;
    const sequences = prompts.flatMap((promptTokens, p) =>
      Array.from({ length: n }, (_, j) => {
        const index = p * n + j;
        return {
          index,
          promptTokens,
          output: planOutput(outputRequest(body, chat, maxTokens, seed + index)),
        };
      }),
    );
    const tier = priorityTier(body.priority, policy);
    const ok = await generate(res, engine, {
      id,
      model: name,
      chat,
      stream: body.stream === true,
      usageChunk: body.stream_options?.include_usage === true,
      promptTokens: prompts.reduce((a, b) => a + b, 0),
      sequences,
      tier,
    });
    if (ok) byTier.inc({ model_name: name, tier }, sequences.length);
    else
      send(
        res,
        openAiError(
          400,
          `request needs ${prompts.reduce((a, b) => a + b, 0) + sequences.length * maxTokens} tokens of KV cache, more than this instance has`,
          "BadRequestError",
          "context_length_exceeded",
        ),
      );
  }

  const port = await listen(server, o.port ?? 0, o.host ?? "127.0.0.1", `engine emulator for ${o.model}`);
  return {
    url: `http://${o.host ?? "127.0.0.1"}:${port}`,
    port,
    server,
    engine,
    ready,
    close: () =>
      new Promise<void>((resolve) => {
        engine.stop();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}

function send(res: ServerResponse, e: OpenAiError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  json(res, e.status, e.body);
}

async function readBody(req: IncomingMessage, limit: number): Promise<string | OpenAiError> {
  const r = await readBodyLimited(req, limit);
  if (r.ok) return r.body;
  return openAiError(
    r.status,
    r.message,
    "invalid_request_error",
    r.status === 413 ? "request_too_large" : "bad_body",
  );
}
