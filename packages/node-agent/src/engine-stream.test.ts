import { describe, expect, it } from "vitest";
import { engineEvents, readEngineEvent } from "./engine-stream.js";

describe("reading an engine's stream", () => {
  it("reads chat and completions text, and the finish reason", () => {
    expect(
      readEngineEvent('{"choices":[{"index":0,"delta":{"content":" the"},"finish_reason":null}]}'),
    ).toEqual({
      choices: [{ index: 0, text: " the" }],
    });
    expect(readEngineEvent('{"choices":[{"index":0,"text":" a","finish_reason":"length"}]}')).toEqual({
      choices: [{ index: 0, text: " a", finish: "length" }],
    });
  });

  it("keeps each choice's index (n > 1, a batch of prompts)", () => {
    expect(
      readEngineEvent(
        '{"choices":[{"index":2,"text":" x","finish_reason":null},{"index":3,"text":" y","finish_reason":"stop"}]}',
      ),
    ).toEqual({
      choices: [
        { index: 2, text: " x" },
        { index: 3, text: " y", finish: "stop" },
      ],
    });
  });

  it("relays tool-call deltas and log probabilities as the engine sent them", () => {
    const call = { index: 0, id: "call_1", type: "function", function: { name: "f", arguments: "" } };
    const e = readEngineEvent(
      JSON.stringify({
        choices: [
          {
            index: 0,
            delta: { content: null, tool_calls: [call] },
            logprobs: { content: [{ token: "x", logprob: -0.5 }] },
            finish_reason: "tool_calls",
          },
        ],
      }),
    );
    expect(e).toEqual({
      choices: [
        {
          index: 0,
          text: "",
          toolCalls: [call],
          logprobs: { content: [{ token: "x", logprob: -0.5 }] },
          finish: "tool_calls",
        },
      ],
    });
  });

  it("takes the engine's token counts from the usage event, which has no choice", () => {
    expect(
      readEngineEvent('{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":4,"total_tokens":16}}'),
    ).toEqual({
      choices: [],
      usage: { promptTokens: 12, completionTokens: 4 },
    });
  });

  it("ignores [DONE], malformed JSON and unknown finish reasons", () => {
    expect(readEngineEvent("[DONE]")).toBeUndefined();
    expect(readEngineEvent("{nope")).toBeUndefined();
    expect(readEngineEvent('{"choices":[{"text":"","finish_reason":"abort"}]}')).toEqual({
      choices: [{ index: 0, text: "" }],
    });
    expect(readEngineEvent('{"choices":[],"usage":{"prompt_tokens":-1,"completion_tokens":2}}')).toEqual({
      choices: [],
    });
  });
});

describe("an engine's SSE body", () => {
  it("yields each data event, across chunk boundaries, skipping [DONE] and other lines", async () => {
    const text =
      'data: {"choices":[{"index":0,"text":"a"}]}\n\n: comment\n\ndata: {"choices":[{"index":0,"text":"b","finish_reason":"stop"}]}\n\ndata: [DONE]\n\n';
    const bytes = new TextEncoder().encode(text);
    async function* parts() {
      for (let i = 0; i < bytes.length; i += 7) yield bytes.slice(i, i + 7);
    }
    const out = [];
    for await (const e of engineEvents(parts())) out.push(e);
    expect(out).toEqual([
      { choices: [{ index: 0, text: "a" }] },
      { choices: [{ index: 0, text: "b", finish: "stop" }] },
    ]);
  });
});
