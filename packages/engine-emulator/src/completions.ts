// POST /v1/chat/completions and /v1/completions: a request body checked as vLLM checks it (JSON, schema,
// model name, context length), planned into sequences and handed to the engine (`generate`). Separate
// from the routing because it is the one endpoint with a story of its own; the others are a line or two.

import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { errorMessage } from "@sageserve/protocol";
import type { z } from "zod";
import { generate, type Sequence } from "./generate.js";
import { readBody, type ServedModel, send } from "./http.js";
import {
  ChatBody,
  CompletionBody,
  chatPromptTokens,
  estimateTokens,
  type OpenAiError,
  openAiError,
  outputRequest,
  priorityTier,
} from "./openai.js";
import { planOutput } from "./output.js";

type RequestBody = z.output<typeof ChatBody> | z.output<typeof CompletionBody>;

type ParsedBody = { ok: true; body: RequestBody } | { ok: false; error: OpenAiError };

/** Serve one chat (`chat`) or completions request. */
export async function serveCompletion(
  m: ServedModel,
  req: IncomingMessage,
  res: ServerResponse,
  chat: boolean,
): Promise<void> {
  if (!m.loaded) {
    res.setHeader("retry-after", "1");
    send(res, openAiError(503, "model is loading", "service_unavailable", "model_loading"));
    return;
  }
  const raw = await readBody(req, m.maxBodyBytes);
  if (typeof raw !== "string") {
    send(res, raw);
    return;
  }
  const parsed = parseBody(raw, chat);
  if (!parsed.ok) {
    send(res, parsed.error);
    return;
  }
  const body = parsed.body;
  if (body.model !== m.name) {
    send(res, modelNotFound(body.model));
    return;
  }
  // Each prompt of a completions batch, and each of its `n` choices, is a sequence of its own.
  const prompts = chat
    ? [chatPromptTokens(body as z.output<typeof ChatBody>)]
    : [(body as z.output<typeof CompletionBody>).prompt].flat().map(estimateTokens);
  const prompt = Math.max(...prompts);
  const maxTokens =
    (body as { max_completion_tokens?: number }).max_completion_tokens ?? body.max_tokens ?? 16;
  if (prompt + maxTokens > m.maxModelLen) {
    send(res, contextTooLong(m.maxModelLen, prompt, maxTokens));
    return;
  }
  const id = `${chat ? "chatcmpl" : "cmpl"}-${randomUUID().replaceAll("-", "")}`;
  const sequences = planSequences(body, chat, prompts, maxTokens, id);
  const tier = priorityTier(body.priority, m.policy);
  const ok = await generate(res, m.engine, {
    id,
    model: m.name,
    chat,
    stream: body.stream === true,
    usageChunk: body.stream_options?.include_usage === true,
    promptTokens: prompts.reduce((a, b) => a + b, 0),
    sequences,
    tier,
  });
  if (ok) m.metrics.requestsByTier.inc({ model_name: m.name, tier }, sequences.length);
  else send(res, kvCacheTooSmall(prompts.reduce((a, b) => a + b, 0) + sequences.length * maxTokens));
}

/** The body as JSON, validated against the endpoint's schema; else the 400 naming what is wrong. */
function parseBody(raw: string, chat: boolean): ParsedBody {
  let parsedJson: unknown;
  try {
    parsedJson = JSON.parse(raw);
  } catch (e) {
    return {
      ok: false,
      error: openAiError(
        400,
        `request body is not valid JSON: ${errorMessage(e)}`,
        "invalid_request_error",
        "invalid_json",
      ),
    };
  }
  const parsed = (chat ? ChatBody : CompletionBody).safeParse(parsedJson);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    return {
      ok: false,
      error: openAiError(
        400,
        `${i.path.join(".") || "body"}: ${i.message}`,
        "invalid_request_error",
        "invalid_value",
        i.path.join(".") || null,
      ),
    };
  }
  return { ok: true, body: parsed.data };
}

/** Every choice (`n`) of every prompt, each with the output it will produce (seeded per sequence). */
function planSequences(
  body: RequestBody,
  chat: boolean,
  prompts: number[],
  maxTokens: number,
  id: string,
): Sequence[] {
  const seed = body.seed ?? (Number.parseInt(id.slice(-6), 16) || 1);
  const n = body.n ?? 1;
  return prompts.flatMap((promptTokens, p) =>
    Array.from({ length: n }, (_, j) => {
      const index = p * n + j;
      return {
        index,
        promptTokens,
        output: planOutput(outputRequest(body, chat, maxTokens, seed + index)),
      };
    }),
  );
}

function modelNotFound(model: string): OpenAiError {
  return openAiError(
    404,
    `The model \`${model}\` does not exist.`,
    "NotFoundError",
    "model_not_found",
    "model",
  );
}

function contextTooLong(maxModelLen: number, prompt: number, maxTokens: number): OpenAiError {
  return openAiError(
    400,
    `This model's maximum context length is ${maxModelLen} tokens. However, you requested ${prompt + maxTokens} tokens (${prompt} in the messages, ${maxTokens} in the completion).`,
    "BadRequestError",
    "context_length_exceeded",
    "messages",
  );
}

function kvCacheTooSmall(tokens: number): OpenAiError {
  return openAiError(
    400,
    `request needs ${tokens} tokens of KV cache, more than this instance has`,
    "BadRequestError",
    "context_length_exceeded",
  );
}
