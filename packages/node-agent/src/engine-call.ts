import { errorMessage, type InferenceChunk, type Payload, SageError } from "@sageserve/protocol";
import type { Clock } from "@sageserve/runtime";
import { type ChoiceStep, engineEvents, type FinishReason } from "./engine-stream.js";
import type { EngineCall } from "./priority.js";

/** How one engine request ended, for its RequestDone. */
export interface EngineRun {
  /** ok; failed (the engine's fault); rejected (the engine refused it as invalid); cancelled (aborted). */
  outcome: "ok" | "failed" | "cancelled" | "rejected";
  tokens: number;
  firstAtMs?: number | undefined;
  usage?: { promptTokens: number; completionTokens: number } | undefined;
}

export type ChunkFields = Omit<Payload<typeof InferenceChunk>, "requestId" | "seq">;

/** One engine request to run: where, what, and where its chunks go. */
export interface EngineCallParams {
  url: string;
  call: EngineCall;
  signal: AbortSignal;
  clock: Clock;
  chunk(c: ChunkFields): void;
  onFirstToken(): void;
}

/**
 * One routed request at the engine: POST it (streamed), relay every choice step as a chunk, and end
 * with the final chunk — the finish reason and the engine's usage, an error, or `cancelled` when
 * `signal` aborts it (the HTTP request is aborted, so the engine stops and frees its KV cache).
 */
export async function runEngineCall(p: EngineCallParams): Promise<EngineRun> {
  const run: EngineRun = { outcome: "ok", tokens: 0 };
  try {
    if (p.signal.aborted) throw p.signal.reason;
    const res = await fetchOnce(`${p.url}${p.call.path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(p.call.body),
      signal: p.signal,
    });
    if (!res.ok || !res.body) {
      const text = await res.text().catch(() => "");
      // A 4xx is the engine refusing this request (e.g. prompt + max_tokens over its context
      // length): the client's error, passed on as such — it was a 502 at the gateway.
      if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429)
        throw new SageError("INVALID_REQUEST", engineMessage(text) ?? `engine answered ${res.status}`);
      throw new SageError("REMOTE", `engine answered ${res.status}: ${text.slice(0, 300)}`);
    }
    let finish: FinishReason | undefined;
    for await (const e of engineEvents(res.body as unknown as AsyncIterable<Uint8Array>)) {
      if (e.usage) run.usage = e.usage;
      for (const c of e.choices) {
        if (run.firstAtMs === undefined) {
          run.firstAtMs = p.clock.now();
          p.onFirstToken();
        }
        run.tokens++;
        if (c.finish) finish = c.finish;
        p.chunk(choiceChunk(c));
      }
    }
    p.chunk({
      tokens: 0,
      done: true,
      finishReason: finish ?? "stop",
      ...(run.usage ? { usage: run.usage } : {}),
    });
    return run;
  } catch (e) {
    return endedEarly(e, run, p);
  }
}

/** The chunk that relays one choice step (one token). */
function choiceChunk(c: ChoiceStep): ChunkFields {
  return {
    text: c.text,
    tokens: 1,
    done: false,
    ...(c.index ? { index: c.index } : {}),
    ...(c.finish ? { finishReason: c.finish } : {}),
    ...(c.toolCalls ? { toolCalls: c.toolCalls } : {}),
    ...(c.logprobs ? { logprobs: c.logprobs } : {}),
  };
}

/** An engine call that threw (`e`) or was aborted: its final chunk, and how it ended. */
function endedEarly(e: unknown, run: EngineRun, p: EngineCallParams): EngineRun {
  if (p.signal.aborted) {
    // The client went away: the engine request is aborted (its KV freed); nobody waits for more.
    p.chunk({ tokens: 0, done: true, finishReason: "cancelled" });
    return { ...run, outcome: "cancelled" };
  }
  // Before the first token the router may retry elsewhere; after it, the client sees an error finish.
  const err =
    e instanceof SageError ? e : new SageError("REMOTE", `engine connection failed: ${describeError(e)}`);
  const invalid = err.code === "INVALID_REQUEST";
  p.chunk({
    tokens: 0,
    done: true,
    finishReason: "error",
    error: {
      code: invalid
        ? "INVALID_REQUEST"
        : run.firstAtMs === undefined
          ? "ENGINE_UNAVAILABLE"
          : "ENGINE_FAILED",
      message: err.message,
    },
  });
  return { ...run, outcome: invalid ? "rejected" : "failed" };
}

/**
 * An error as one line: undici's "TypeError: terminated" says nothing, its cause (the socket closed,
 * the engine reset the connection) does.
 */
export function describeError(e: unknown): string {
  const cause = (e as { cause?: unknown } | undefined)?.cause;
  const msg = errorMessage(e);
  if (msg === "terminated" || msg === "fetch failed")
    return cause instanceof Error ? `engine connection lost (${cause.message})` : "engine connection lost";
  return msg;
}

/**
 * fetch, retried once when the connection itself failed: after an engine restart the client's pool can
 * still hold a keep-alive socket to the old process, which fails at once and is not the engine's fault.
 */
export async function fetchOnce(url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (e) {
    if ((e as Error).name === "TimeoutError" || (e as Error).name === "AbortError") throw e;
    return fetch(url, init);
  }
}

/** The message of an OpenAI-style error body (`{ error: { message } }`), if that is what it is. */
function engineMessage(text: string): string | undefined {
  try {
    const m = (JSON.parse(text) as { error?: { message?: unknown } }).error?.message;
    return typeof m === "string" && m ? m.slice(0, 1000) : undefined;
  } catch {
    return text ? text.slice(0, 300) : undefined;
  }
}

/**
 * A Batch API request's chunks, as stored for its output file: consecutive text-only chunks of one
 * choice are joined (a stored result is one KV entry, not one per token); anything else is kept as sent.
 */
export class ResultCollector {
  readonly chunks: ChunkFields[] = [];

  add(c: ChunkFields): void {
    const last = this.chunks[this.chunks.length - 1];
    const plain = (x: ChunkFields) =>
      !x.done && x.toolCalls === undefined && x.logprobs === undefined && x.finishReason === undefined;
    if (last && plain(last) && plain(c) && (last.index ?? 0) === (c.index ?? 0)) {
      last.text = (last.text ?? "") + (c.text ?? "");
      last.tokens += c.tokens;
      return;
    }
    this.chunks.push({ ...c });
  }
}
