// What the emulator's route handlers share: the served model's state (resolved once, at start) and
// the plumbing every endpoint replies with — JSON bodies, OpenAI-shaped errors, a size-limited body read.
import type { IncomingMessage, ServerResponse } from "node:http";
import { readBodyLimited } from "@sageserve/runtime";
import type { RealtimeEngine } from "./engine.js";
import type { EmulatorMetrics } from "./metrics.js";
import { type OpenAiError, openAiError, type SchedulingPolicy } from "./openai.js";

/** One emulated engine as its HTTP handlers see it: options resolved, metrics registered. */
export interface ServedModel {
  /** Model id (the performance model's). */
  model: string;
  /** Name clients use in `model`. */
  name: string;
  maxModelLen: number;
  maxBodyBytes: number;
  policy: SchedulingPolicy;
  engine: RealtimeEngine;
  metrics: EmulatorMetrics;
  /** False until the model has "loaded" (`loadMs` after start): /health is 503, completions refused. */
  loaded: boolean;
}

export function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}

export function send(res: ServerResponse, e: OpenAiError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  json(res, e.status, e.body);
}

export async function readBody(req: IncomingMessage, limit: number): Promise<string | OpenAiError> {
  const r = await readBodyLimited(req, limit);
  if (r.ok) return r.body;
  return openAiError(
    r.status,
    r.message,
    "invalid_request_error",
    r.status === 413 ? "request_too_large" : "bad_body",
  );
}
