import { describe, expect, it } from "vitest";
import {
  completion,
  errorEvent,
  estimateTokens,
  finishChunk,
  readRequest,
  responseMeta,
  sse,
  tokenChunk,
  usage,
  usageChunk,
} from "./openai.js";

describe("OpenAI translation", () => {
  it("reads a chat body: model, stream, max_completion_tokens over max_tokens, the prompt text, include_usage", () => {
    const r = readRequest(
      {
        model: "m",
        stream: true,
        max_tokens: 9,
        max_completion_tokens: 7,
        stream_options: { include_usage: true },
        messages: [
          { role: "system", content: "be brief" },
          { role: "user", content: [{ type: "text", text: "hi" }] },
        ],
      },
      true,
      256,
    );
    expect(r).toEqual({
      chat: true,
      model: "m",
      stream: true,
      maxTokens: 7,
      promptText: 'be brief [{"type":"text","text":"hi"}]',
      includeUsage: true,
    });
  });

  it("reads a completions body with the default max_tokens, a prompt array joined, no usage chunk unless asked", () => {
    const r = readRequest({ model: "m", prompt: ["a", "b"], stream_options: null }, false, 256);
    expect(r).toMatchObject({
      chat: false,
      stream: false,
      maxTokens: 256,
      promptText: "a b",
      includeUsage: false,
    });
  });

  it("estimates at least one prompt token, four characters each", () => {
    expect(estimateTokens("")).toBe(1);
    expect(estimateTokens("abcdefghi")).toBe(3);
    expect(usage(3, 5)).toEqual({ prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 });
  });

  it("names ids and objects as OpenAI does for chat, chat streams and completions", () => {
    expect(responseMeta({ chat: true, stream: true, model: "m" }, "r-abc", 7)).toEqual({
      id: "chatcmpl-abc",
      object: "chat.completion.chunk",
      created: 7,
      model: "m",
    });
    expect(responseMeta({ chat: true, stream: false, model: "m" }, "r-abc", 7).object).toBe(
      "chat.completion",
    );
    expect(responseMeta({ chat: false, stream: true, model: "m" }, "r-abc", 7)).toMatchObject({
      id: "cmpl-abc",
      object: "text_completion",
    });
  });

  const meta = { id: "chatcmpl-1", object: "chat.completion.chunk", created: 1, model: "m" };

  it("puts the assistant role on the first chat delta only", () => {
    expect(tokenChunk(meta, true, "Hel", true)).toEqual({
      ...meta,
      choices: [{ index: 0, delta: { role: "assistant", content: "Hel" }, finish_reason: null }],
    });
    expect(tokenChunk(meta, true, "lo", false)).toMatchObject({ choices: [{ delta: { content: "lo" } }] });
    expect(tokenChunk(meta, false, "x", true)).toMatchObject({
      choices: [{ index: 0, text: "x", finish_reason: null }],
    });
  });

  it("ends a stream with the finish reason, then a usage chunk with no choices, as SSE events", () => {
    expect(finishChunk(meta, true, "length")).toMatchObject({
      choices: [{ delta: {}, finish_reason: "length" }],
    });
    expect(finishChunk(meta, false, "stop")).toMatchObject({
      choices: [{ text: "", finish_reason: "stop" }],
    });
    expect(usageChunk(meta, usage(2, 3))).toEqual({ ...meta, choices: [], usage: usage(2, 3) });
    expect(sse("[DONE]")).toBe("data: [DONE]\n\n");
    expect(sse({ a: 1 })).toBe('data: {"a":1}\n\n');
  });

  it("answers a non-streamed request with the message or text, finish reason and usage", () => {
    expect(completion(meta, true, "hi", "stop", usage(1, 1))).toMatchObject({
      choices: [{ message: { role: "assistant", content: "hi" }, finish_reason: "stop" }],
      usage: { total_tokens: 2 },
    });
    expect(completion(meta, false, "hi", "length", usage(1, 1))).toMatchObject({
      choices: [{ text: "hi", finish_reason: "length" }],
    });
  });

  it("reports a mid-stream failure as an OpenAI server_error event", () => {
    expect(errorEvent("node gone", "node_lost")).toEqual({
      error: { message: "node gone", type: "server_error", param: null, code: "node_lost" },
    });
  });
});
