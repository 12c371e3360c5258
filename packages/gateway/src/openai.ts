/**
 * OpenAI translation, pure: what the gateway reads from a request body, and the response bodies,
 * stream chunks and error events it writes back. No I/O, no clock: every function is a value in,
 * a value out (`openai.test.ts`).
 */

/** What the gateway needs from an OpenAI request body it has already validated (`checkBody`). */
export interface OpenAiRequest {
  chat: boolean;
  model: string;
  stream: boolean;
  maxTokens: number;
  /** The prompt as one text (chat: the messages' contents joined), for the token estimate. */
  promptText: string;
  /** `stream_options.include_usage`: a streamed answer ends with a usage chunk. */
  includeUsage: boolean;
}

export function readRequest(
  body: Record<string, unknown>,
  chat: boolean,
  defaultMaxTokens: number,
): OpenAiRequest {
  const promptText = chat
    ? (body.messages as { content?: unknown }[])
        .map((m) => (typeof m.content === "string" ? m.content : JSON.stringify(m.content ?? "")))
        .join(" ")
    : [body.prompt as string | string[]].flat().join(" ");
  const options = body.stream_options as { include_usage?: unknown } | null | undefined;
  return {
    chat,
    model: String(body.model),
    stream: body.stream === true,
    maxTokens: Number(body.max_completion_tokens ?? body.max_tokens ?? defaultMaxTokens),
    promptText,
    includeUsage: options?.include_usage === true,
  };
}

/** Prompt tokens estimated from text (≈ 4 characters per token) until the engine counts them. */
export function estimateTokens(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4));
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export function usage(promptTokens: number, completionTokens: number): Usage {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
  };
}

/** The fields every response and chunk of one request shares. */
export interface ResponseMeta {
  id: string;
  object: string;
  created: number;
  model: string;
}

export function responseMeta(
  req: Pick<OpenAiRequest, "chat" | "stream" | "model">,
  requestId: string,
  createdS: number,
): ResponseMeta {
  return {
    id: `${req.chat ? "chatcmpl" : "cmpl"}-${requestId.replace(/^r-/, "")}`,
    object: req.chat ? (req.stream ? "chat.completion.chunk" : "chat.completion") : "text_completion",
    created: createdS,
    model: req.model,
  };
}

/** One SSE event: `data: <json>` and a blank line. */
export function sse(data: unknown): string {
  return `data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`;
}

/** What one node chunk carries for the client. */
export interface Piece {
  /** Choice index (`n` > 1, or a batch of prompts); absent = 0. */
  index?: number | undefined;
  text: string;
  toolCalls?: Record<string, unknown>[] | undefined;
  logprobs?: Record<string, unknown> | undefined;
}

/** A token's chunk; the first of a chat stream carries the assistant role. Tool calls and logprobs as the engine sent them. */
export function tokenChunk(meta: ResponseMeta, chat: boolean, p: Piece, first: boolean): object {
  const index = p.index ?? 0;
  const extra = p.logprobs ? { logprobs: p.logprobs } : {};
  if (!chat) return { ...meta, choices: [{ index, text: p.text, ...extra, finish_reason: null }] };
  const delta: Record<string, unknown> = first ? { role: "assistant" } : {};
  if (p.toolCalls) {
    delta.content = p.text || null;
    delta.tool_calls = p.toolCalls;
  } else delta.content = p.text;
  return { ...meta, choices: [{ index, delta, ...extra, finish_reason: null }] };
}

/** A whole answer collected from its chunks (a request not streamed). */
export interface Collected {
  text: string;
  toolCalls: Record<string, unknown>[];
  logprobs: Record<string, unknown> | undefined;
}

export function emptyCollected(): Collected {
  return { text: "", toolCalls: [], logprobs: undefined };
}

/** Add one chunk's piece to a collected answer. */
export function collect(acc: Collected, p: Piece): Collected {
  return {
    text: acc.text + p.text,
    toolCalls: p.toolCalls ? mergeToolCalls(acc.toolCalls, p.toolCalls) : acc.toolCalls,
    logprobs: p.logprobs ? mergeLogprobs(acc.logprobs, p.logprobs) : acc.logprobs,
  };
}

/**
 * Tool-call deltas merged into whole calls, as the SDKs do: by `index`, the first delta brings the
 * id, type and function name, later ones append to `function.arguments`.
 */
export function mergeToolCalls(
  calls: Record<string, unknown>[],
  deltas: Record<string, unknown>[],
): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = calls.map((c) => ({
    ...c,
    function: { ...(c.function as object) },
  }));
  for (const d of deltas) {
    const index = typeof d.index === "number" ? d.index : out.length;
    const fn = (d.function ?? {}) as { name?: unknown; arguments?: unknown };
    let call = out.find((c) => c.index === index);
    if (!call) {
      call = { index, id: d.id, type: d.type ?? "function", function: { name: fn.name, arguments: "" } };
      out.push(call);
    }
    const f = call.function as { name?: unknown; arguments: string };
    if (typeof d.id === "string") call.id = d.id;
    if (typeof fn.name === "string") f.name = fn.name;
    if (typeof fn.arguments === "string") f.arguments += fn.arguments;
  }
  return out;
}

/** Log probabilities of consecutive chunks as one: arrays under the same key are concatenated. */
export function mergeLogprobs(
  acc: Record<string, unknown> | undefined,
  next: Record<string, unknown>,
): Record<string, unknown> {
  if (!acc) return { ...next };
  const out: Record<string, unknown> = { ...acc };
  for (const [k, v] of Object.entries(next)) {
    const prev = out[k];
    out[k] = Array.isArray(prev) && Array.isArray(v) ? [...prev, ...v] : v;
  }
  return out;
}

/** The chunk that ends a stream's choice with its finish reason. */
export function finishChunk(meta: ResponseMeta, chat: boolean, finish: string, index = 0): object {
  const choice = chat
    ? { index, delta: {}, finish_reason: finish }
    : { index, text: "", finish_reason: finish };
  return { ...meta, choices: [choice] };
}

/** `stream_options.include_usage`: the last chunk before `[DONE]`, no choices, the request's usage. */
export function usageChunk(meta: ResponseMeta, u: Usage): object {
  return { ...meta, choices: [], usage: u };
}

/** One choice of an answer not streamed. */
export interface Choice {
  index: number;
  out: Collected;
  finish: string;
}

/** The one JSON answer of a request that was not streamed, every choice in index order. */
export function completion(meta: ResponseMeta, chat: boolean, choices: Choice[], u: Usage): object {
  return {
    ...meta,
    choices: [...choices].sort((a, b) => a.index - b.index).map((c) => choice(chat, c)),
    usage: u,
  };
}

function choice(chat: boolean, { index, out, finish }: Choice): object {
  const logprobs = { logprobs: out.logprobs ?? null };
  if (!chat) return { index, text: out.text, ...logprobs, finish_reason: finish };
  const message = out.toolCalls.length
    ? {
        role: "assistant",
        content: out.text || null,
        tool_calls: out.toolCalls.map(({ index: _index, ...call }) => call),
      }
    : { role: "assistant", content: out.text };
  return { index, message, ...logprobs, finish_reason: finish };
}

/**
 * An error after a stream started: OpenAI's error event (the SDKs raise it as an APIError). The stream
 * then ends without `[DONE]`, so no client mistakes the truncated answer for a complete one.
 */
export function errorEvent(message: string, code: string): object {
  return { error: { message, type: "server_error", param: null, code } };
}
