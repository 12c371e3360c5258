import type { BatchLineResult } from "@sageserve/protocol";
import { errorMessage } from "@sageserve/protocol";
import {
  type Choice,
  type Collected,
  collect,
  completion,
  emptyCollected,
  estimateTokens,
  readRequest,
  responseMeta,
  usage,
} from "./openai.js";
import { checkBody, depthExceeds, MAX_BODY_DEPTH } from "./validate.js";

/**
 * The Batch API's file formats, pure: the input JSONL read into requests (every line checked as the
 * gateway checks a request), and the output / error file lines made from the results the nodes stored.
 */

export const BATCH_ENDPOINTS = ["/v1/chat/completions", "/v1/completions"] as const;
export type BatchEndpoint = (typeof BATCH_ENDPOINTS)[number];

/** Most requests in one batch (OpenAI's limit). */
export const MAX_BATCH_LINES = 50_000;

export interface BatchLine {
  customId: string;
  body: Record<string, unknown>;
  model: string;
  promptTokens: number;
  maxTokens: number;
}

/** OpenAI's batch error (`errors.data[]`): what was wrong, on which line (1-based). */
export interface BatchLineError {
  code: string;
  message: string;
  param: string | null;
  line: number | null;
}

/**
 * `completion_window` → milliseconds: `<hours>h`, 1 to 168 (OpenAI accepts `24h`; shorter windows make
 * tighter NIW deadlines, longer ones looser). Undefined: not a window.
 */
export function windowMs(w: unknown): number | undefined {
  const m = typeof w === "string" ? /^([0-9]{1,3})h$/.exec(w) : null;
  const h = m ? Number(m[1]) : Number.NaN;
  return h >= 1 && h <= 168 ? h * 3_600_000 : undefined;
}

/** Read an input file: its requests, or every problem found (at most 100), each naming its line. */
export function parseBatchInput(
  text: string,
  endpoint: BatchEndpoint,
  models: readonly string[],
  defaultMaxTokens: number,
): { lines: BatchLine[] } | { errors: BatchLineError[] } {
  const errors: BatchLineError[] = [];
  const lines: BatchLine[] = [];
  const seen = new Set<string>();
  const chat = endpoint === "/v1/chat/completions";
  const rows = text.split("\n");
  const err = (line: number, code: string, message: string, param: string | null = null) => {
    if (errors.length < 100) errors.push({ code, message, param, line });
  };
  const read = (raw: string, i: number) => {
    const n = i + 1;
    if (raw.trim() === "") return;
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch (e) {
      return err(n, "invalid_json_line", `line ${n} is not valid JSON: ${errorMessage(e)}`);
    }
    if (typeof v !== "object" || v === null || Array.isArray(v))
      return err(n, "invalid_json_line", `line ${n} is not a JSON object`);
    const o = v as Record<string, unknown>;
    if (typeof o.custom_id !== "string" || o.custom_id === "")
      return err(
        n,
        "missing_required_parameter",
        `line ${n}: custom_id must be a non-empty string`,
        "custom_id",
      );
    if (seen.has(o.custom_id))
      return err(
        n,
        "duplicate_custom_id",
        `line ${n}: custom_id '${o.custom_id}' is used twice`,
        "custom_id",
      );
    seen.add(o.custom_id);
    if (o.method !== "POST") return err(n, "invalid_method", `line ${n}: method must be POST`, "method");
    if (o.url !== endpoint)
      return err(n, "mismatched_url", `line ${n}: url must be the batch's endpoint ${endpoint}`, "url");
    const body = o.body;
    if (typeof body !== "object" || body === null || Array.isArray(body))
      return err(n, "invalid_body", `line ${n}: body must be a JSON object`, "body");
    const b = body as Record<string, unknown>;
    if (depthExceeds(b, MAX_BODY_DEPTH))
      return err(n, "invalid_body", `line ${n}: body nests deeper than ${MAX_BODY_DEPTH} levels`, "body");
    const problem = checkBody(b, chat);
    if (problem) return err(n, "invalid_body", `line ${n}: ${problem.message}`, problem.param ?? "body");
    if (b.stream === true)
      return err(n, "invalid_body", `line ${n}: batch requests cannot stream`, "body.stream");
    if (!models.includes(String(b.model)))
      return err(
        n,
        "model_not_found",
        `line ${n}: the model '${String(b.model)}' does not exist`,
        "body.model",
      );
    const r = readRequest(b, chat, defaultMaxTokens);
    lines.push({
      customId: o.custom_id,
      body: b,
      model: r.model,
      promptTokens: estimateTokens(r.promptText),
      maxTokens: r.maxTokens,
    });
  };
  for (let i = 0; i < rows.length; i++) read(rows[i]!, i);
  if (errors.length === 0 && lines.length === 0) err(1, "empty_file", "the input file has no requests");
  if (lines.length > MAX_BATCH_LINES)
    err(
      MAX_BATCH_LINES + 1,
      "too_many_requests",
      `a batch holds at most ${MAX_BATCH_LINES} requests, this file has ${lines.length}`,
    );
  return errors.length ? { errors } : { lines };
}

