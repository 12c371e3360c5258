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

/** A token's chunk; the first of a chat stream carries the assistant role. */
export function tokenChunk(meta: ResponseMeta, chat: boolean, text: string, first: boolean): object {
  const choice = chat
    ? {
        index: 0,
        delta: first ? { role: "assistant", content: text } : { content: text },
        finish_reason: null,
      }
    : { index: 0, text, finish_reason: null };
  return { ...meta, choices: [choice] };
}

/** The chunk that ends a stream's choice with its finish reason. */
export function finishChunk(meta: ResponseMeta, chat: boolean, finish: string): object {
  const choice = chat
    ? { index: 0, delta: {}, finish_reason: finish }
    : { index: 0, text: "", finish_reason: finish };
  return { ...meta, choices: [choice] };
}

/** `stream_options.include_usage`: the last chunk before `[DONE]`, no choices, the request's usage. */
export function usageChunk(meta: ResponseMeta, u: Usage): object {
  return { ...meta, choices: [], usage: u };
}

/** The one JSON answer of a request that was not streamed. */
export function completion(
  meta: ResponseMeta,
  chat: boolean,
  text: string,
  finish: string,
  u: Usage,
): object {
  const choice = chat
    ? { index: 0, message: { role: "assistant", content: text }, finish_reason: finish }
    : { index: 0, text, finish_reason: finish };
  return { ...meta, choices: [choice], usage: u };
}

/**
 * An error after a stream started: OpenAI's error event (the SDKs raise it as an APIError). The stream
 * then ends without `[DONE]`, so no client mistakes the truncated answer for a complete one.
 */
export function errorEvent(message: string, code: string): object {
  return { error: { message, type: "server_error", param: null, code } };
}
