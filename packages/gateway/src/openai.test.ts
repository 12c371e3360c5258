import { describe, expect, it } from "vitest";
import {
  collect,
  completion,
  emptyCollected,
  errorEvent,
  estimateTokens,
  finishChunk,
  mergeLogprobs,
  mergeToolCalls,
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
    expect(tokenChunk(meta, true, { text: "Hel" }, true)).toEqual({
      ...meta,
      choices: [{ index: 0, delta: { role: "assistant", content: "Hel" }, finish_reason: null }],
    });
    expect(tokenChunk(meta, true, { text: "lo" }, false)).toMatchObject({
      choices: [{ delta: { content: "lo" } }],
    });
    expect(tokenChunk(meta, false, { text: "x" }, true)).toMatchObject({
      choices: [{ index: 0, text: "x", finish_reason: null }],
    });
  });

  it("relays tool-call deltas with null content, and log probabilities on the choice", () => {
    const call = [{ index: 0, id: "call_1", type: "function", function: { name: "f", arguments: "" } }];
    expect(tokenChunk(meta, true, { text: "", toolCalls: call }, true)).toMatchObject({
      choices: [{ delta: { role: "assistant", content: null, tool_calls: call } }],
    });
    const lp = { tokens: [" a"], token_logprobs: [-0.1] };
    expect(tokenChunk(meta, false, { text: " a", logprobs: lp }, false)).toMatchObject({
      choices: [{ text: " a", logprobs: lp }],
    });
  });

  it("merges tool-call deltas into whole calls by index, as the SDKs do", () => {
    let calls = mergeToolCalls(
      [],
      [{ index: 0, id: "c1", type: "function", function: { name: "get", arguments: "" } }],
    );
    calls = mergeToolCalls(calls, [{ index: 0, function: { arguments: '{"q":' } }]);
    calls = mergeToolCalls(calls, [
      { index: 0, function: { arguments: '"x"}' } },
      { index: 1, id: "c2", type: "function", function: { name: "put", arguments: "{}" } },
    ]);
    expect(calls).toEqual([
      { index: 0, id: "c1", type: "function", function: { name: "get", arguments: '{"q":"x"}' } },
      { index: 1, id: "c2", type: "function", function: { name: "put", arguments: "{}" } },
    ]);
  });

  it("concatenates log probabilities chunk by chunk", () => {
    const a = { content: [{ token: "a", logprob: -1 }] };
    const b = { content: [{ token: "b", logprob: -2 }] };
    expect(mergeLogprobs(mergeLogprobs(undefined, a), b)).toEqual({ content: [...a.content, ...b.content] });
    let out = emptyCollected();
    out = collect(out, { text: "x", logprobs: a });
    out = collect(out, { text: "y", logprobs: b });
    expect(out).toEqual({ text: "xy", toolCalls: [], logprobs: { content: [...a.content, ...b.content] } });
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
    const hi = { ...emptyCollected(), text: "hi" };
    expect(completion(meta, true, [{ index: 0, out: hi, finish: "stop" }], usage(1, 1))).toMatchObject({
      choices: [{ message: { role: "assistant", content: "hi" }, logprobs: null, finish_reason: "stop" }],
      usage: { total_tokens: 2 },
    });
    expect(completion(meta, false, [{ index: 0, out: hi, finish: "length" }], usage(1, 1))).toMatchObject({
      choices: [{ text: "hi", finish_reason: "length" }],
    });
    const call = { index: 0, id: "c1", type: "function", function: { name: "f", arguments: "{}" } };
    expect(
      completion(
        meta,
        true,
        [{ index: 0, out: { ...emptyCollected(), toolCalls: [call] }, finish: "tool_calls" }],
        usage(1, 2),
      ),
    ).toMatchObject({
      choices: [
        {
          message: {
            role: "assistant",
            content: null,
            tool_calls: [{ id: "c1", type: "function", function: call.function }],
          },
          finish_reason: "tool_calls",
        },
      ],
    });
  });

  it("answers every choice in index order, each with its own finish reason", () => {
    const a = { ...emptyCollected(), text: "a" };
    const b = { ...emptyCollected(), text: "b" };
    const r = completion(
      meta,
      false,
      [
        { index: 1, out: b, finish: "stop" },
        { index: 0, out: a, finish: "length" },
      ],
      usage(2, 2),
    ) as { choices: { index: number; text: string; finish_reason: string }[] };
    expect(r.choices.map((c) => [c.index, c.text, c.finish_reason])).toEqual([
      [0, "a", "length"],
      [1, "b", "stop"],
    ]);
    expect(tokenChunk(meta, true, { index: 2, text: "x" }, true)).toMatchObject({
      choices: [{ index: 2, delta: { role: "assistant", content: "x" } }],
    });
    expect(finishChunk(meta, false, "stop", 3)).toMatchObject({
      choices: [{ index: 3, finish_reason: "stop" }],
    });
  });

  it("reports a mid-stream failure as an OpenAI server_error event", () => {
    expect(errorEvent("node gone", "node_lost")).toEqual({
      error: { message: "node gone", type: "server_error", param: null, code: "node_lost" },
    });
  });
});
