// `startEmulator`: options resolved once into the served model's state, the engine and its metrics built,
// the HTTP server started on the routes (`routes.ts`). What each endpoint answers lives with its handler.
import { createServer, type Server } from "node:http";
import { builtinPerformanceModel, type PerformanceModel } from "@sageserve/engine";
import { listen } from "@sageserve/runtime";
import { RealtimeEngine } from "./engine.js";
import { type ServedModel, send } from "./http.js";
import { emulatorMetrics } from "./metrics.js";
import { openAiError, type SchedulingPolicy } from "./openai.js";
import { route } from "./routes.js";

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
  const policy = o.schedulingPolicy ?? "fcfs";
  const engine = new RealtimeEngine(
    {
      prefillMs: (p, b) => timing.prefillMs(p, b) / speed,
      decodeIterMs: (b) => timing.decodeIterMs(b) / speed,
    },
    kvTokens,
    o.maxBatch ?? 256,
    undefined,
    { scheduling: policy },
  );
  const served: ServedModel = {
    model: o.model,
    name,
    maxModelLen,
    maxBodyBytes: o.maxBodyBytes ?? 8 * 1024 * 1024,
    policy,
    engine,
    metrics: emulatorMetrics(engine, name),
    // Without a load time the model is there at once: a 0-ms timer could still be pending when the
    // first request arrives on a busy machine (CI saw a 503 "model is loading" from an emulator that
    // should never load).
    loaded: !o.loadMs,
  };

  const ready = served.loaded
    ? Promise.resolve()
    : new Promise<void>((resolve) =>
        setTimeout(() => {
          served.loaded = true;
          resolve();
        }, o.loadMs),
      );

  const server = createServer((req, res) => {
    route(served, req, res).catch((e) =>
      send(res, openAiError(500, `internal error: ${String(e)}`, "internal_server_error")),
    );
  });

  const host = o.host ?? "127.0.0.1";
  const port = await listen(server, o.port ?? 0, host, `engine emulator for ${o.model}`);
  return {
    url: `http://${host}:${port}`,
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
