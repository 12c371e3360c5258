import type { ServerResponse } from "node:http";
import type { Tier } from "@sageserve/protocol";
import type { EngineRequest, RealtimeEngine } from "./engine.js";
import type { Output } from "./output.js";

/** One sequence of an answer: choice `index`, its prompt's tokens and what it says. */
export interface Sequence {
  index: number;
  promptTokens: number;
  output: Output;
}

export interface Generation {
  id: string;
  model: string;
  chat: boolean;
  stream: boolean;
  usageChunk: boolean;
  /** Prompt tokens of the request (each prompt counted once, whatever `n`). */
  promptTokens: number;
  sequences: Sequence[];
  tier: Tier;
}

/**
 * Run every sequence of a request on the engine (each its own engine request, with its own KV, as vLLM
 * runs `n` choices and each prompt of a batch) and answer as vLLM does: SSE chunks per choice index as
 * tokens come, then a usage chunk and `[DONE]`; or one JSON answer with every choice. Resolves when the
 * answer is written or the client went away (every sequence aborted, KV freed). False: the engine could
 * not take the request (more KV than it has); nothing was written.
 */
export function generate(res: ServerResponse, engine: RealtimeEngine, g: Generation): Promise<boolean> {
  const created = Math.floor(Date.now() / 1000);
  const object = g.chat ? (g.stream ? "chat.completion.chunk" : "chat.completion") : "text_completion";
  const completionTokens = g.sequences.reduce((n, s) => n + s.output.tokens, 0);
  const usage = {
    prompt_tokens: g.promptTokens,
    completion_tokens: completionTokens,
    total_tokens: g.promptTokens + completionTokens,
  };
  const envelope = (choices: object[], extra: object = {}) =>
    JSON.stringify({ id: g.id, object, created, model: g.model, choices, ...extra });
  const ids = g.sequences.map((s) => (g.sequences.length === 1 ? g.id : `${g.id}-${s.index}`));
  return new Promise<boolean>((resolve) => {
    let left = g.sequences.length;
    let ended = false;
    const abortAll = () => {
      for (const id of ids) engine.abort(id);
    };
    const requests: EngineRequest[] = g.sequences.map((s, k) => ({
      id: ids[k]!,
      promptTokens: s.promptTokens,
      // The engine runs the tokens this answer has: a tool call or a stop string ends it early.
      maxTokens: s.output.tokens,
      tier: g.tier,
      onToken(i) {
        if (!g.stream || ended) return;
        if (!res.headersSent)
          res.writeHead(200, {
            "content-type": "text/event-stream",
            "cache-control": "no-cache",
            connection: "keep-alive",
          });
        res.write(`data: ${envelope([streamChoice(g.chat, s, i)])}\n\n`);
      },
      onDone(reason) {
        if (ended) return;
        if (reason === "abort") {
          ended = true;
          if (!res.writableEnded) res.destroy();
          abortAll();
          resolve(true);
          return;
        }
        if (--left > 0) return;
        ended = true;
        if (g.stream) {
          if (!res.headersSent) res.writeHead(200, { "content-type": "text/event-stream" });
          if (g.usageChunk) res.write(`data: ${envelope([], { usage })}\n\n`);
          res.end("data: [DONE]\n\n");
        } else {
          res.writeHead(200, { "content-type": "application/json" }).end(
            envelope(
              g.sequences.map((seq) => wholeChoice(g.chat, seq)),
              { usage },
            ),
          );
        }
        resolve(true);
      },
    }));
    const taken: string[] = [];
    for (const r of requests) {
      if (!engine.submit(r)) {
        ended = true;
        for (const id of taken) engine.abort(id);
        resolve(false);
        return;
      }
      taken.push(r.id);
    }
    // A client that goes away stops its generation (and frees its KV cache) at once.
    res.on("close", () => {
      if (!res.writableFinished) abortAll();
    });
  });
}

function streamChoice(chat: boolean, s: Sequence, i: number): object {
  const t = s.output.token(i);
  const finish_reason = i === s.output.tokens - 1 ? s.output.finish : null;
  const logprobs = t.logprobs ?? null;
  if (!chat) return { index: s.index, text: t.text, logprobs, finish_reason };
  const delta: Record<string, unknown> = i === 0 ? { role: "assistant" } : {};
  if (t.toolCalls) {
    delta.content = null;
    delta.tool_calls = t.toolCalls;
  } else delta.content = t.text;
  return { index: s.index, delta, logprobs, finish_reason };
}

function wholeChoice(chat: boolean, s: Sequence): object {
  const w = s.output.whole();
  const logprobs = w.logprobs ?? null;
  if (!chat) return { index: s.index, text: w.text, logprobs, finish_reason: s.output.finish };
  const message = w.toolCalls
    ? { role: "assistant", content: null, tool_calls: w.toolCalls }
    : { role: "assistant", content: w.text };
  return { index: s.index, message, logprobs, finish_reason: s.output.finish };
}
