// The emulator's HTTP routes, as vLLM's OpenAI-compatible server has them: /health, /metrics,
// /v1/models, and the two completion endpoints (`serveCompletion`); anything else is an OpenAI 404.
// One handler per endpoint, each a function of the served model's state and the exchange.
import type { IncomingMessage, ServerResponse } from "node:http";
import { serveCompletion } from "./completions.js";
import { json, type ServedModel, send } from "./http.js";
import { openAiError } from "./openai.js";

/** Answer one request: the handler for its method and path. */
export async function route(m: ServedModel, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? "/", "http://x");
  if (req.method === "GET" && url.pathname === "/health") {
    serveHealth(m, res);
    return;
  }
  if (req.method === "GET" && url.pathname === "/metrics") {
    await serveMetrics(m, res);
    return;
  }
  if (req.method === "GET" && url.pathname === "/v1/models") {
    serveModels(m, res);
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
  await serveCompletion(m, req, res, chat);
}

/** 200 once the model has loaded, 503 before. */
function serveHealth(m: ServedModel, res: ServerResponse): void {
  res.writeHead(m.loaded ? 200 : 503).end();
}

async function serveMetrics(m: ServedModel, res: ServerResponse): Promise<void> {
  const registry = m.metrics.registry;
  res.writeHead(200, { "content-type": registry.contentType }).end(await registry.metrics());
}

function serveModels(m: ServedModel, res: ServerResponse): void {
  json(res, 200, {
    object: "list",
    data: [
      {
        id: m.name,
        object: "model",
        created: 0,
        owned_by: "sageserve-emulator",
        root: m.model,
        max_model_len: m.maxModelLen,
      },
    ],
  });
}