/** One line of the output or error file (OpenAI's batch request output object). */
export interface BatchOutputLine {
  id: string;
  custom_id: string;
  response: { status_code: number; request_id: string; body: unknown } | null;
  error: { code: string; message: string } | null;
}

/**
 * The output line of one stored result: the same JSON a non-streamed request gets (`completion`) on
 * success; the engine's refusal (400) or the failure (500) as an OpenAI error body otherwise.
 */
export function outputLine(
  batchId: string,
  index: number,
  line: Pick<BatchLine, "customId" | "model" | "promptTokens">,
  chat: boolean,
  r: BatchLineResult,
  createdS: number,
): { ok: boolean; line: BatchOutputLine } {
  const id = `batch_req_${batchId.replace(/^batch_/, "")}_${index}`;
  const requestId = r.requestId;
  const err = r.chunks.find((c) => c.error)?.error;
  if (r.outcome !== "ok" || err) {
    const status = r.outcome === "rejected" ? 400 : 500;
    const message =
      err?.message ?? (r.outcome === "rejected" ? "the engine refused the request" : "the request failed");
    return {
      ok: false,
      line: {
        id,
        custom_id: line.customId,
        response: {
          status_code: status,
          request_id: requestId,
          body: {
            error: {
              message,
              type: status === 400 ? "invalid_request_error" : "server_error",
              param: null,
              code: err?.code ?? null,
            },
          },
        },
        error: null,
      },
    };
  }
  const collected = new Map<number, Collected>();
  const finish = new Map<number, string>();
  let tokens = 0;
  let engineUsage: { promptTokens: number; completionTokens: number } | undefined;
  for (const c of r.chunks) {
    const i = c.index ?? 0;
    tokens += c.tokens;
    if (c.usage) engineUsage = c.usage;
    if (c.finishReason && c.finishReason !== "cancelled") finish.set(i, c.finishReason);
    if (c.text !== undefined || c.toolCalls || c.logprobs)
      collected.set(
        i,
        collect(collected.get(i) ?? emptyCollected(), {
          text: c.text ?? "",
          toolCalls: c.toolCalls,
          logprobs: c.logprobs,
        }),
      );
  }
  const choices: Choice[] = [...new Set([0, ...collected.keys(), ...finish.keys()])].map((i) => ({
    index: i,
    out: collected.get(i) ?? emptyCollected(),
    finish: finish.get(i) ?? "stop",
  }));
  const meta = responseMeta({ chat, stream: false, model: line.model }, requestId, createdS);
  const u = usage(engineUsage?.promptTokens || line.promptTokens, engineUsage?.completionTokens ?? tokens);
  return {
    ok: true,
    line: {
      id,
      custom_id: line.customId,
      response: { status_code: 200, request_id: requestId, body: completion(meta, chat, choices, u) },
      error: null,
    },
  };
}
